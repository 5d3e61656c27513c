"""Delete one thread, or every thread idle for longer than a number of days, with counts.

LangGraph keeps every thread until someone deletes it; its ``delete_thread``
says nothing about what it removed and there is no age-based expiry
(langgraph PR #6661, langgraphjs#1138). Here a thread's age is the time of its
newest checkpoint (``checkpoint->>'ts'``, written by LangGraph on every step),
and a deletion removes the thread's checkpoints, pending writes, blobs and
tool-call ledger rows and owner record in one transaction and reports how many
of each. Other
threads are never touched: every statement is keyed on the thread ids chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

THREAD_TABLES = (
    "checkpoints",
    "checkpoint_writes",
    "checkpoint_blobs",
    "tool_call_ledger",
    "thread_owners",
)

IDLE_THREADS_SQL = """
SELECT thread_id, max((checkpoint ->> 'ts')::timestamptz) AS updated_at
FROM checkpoints
GROUP BY thread_id
HAVING max((checkpoint ->> 'ts')::timestamptz) < now() - make_interval(secs => %s)
ORDER BY updated_at
"""


@dataclass
class ThreadDeletion:
    """What a deletion removed (or, for a dry run, would remove)."""

    thread_ids: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per table: checkpoints, checkpoint_writes, checkpoint_blobs, tool_call_ledger,
    thread_owners."""

    @property
    def threads(self) -> int:
        return len(self.thread_ids)

    def as_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "thread_ids": self.thread_ids, "rows": self.rows}


def idle_threads(pool: Any, older_than_days: float) -> list[str]:
    """Threads whose newest checkpoint is more than ``older_than_days`` days old, oldest first."""
    with pool.connection() as conn:
        rows = conn.execute(IDLE_THREADS_SQL, (older_than_days * 86400.0,)).fetchall()
    return [row["thread_id"] for row in rows]


def _existing_tables(conn: Any) -> list[str]:
    return [
        table
        for table in THREAD_TABLES
        if conn.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()["t"]
    ]


def delete_threads(
    pool: Any, thread_ids: Sequence[str], *, dry_run: bool = False
) -> ThreadDeletion:
    """Delete ``thread_ids`` from every thread table in one transaction; return the counts.

    With ``dry_run`` nothing is deleted and the counts say what would be.
    """
    ids = list(dict.fromkeys(str(thread_id) for thread_id in thread_ids))
    report = ThreadDeletion()
    with pool.connection() as conn, conn.transaction():
        tables = _existing_tables(conn)
        present = conn.execute(
            "SELECT DISTINCT thread_id FROM checkpoints WHERE thread_id = ANY(%s)", (ids,)
        ).fetchall()
        found = {row["thread_id"] for row in present}
        if "tool_call_ledger" in tables:
            ledger = conn.execute(
                "SELECT DISTINCT thread_id FROM tool_call_ledger WHERE thread_id = ANY(%s)", (ids,)
            ).fetchall()
            found |= {row["thread_id"] for row in ledger}
        report.thread_ids = [thread_id for thread_id in ids if thread_id in found]
        for table in tables:
            verb = "SELECT count(*) AS n FROM" if dry_run else "WITH gone AS (DELETE FROM"
            if dry_run:
                sql = f"{verb} {table} WHERE thread_id = ANY(%s)"
            else:
                sql = f"{verb} {table} WHERE thread_id = ANY(%s) RETURNING 1) SELECT count(*) AS n FROM gone"
            report.rows[table] = int(conn.execute(sql, (ids,)).fetchone()["n"])
    return report
