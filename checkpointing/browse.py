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
