"""Keep each thread's checkpoint history bounded, without breaking what is kept.

``prune_thread`` keeps the newest ``keep`` checkpoints of a thread (time travel
reaches that far back) plus every older checkpoint one of them needs to be
rebuilt, and deletes the rest in one transaction:

- **Delta channels.** A ``DeltaChannel`` (our ``messages``) stores only each
  step's writes plus a snapshot every ``snapshot_frequency`` updates; a
  checkpoint's value is rebuilt from the nearest ancestor that stores it. A
  checkpoint whose metadata has ``counters_since_delta_snapshot`` for a
  channel it has a version of needs its parent for that channel, so the kept
  set is closed under that walk, channel by channel. Deleting by age alone
  (what this module did before, and ``keep_latest`` cannot do at all: stock
  ``prune`` refuses delta threads) silently drops messages.
- **Parents.** A kept checkpoint whose parent is deleted gets
  ``parent_checkpoint_id = NULL``: no kept checkpoint points at a deleted one.
- **Subgraph calls.** A namespace ``name:task`` goes with the root checkpoint
  its call started from (``metadata.parents[""]``).
- **Blobs** no kept checkpoint refers to are deleted, as are the writes of the
  deleted checkpoints.
- **Tool-call ledger.** A ledger row keeps a call from running twice when a
  kept checkpoint is replayed; a call started before the oldest kept
  checkpoint cannot be reached by any replay, so its row goes (with an hour's
  margin for the clock of the process that wrote the checkpoint). When the
  ledger table does not exist (a database set up by ``PostgresSaver.setup()``
  alone) there is nothing to delete and nothing fails.

The newest checkpoint, and with it any pending approval, is never touched.
The statements are written once as a generator (``_prune_statements``) and run
by a sync or an async executor, as langgraph-checkpoint-postgres does for its
own ``prune``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from psycopg_pool import AsyncConnectionPool, ConnectionPool

R = TypeVar("R")

LEDGER_EXISTS_SQL = "SELECT to_regclass('tool_call_ledger') IS NOT NULL AS present"

# Every root-namespace checkpoint of the thread with what it needs from its parent.
THREAD_CHECKPOINTS_SQL = """
SELECT checkpoint_id, parent_checkpoint_id, checkpoint ->> 'ts' AS ts,
       ARRAY(
           SELECT channel
           FROM jsonb_object_keys(
               coalesce(metadata -> 'counters_since_delta_snapshot', '{}'::jsonb)
           ) AS channel
           WHERE checkpoint -> 'channel_versions' ? channel
       ) AS replays
FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns = ''
ORDER BY checkpoint_id DESC
"""

DELETE_WRITES_SQL = """
DELETE FROM checkpoint_writes
WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = ANY(%s)
"""

DELETE_CHECKPOINTS_SQL = """
WITH deleted AS (
    DELETE FROM checkpoints
    WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = ANY(%s)
    RETURNING checkpoint -> 'channel_versions' AS versions
)
SELECT DISTINCT v.key AS channel, v.value AS version
FROM deleted CROSS JOIN LATERAL jsonb_each_text(deleted.versions) AS v
"""

DETACH_PARENTS_SQL = """
UPDATE checkpoints SET parent_checkpoint_id = NULL
WHERE thread_id = %s AND checkpoint_ns = '' AND parent_checkpoint_id = ANY(%s)
"""

REFERENCED_BLOBS_SQL = """
SELECT DISTINCT v.key AS channel, v.value AS version
FROM checkpoints c CROSS JOIN LATERAL jsonb_each_text(c.checkpoint -> 'channel_versions') AS v
WHERE c.thread_id = %s AND c.checkpoint_ns = ''
"""

DELETE_BLOBS_SQL = """
DELETE FROM checkpoint_blobs
WHERE thread_id = %s AND checkpoint_ns = '' AND channel = %s AND version = ANY(%s)
"""

# Subgraph-call namespaces (``name:task``) whose root checkpoint is being deleted.
DOOMED_CALLS_SQL = """
SELECT DISTINCT checkpoint_ns FROM checkpoints
WHERE thread_id = %s AND checkpoint_ns LIKE '%%:%%'
  AND metadata -> 'parents' ->> '' = ANY(%s)
