"""Read-only views over the checkpoint tables for people: recent threads."""

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
