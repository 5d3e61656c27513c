"""LangGraph's Postgres checkpointer on the shared pool, plus safe setup and table checks.

We use ``PostgresSaver`` / ``AsyncPostgresSaver`` and their tables unchanged
(checkpoints, checkpoint_blobs, checkpoint_writes, checkpoint_migrations), with
two additions, each for correctness:

- thread ids are validated before they reach SQL, so a bad id is a one-line
  error instead of a btree-size or NUL-byte failure deep in a write;
- ``setup`` holds a Postgres advisory lock, because the stock migration loop
  run by two processes at once races on ``checkpoint_migrations`` (duplicate
  key) and on ``CREATE INDEX CONCURRENTLY``; the lock is awaited by polling,
  never by a blocking statement (see ``setup_lock``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpointing.retention import aprune_thread, prune_thread
from checkpointing.threads import thread_id_from_config
from database.retry import RetryStats, arun_with_retry, run_with_retry

T = TypeVar("T")

CHECKPOINT_TABLES = (
    "checkpoint_migrations",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
)
# One constant key for every process that runs our migrations (checkpoint and store).
SETUP_LOCK_KEY = 0x6D656D6F7279  # "memory"
# Pruning costs a few index lookups; doing it every 10th step keeps it off most
# writes while a thread never holds more than keep + 10 checkpoints.
PRUNE_EVERY_STEPS = 10


def _prune_due(keep: int | None, config: RunnableConfig, metadata: CheckpointMetadata) -> bool:
    if not keep:
        return False
    if (config.get("configurable") or {}).get("checkpoint_ns"):
        return False  # subgraph checkpoints live and die with their parent's
    step = metadata.get("step")
    return isinstance(step, int) and step > 0 and step % PRUNE_EVERY_STEPS == 0


TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS locked"
# The tool-call ledger (checkpointing/tool_ledger.py) belongs to the thread, so it goes with it.
DELETE_LEDGER_ROWS_SQL = "DELETE FROM tool_call_ledger WHERE thread_id = %s"
# So does its owner record: a later thread of the same id starts afresh.
DELETE_OWNER_SQL = "DELETE FROM thread_owners WHERE thread_id = %s"

MISSING_TABLES_SQL = """
SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL
"""


def _pool_of(conn: Any) -> Any:
    # Replaying work needs a fresh connection, which only a pool can hand out.
    return conn if hasattr(conn, "getconn") else None


class MemoryAgentSaver(PostgresSaver):
    """``PostgresSaver`` that rejects invalid thread ids, keeps history bounded, and on a
    pool runs each read and write once more when the connection drops under it
    (every write is an upsert keyed by ids fixed before the first attempt, so a
    replay writes the same rows; see ``database.retry``).

    ``keep_checkpoints``: every ``PRUNE_EVERY_STEPS`` steps a thread is pruned to
    its newest ``keep_checkpoints`` checkpoints (``None`` keeps everything).
    """

    def __init__(self, conn: Any, *, keep_checkpoints: int | None = None, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.keep_checkpoints = keep_checkpoints
        self.retry_stats = RetryStats()

    def _with_retry(self, work: Callable[[], T]) -> T:
        pool = _pool_of(self.conn)
        if pool is None:
            return work()
        return run_with_retry(work, pool=pool, stats=self.retry_stats)

    def get_tuple(self, config: RunnableConfig) -> Any:
        thread_id_from_config(config)
        parent = super().get_tuple
        return self._with_retry(lambda: parent(config))

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[Any]:
        thread_id_from_config(config)
        return super().list(config, **kwargs)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id = thread_id_from_config(config)
        parent = super().put
        saved = self._with_retry(lambda: parent(config, checkpoint, metadata, new_versions))
        if thread_id is not None and _prune_due(self.keep_checkpoints, config, metadata):
            keep = int(self.keep_checkpoints or 0)  # set: _prune_due checked it

            def prune() -> Any:
                # On a single connection, PostgresSaver serialises every use with
                # self.lock (its writes may run on another thread); pruning must too.
                if isinstance(self.conn, ConnectionPool):
                    return prune_thread(self.conn, thread_id, keep)
                with self.lock:
                    return prune_thread(self.conn, thread_id, keep)

            self._with_retry(prune)
        return saved

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id_from_config(config)
        parent = super().put_writes
        self._with_retry(lambda: parent(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes, tool-call ledger rows and owner record."""
        super().delete_thread(thread_id)
        with self._cursor() as cur:
            cur.execute(DELETE_LEDGER_ROWS_SQL, (str(thread_id),))
            cur.execute(DELETE_OWNER_SQL, (str(thread_id),))