"""

DELETE_NAMESPACES_SQL = (
    "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ANY(%s)",
    "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = ANY(%s)",
    "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = ANY(%s)",
)

# The ledger's started_at is the database's clock, a checkpoint's ts its writer's.
DELETE_LEDGER_BEFORE_SQL = """
DELETE FROM tool_call_ledger
WHERE thread_id = %s AND started_at < %s::timestamptz - interval '1 hour'
"""

# Every table a thread owns rows in, keyed by thread_id: the checkpointer's three,
# then the tool-call ledger and the owner record (a later thread of the same id
# starts afresh), which exist only where the agent's own setup ran. Deleting a
# thread (``delete_threads``: the savers' ``delete_thread``/``prune("delete")``,
# ``memory-agent delete-thread``/``sweep``) removes its rows from each that exists.
THREAD_TABLES = (
    "checkpoints",
    "checkpoint_writes",
    "checkpoint_blobs",
    "tool_call_ledger",
    "thread_owners",
)
EXISTING_TABLES_SQL = (
    "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL"
)


@dataclass(frozen=True)
class PruneResult:
    """What one ``prune_thread`` call deleted."""

    checkpoints: int = 0
    writes: int = 0
    blobs: int = 0
    ledger_rows: int = 0


def kept_checkpoints(rows: Sequence[Mapping[str, Any]], keep: int) -> set[str]:
    """The newest ``keep`` ids of ``rows`` (newest first) and every ancestor they replay from."""
    parent = {row["checkpoint_id"]: row["parent_checkpoint_id"] for row in rows}
    replays = {row["checkpoint_id"]: set(row["replays"] or ()) for row in rows}
    kept: set[str] = set()
    walked: set[tuple[str, frozenset[str]]] = set()
    for row in rows[:keep]:
        current: str | None = row["checkpoint_id"]
        needed = frozenset(replays[row["checkpoint_id"]])
        kept.add(row["checkpoint_id"])
        while needed and current is not None and (current, needed) not in walked:
            walked.add((current, needed))
            current = parent.get(current)
            if current is None or current not in parent:
                break  # the chain ends here (a root, or pruned before by an older rule)
            kept.add(current)
            # A channel is stored at this ancestor unless it too replays it.
            needed = needed & frozenset(replays[current])
    return kept


def _garbage(
    freed: Iterable[Mapping[str, Any]], referenced: Iterable[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """Blob versions a deleted checkpoint used and no kept one does, by channel."""
    kept = {(r["channel"], r["version"]) for r in referenced}
    garbage: dict[str, list[str]] = {}
    for row in freed:
        if (row["channel"], row["version"]) not in kept:
            garbage.setdefault(row["channel"], []).append(row["version"])
    return garbage


# (sql, params, rows wanted?) out; (rows, rowcount) back in.
_Statements = Generator[tuple[str, Any, bool], tuple[list[Any], int], PruneResult]
_Deletion = Generator[tuple[str, Any, bool], tuple[list[Any], int], "ThreadDeletion"]


def _prune_statements(thread_id: str, keep: int) -> _Statements:
    rows, _ = yield THREAD_CHECKPOINTS_SQL, (thread_id,), True
    if len(rows) <= keep:
        return PruneResult()
    kept = kept_checkpoints(rows, keep)
    doomed = [row["checkpoint_id"] for row in rows if row["checkpoint_id"] not in kept]
    if not doomed:
        return PruneResult()
    oldest_kept_ts = min(row["ts"] for row in rows if row["checkpoint_id"] in kept)
    calls, _ = yield DOOMED_CALLS_SQL, (thread_id, doomed), True
    if calls:
        namespaces = [row["checkpoint_ns"] for row in calls]
        for sql in DELETE_NAMESPACES_SQL:
            yield sql, (thread_id, namespaces), False
    _, writes = yield DELETE_WRITES_SQL, (thread_id, doomed), False
    freed, _ = yield DELETE_CHECKPOINTS_SQL, (thread_id, doomed), True
    yield DETACH_PARENTS_SQL, (thread_id, doomed), False
    referenced, _ = yield REFERENCED_BLOBS_SQL, (thread_id,), True
    blobs = 0
    for channel, versions in _garbage(freed, referenced).items():
        _, deleted = yield DELETE_BLOBS_SQL, (thread_id, channel, versions), False
        blobs += deleted
    ledger_rows = 0
    (present,), _ = yield LEDGER_EXISTS_SQL, (), True
    if present["present"]:
        _, ledger_rows = yield DELETE_LEDGER_BEFORE_SQL, (thread_id, oldest_kept_ts), False
    return PruneResult(len(doomed), writes, blobs, ledger_rows)


@dataclass
class ThreadDeletion:
    """What a deletion removed (or, for a dry run, would remove)."""

    thread_ids: list[str] = field(default_factory=list)
    """The ids asked for that had checkpoints or ledger rows."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows per table of ``THREAD_TABLES`` that exists."""

    @property
    def threads(self) -> int:
        return len(self.thread_ids)

    def as_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "thread_ids": self.thread_ids, "rows": self.rows}


