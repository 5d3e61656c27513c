"""Keep each thread's checkpoint history bounded.

Stock LangGraph keeps every checkpoint forever, and each one stores a new
version of every changed channel: a thread's ``messages`` blob is rewritten
whole at every step, so storage grows with the square of the conversation.
``prune_thread`` keeps the newest ``keep`` checkpoints of a thread (time travel
reaches that far back) and deletes the older ones with their pending writes
and every blob no kept checkpoint refers to. The newest checkpoint, and with it
any pending approval, is never touched.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

# Checkpoint ids are time-ordered UUIDv6 strings, so ORDER BY checkpoint_id is age.
PRUNE_SQL = """
WITH doomed AS (
    SELECT checkpoint_id FROM checkpoints
    WHERE thread_id = %(thread_id)s AND checkpoint_ns = ''
    ORDER BY checkpoint_id DESC
    OFFSET %(keep)s
),
deleted_writes AS (
    DELETE FROM checkpoint_writes w USING doomed d
    WHERE w.thread_id = %(thread_id)s AND w.checkpoint_ns = '' AND w.checkpoint_id = d.checkpoint_id
    RETURNING 1
),
deleted_checkpoints AS (
    DELETE FROM checkpoints c USING doomed d
    WHERE c.thread_id = %(thread_id)s AND c.checkpoint_ns = '' AND c.checkpoint_id = d.checkpoint_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM deleted_checkpoints) AS checkpoints,
       (SELECT count(*) FROM deleted_writes) AS writes
"""

# Run after PRUNE_SQL has committed, so "still referenced" sees only kept checkpoints.
PRUNE_BLOBS_SQL = """
DELETE FROM checkpoint_blobs b
WHERE b.thread_id = %(thread_id)s AND b.checkpoint_ns = ''
  AND NOT EXISTS (
      SELECT 1 FROM checkpoints c, jsonb_each_text(c.checkpoint -> 'channel_versions') v
      WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
        AND v.key = b.channel AND v.value = b.version
  )
"""


@dataclass(frozen=True)
class PruneResult:
    """What one ``prune_thread`` call deleted."""

    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0


def _borrow(pool_or_connection: Any) -> Any:
    """A connection context from a pool, or the connection itself (as LangGraph's savers accept both)."""
    if isinstance(pool_or_connection, ConnectionPool | AsyncConnectionPool):
        return pool_or_connection.connection()
    return nullcontext(pool_or_connection)


def prune_thread(pool: Any, thread_id: str, keep: int) -> PruneResult:
    """Delete all but the newest ``keep`` checkpoints of ``thread_id`` (keep >= 1).

    ``pool`` is a psycopg pool or an autocommit connection.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1: the newest checkpoint is the thread itself")
    params = {"thread_id": thread_id, "keep": keep}
    with _borrow(pool) as conn:
        counts = conn.execute(PRUNE_SQL, params).fetchone()
        if not counts["checkpoints"]:
            return PruneResult()
        blobs = conn.execute(PRUNE_BLOBS_SQL, params).rowcount
    return PruneResult(counts["checkpoints"], counts["writes"], blobs)


async def aprune_thread(pool: Any, thread_id: str, keep: int) -> PruneResult:
    """Async twin of ``prune_thread``."""
    if keep < 1:
        raise ValueError("keep must be at least 1: the newest checkpoint is the thread itself")
    params = {"thread_id": thread_id, "keep": keep}
    async with _borrow(pool) as conn:
        counts = await (await conn.execute(PRUNE_SQL, params)).fetchone()
        if not counts["checkpoints"]:
            return PruneResult()
        blobs = (await conn.execute(PRUNE_BLOBS_SQL, params)).rowcount
    return PruneResult(counts["checkpoints"], counts["writes"], blobs)
