"""Delete one thread, or every thread idle for longer than a number of days, with counts.

LangGraph keeps every thread until someone deletes it; its ``delete_thread``
says nothing about what it removed and there is no age-based expiry
(langgraph PR #6661, langgraphjs#1138). Here a thread's age is the time of its
newest checkpoint (``checkpoint->>'ts'``, written by LangGraph on every step),
and a deletion removes the thread's checkpoints, pending writes, blobs and
tool-call ledger rows and owner record in one transaction and reports how many
of each (``checkpointing.retention.delete_threads``, which the savers'
``delete_thread`` also use). Other threads are never touched: every
statement is keyed on the thread ids chosen.
"""

from __future__ import annotations

from typing import Any

# One deletion for every caller (the savers' delete_thread too): one list of the
# tables a thread owns, one transaction.
from checkpointing.retention import THREAD_TABLES, ThreadDeletion, delete_threads

IDLE_THREADS_SQL = """
SELECT thread_id, max((checkpoint ->> 'ts')::timestamptz) AS updated_at
FROM checkpoints
GROUP BY thread_id
HAVING max((checkpoint ->> 'ts')::timestamptz) < now() - make_interval(secs => %s)
ORDER BY updated_at
"""


def idle_threads(pool: Any, older_than_days: float) -> list[str]:
    """Threads whose newest checkpoint is more than ``older_than_days`` days old, oldest first."""
    with pool.connection() as conn:
        rows = conn.execute(IDLE_THREADS_SQL, (older_than_days * 86400.0,)).fetchall()
    return [row["thread_id"] for row in rows]


__all__ = ["THREAD_TABLES", "ThreadDeletion", "delete_threads", "idle_threads"]
