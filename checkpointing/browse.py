"""Read-only views over the checkpoint tables for people: recent threads, paused threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECENT_THREADS_SQL = """
SELECT thread_id,
       count(*) AS checkpoints,
       max(checkpoint ->> 'ts') AS updated_at
FROM checkpoints
WHERE checkpoint_ns = ''
GROUP BY thread_id
ORDER BY updated_at DESC
LIMIT %s
"""


@dataclass(frozen=True)
class ThreadSummary:
    """One thread as the ``threads`` listing shows it."""

    thread_id: str
    checkpoints: int
    updated_at: str


def recent_threads(pool: Any, limit: int = 20) -> list[ThreadSummary]:
    """The ``limit`` most recently updated threads, newest first."""
    with pool.connection() as conn:
        rows = conn.execute(RECENT_THREADS_SQL, (limit,)).fetchall()
    return [ThreadSummary(row["thread_id"], row["checkpoints"], row["updated_at"]) for row in rows]


# Threads whose latest checkpoint has an interrupt write: the candidates for
# "waiting for a decision". The caller confirms each with graph.get_state.
THREADS_WAITING_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (thread_id) thread_id, checkpoint_id, checkpoint ->> 'ts' AS ts
    FROM checkpoints
    WHERE checkpoint_ns = ''
    ORDER BY thread_id, checkpoint_id DESC
)
SELECT latest.thread_id
FROM latest
WHERE EXISTS (
    SELECT 1 FROM checkpoint_writes AS w
    WHERE w.thread_id = latest.thread_id
      AND w.checkpoint_ns = ''
      AND w.checkpoint_id = latest.checkpoint_id
      AND w.channel = '__interrupt__'
)
ORDER BY latest.ts DESC
LIMIT %s
"""


def threads_waiting(pool: Any, limit: int = 100) -> list[str]:
    """Ids of threads paused at an interrupt, most recently paused first."""
    with pool.connection() as conn:
        rows = conn.execute(THREADS_WAITING_SQL, (limit,)).fetchall()
    return [row["thread_id"] for row in rows]


# The threads whose latest checkpoint was written by a run of ``user_id`` (NULL: runs
# without a user): the rule serving.responses checks, so a listing never shows a
# thread its reader could not open. Candidates first (any checkpoint of the user),
# then each candidate's latest checkpoint decides.
THREADS_OF_USER_SQL = """
WITH candidates AS (
    SELECT DISTINCT thread_id FROM checkpoints
    WHERE checkpoint_ns = '' AND (metadata ->> 'user_id') IS NOT DISTINCT FROM %(user_id)s
),
latest AS (
    SELECT DISTINCT ON (c.thread_id) c.thread_id,
           c.checkpoint ->> 'ts' AS updated_at,
           c.metadata ->> 'user_id' AS owner
    FROM checkpoints AS c JOIN candidates USING (thread_id)
    WHERE c.checkpoint_ns = ''
    ORDER BY c.thread_id, c.checkpoint_id DESC
)
SELECT latest.thread_id, latest.updated_at,
       (SELECT count(*) FROM checkpoints AS k
        WHERE k.thread_id = latest.thread_id AND k.checkpoint_ns = '') AS checkpoints
FROM latest
WHERE owner IS NOT DISTINCT FROM %(user_id)s
ORDER BY latest.updated_at DESC
LIMIT %(limit)s
"""


async def athreads_of_user(pool: Any, user_id: str | None, limit: int = 30) -> list[ThreadSummary]:
    """The threads ``user_id`` owns (their latest run was theirs), newest first."""
    async with pool.connection() as conn:
        cursor = await conn.execute(THREADS_OF_USER_SQL, {"user_id": user_id, "limit": limit})
        rows = await cursor.fetchall()
    return [ThreadSummary(row["thread_id"], row["checkpoints"], row["updated_at"]) for row in rows]