class AsyncMemoryAgentSaver(AsyncPostgresSaver):
    """Async twin of ``MemoryAgentSaver``."""

    def __init__(self, conn: Any, *, keep_checkpoints: int | None = None, **kwargs: Any) -> None:
        super().__init__(conn, **kwargs)
        self.keep_checkpoints = keep_checkpoints
        self.retry_stats = RetryStats()

    async def _with_retry(self, work: Callable[[], Awaitable[T]]) -> T:
        pool = _pool_of(self.conn)
        if pool is None:
            return await work()
        return await arun_with_retry(work, pool=pool, stats=self.retry_stats)

    async def aget_tuple(self, config: RunnableConfig) -> Any:
        thread_id_from_config(config)
        parent = super().aget_tuple
        return await self._with_retry(lambda: parent(config))

    async def alist(self, config: RunnableConfig | None, **kwargs: Any) -> AsyncIterator[Any]:
        thread_id_from_config(config)
        async for item in super().alist(config, **kwargs):
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread_id = thread_id_from_config(config)
        parent = super().aput
        saved = await self._with_retry(lambda: parent(config, checkpoint, metadata, new_versions))
        if thread_id is not None and _prune_due(self.keep_checkpoints, config, metadata):
            keep = int(self.keep_checkpoints or 0)  # set: _prune_due checked it

            async def aprune() -> Any:
                if isinstance(self.conn, AsyncConnectionPool):
                    return await aprune_thread(self.conn, thread_id, keep)
                async with self.lock:
                    return await aprune_thread(self.conn, thread_id, keep)

            await self._with_retry(aprune)
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id_from_config(config)
        parent = super().aput_writes
        await self._with_retry(lambda: parent(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of ``MemoryAgentSaver.delete_thread``."""
        await super().adelete_thread(thread_id)
        async with self._cursor() as cur:
            await cur.execute(DELETE_LEDGER_ROWS_SQL, (str(thread_id),))
            await cur.execute(DELETE_OWNER_SQL, (str(thread_id),))


class SetupLockTimeout(RuntimeError):
    """Another process has been running migrations for longer than we wait."""


def _lock_timeout_error() -> SetupLockTimeout:
    return SetupLockTimeout(
        f"another process has held the setup lock for over {SETUP_LOCK_TIMEOUT_SECONDS} s; "
        "wait for it to finish, then run setup again"
    )


# A waiter must not sit in `SELECT pg_advisory_lock(...)`: that open statement is a
# transaction, and the holder's CREATE INDEX CONCURRENTLY waits for every open
# transaction, so the two would deadlock. Polling pg_try_advisory_lock keeps each
# attempt a transaction of microseconds.
SETUP_LOCK_POLL_SECONDS = 0.05
SETUP_LOCK_TIMEOUT_SECONDS = 300


@contextmanager
def setup_lock(pool: Any) -> Iterator[Any]:
    """Hold the migrations advisory lock on one pooled connection; yield that connection."""
    with pool.connection() as conn:
        deadline = time.monotonic() + SETUP_LOCK_TIMEOUT_SECONDS
        while not conn.execute(TRY_LOCK_SQL, (SETUP_LOCK_KEY,)).fetchone()["locked"]:
            if time.monotonic() > deadline:
                raise _lock_timeout_error()
            time.sleep(SETUP_LOCK_POLL_SECONDS)
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))


@asynccontextmanager
async def asetup_lock(pool: Any) -> AsyncIterator[Any]:
    """Async twin of ``setup_lock``."""
    async with pool.connection() as conn:
        deadline = time.monotonic() + SETUP_LOCK_TIMEOUT_SECONDS
        while not (await (await conn.execute(TRY_LOCK_SQL, (SETUP_LOCK_KEY,))).fetchone())[
            "locked"
        ]:
            if time.monotonic() > deadline:
                raise _lock_timeout_error()
            await asyncio.sleep(SETUP_LOCK_POLL_SECONDS)
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))


def setup_checkpoint_tables(pool: Any) -> None:
    """Create or migrate the checkpoint tables; safe to run twice and concurrently."""
    with setup_lock(pool) as conn:
        PostgresSaver(conn).setup()


async def asetup_checkpoint_tables(pool: Any) -> None:
    """Async twin of ``setup_checkpoint_tables``."""
    async with asetup_lock(pool) as conn:
        await AsyncPostgresSaver(conn).setup()


def missing_tables(pool: Any, tables: Sequence[str] = CHECKPOINT_TABLES) -> list[str]:
    """Names among ``tables`` that do not exist (on the connection's search_path)."""
    with pool.connection() as conn:
        rows = conn.execute(MISSING_TABLES_SQL, (list(tables),)).fetchall()
    return [row["name"] for row in rows]


async def amissing_tables(pool: Any, tables: Sequence[str] = CHECKPOINT_TABLES) -> list[str]:
    """Async twin of ``missing_tables``."""
    async with pool.connection() as conn:
        cursor = await conn.execute(MISSING_TABLES_SQL, (list(tables),))
        rows = await cursor.fetchall()
    return [row["name"] for row in rows]