def _delete_statements(thread_ids: Sequence[str], dry_run: bool) -> _Deletion:
    ids = list(dict.fromkeys(str(thread_id) for thread_id in thread_ids))
    report = ThreadDeletion()
    rows, _ = yield EXISTING_TABLES_SQL, (list(THREAD_TABLES),), True
    existing = {row["name"] for row in rows}
    tables = [table for table in THREAD_TABLES if table in existing]
    found = "SELECT thread_id FROM checkpoints WHERE thread_id = ANY(%(ids)s)"
    if "tool_call_ledger" in existing:
        found += " UNION SELECT thread_id FROM tool_call_ledger WHERE thread_id = ANY(%(ids)s)"
    rows, _ = yield found, {"ids": ids}, True
    present = {row["thread_id"] for row in rows}
    report.thread_ids = [thread_id for thread_id in ids if thread_id in present]
    for table in tables:  # names from THREAD_TABLES only, never from input
        if dry_run:
            rows, _ = yield (
                f"SELECT count(*) AS n FROM {table} WHERE thread_id = ANY(%s)",
                (ids,),
                True,
            )
            report.rows[table] = int(rows[0]["n"])
        else:
            _, deleted = yield f"DELETE FROM {table} WHERE thread_id = ANY(%s)", (ids,), False
            report.rows[table] = deleted
    return report


@contextmanager
def _transaction(pool_or_connection: Any) -> Any:
    if isinstance(pool_or_connection, ConnectionPool):
        with pool_or_connection.connection() as conn, conn.transaction():
            yield conn
    else:
        with pool_or_connection.transaction():
            yield pool_or_connection


@asynccontextmanager
async def _atransaction(pool_or_connection: Any) -> Any:
    if isinstance(pool_or_connection, AsyncConnectionPool):
        async with pool_or_connection.connection() as conn, conn.transaction():
            yield conn
    else:
        async with pool_or_connection.transaction():
            yield pool_or_connection


def _run(pool_or_connection: Any, statements: Generator[Any, Any, R]) -> R:
    """Run ``statements`` in one transaction: all of them take effect, or none."""
    with _transaction(pool_or_connection) as conn:
        try:
            sql, params, fetch = next(statements)
            while True:
                # Unprepared: each statement is planned knowing its arrays.
                cursor = conn.execute(sql, params, prepare=False)
                rows = cursor.fetchall() if fetch else []
                sql, params, fetch = statements.send((rows, cursor.rowcount))
        except StopIteration as done:
            return done.value


async def _arun(pool_or_connection: Any, statements: Generator[Any, Any, R]) -> R:
    """Async twin of ``_run``."""
    async with _atransaction(pool_or_connection) as conn:
        try:
            sql, params, fetch = next(statements)
            while True:
                cursor = await conn.execute(sql, params, prepare=False)
                rows = await cursor.fetchall() if fetch else []
                sql, params, fetch = statements.send((rows, cursor.rowcount))
        except StopIteration as done:
            return done.value


def _check_keep(keep: int) -> None:
    if keep < 1:
        raise ValueError("keep must be at least 1: the newest checkpoint is the thread itself")


def prune_thread(pool: Any, thread_id: str, keep: int) -> PruneResult:
    """Delete all but the newest ``keep`` checkpoints of ``thread_id`` and what only they need.

    ``pool`` is a psycopg pool or an autocommit connection; one transaction.
    """
    _check_keep(keep)
    return _run(pool, _prune_statements(thread_id, keep))


async def aprune_thread(pool: Any, thread_id: str, keep: int) -> PruneResult:
    """Async twin of ``prune_thread``."""
    _check_keep(keep)
    return await _arun(pool, _prune_statements(thread_id, keep))


def delete_threads(
    pool: Any, thread_ids: Sequence[str], *, dry_run: bool = False
) -> ThreadDeletion:
    """Delete the threads' rows from every table of ``THREAD_TABLES`` that exists, in one
    transaction (all or nothing); return the counts. ``dry_run``: count, delete nothing."""
    return _run(pool, _delete_statements(thread_ids, dry_run))


async def adelete_threads(
    pool: Any, thread_ids: Sequence[str], *, dry_run: bool = False
) -> ThreadDeletion:
    """Async twin of ``delete_threads``."""
    return await _arun(pool, _delete_statements(thread_ids, dry_run))
