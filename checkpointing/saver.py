"""LangGraph's Postgres checkpointer on the shared pool, plus safe setup and table checks.

We use ``PostgresSaver`` / ``AsyncPostgresSaver`` and their tables unchanged
(checkpoints, checkpoint_blobs, checkpoint_writes, checkpoint_migrations), and
change what they do in these ways, each measured or needed for correctness
(``python -m bench --only long_threads`` prints the figures):

- thread ids are validated before they reach SQL, so a bad id is a one-line
  error instead of a btree-size or NUL-byte failure deep in a write;
- ``setup`` holds a Postgres advisory lock, because the stock migration loop
  run by two processes at once races on ``checkpoint_migrations`` (duplicate
  key) and on ``CREATE INDEX CONCURRENTLY``; the lock is awaited by polling,
  never by a blocking statement (see ``setup_lock``);
- on a pool, no saver-wide lock: the stock savers run every statement under
  one lock per saver object even on a pool, so one process's runs queue
  behind each other; each pooled operation has its own connection, so the
  lock only protects the single-connection case, where we keep it;
- a delta-stored channel (``graph.state``'s messages) is rebuilt in one
  statement, with its snapshot read once per process (``delta_history``);
- the run guard's read of the thread's head is handed to the run itself
  (``reuse_head``), so a turn reads the thread once, not twice;
- retention knows about deltas, subgraph namespaces and the tool-call ledger
  (``retention``), and ``delete_thread`` / ``prune`` are one transaction each
  and work on a database set up only by ``PostgresSaver.setup()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    get_checkpoint_id,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpointing.delta_history import (
    DEFAULT_SNAPSHOT_CACHE_SIZE,
    DELTA_HISTORY_SQL,
    SnapshotCache,
    fresh_copy,
    history_params,
    split_rows,
)
from checkpointing.retention import (
    adelete_threads,
    aprune_thread,
    delete_threads,
    prune_thread,
)
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
# A prune is one transaction of about ten statements (tens of ms on a busy
# server); every 50th step keeps it off all but one turn in ~17 of the agent's,
# while a thread holds at most keep + 50 checkpoints (plus the ancestors a kept
# checkpoint rebuilds its messages from; a delta checkpoint is ~1-2 KB).
PRUNE_EVERY_STEPS = 50


def _prune_due(keep: int | None, config: RunnableConfig, metadata: CheckpointMetadata) -> bool:
    if not keep:
        return False
    if (config.get("configurable") or {}).get("checkpoint_ns"):
        return False  # subgraph checkpoints live and die with their parent's
    step = metadata.get("step")
    return isinstance(step, int) and step > 0 and step % PRUNE_EVERY_STEPS == 0


TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS locked"

MISSING_TABLES_SQL = """
SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL
"""


def _pool_of(conn: Any) -> Any:
    # Replaying work needs a fresh connection, which only a pool can hand out.
    return conn if hasattr(conn, "getconn") else None


class _NoLock:
    """Stands in for the saver-wide lock on a pool (sync and async ``with``)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None

    def locked(self) -> bool:
        return False


# The head checkpoint the run guard read, for the run to use instead of reading it again.
_reused_head: ContextVar[CheckpointTuple | None] = ContextVar("memory_agent_head", default=None)


@contextmanager
def reuse_head(saved: CheckpointTuple | None) -> Iterator[None]:
    """Serve the next head read of ``saved``'s thread from ``saved`` (once, in this context).

    The caller holds the thread's lock, so the head cannot move in between.
    """
    token = _reused_head.set(saved)
    try:
        yield
    finally:
        try:
            _reused_head.reset(token)
        except ValueError:  # a generator closed from another context (e.g. by the GC)
            _reused_head.set(None)


def _take_reused_head(config: RunnableConfig) -> CheckpointTuple | None:
    saved = _reused_head.get()
    if saved is None:
        return None
    configurable = config.get("configurable") or {}
    mine = saved.config["configurable"]
    asked_id = get_checkpoint_id(config)
    if str(configurable.get("thread_id")) != mine["thread_id"] or configurable.get(
        "checkpoint_ns", ""
    ) != mine.get("checkpoint_ns", ""):
        return None
    # The run's first read of this thread uses it up, whichever checkpoint it
    # asks for: later reads in the run must see what the run has written since.
    _reused_head.set(None)
    if asked_id is not None and asked_id != mine["checkpoint_id"]:
        return None
    return saved


def _snapshot_keys(
    config: RunnableConfig, checkpoint: Checkpoint, new_versions: ChannelVersions
) -> list[tuple[tuple[str, str, str, str], Any]]:
    configurable = config["configurable"]
    return [
        (
            (
                str(configurable["thread_id"]),
                configurable.get("checkpoint_ns", ""),
                channel,
                str(new_versions[channel]),
            ),
            value,
        )
        for channel, value in checkpoint["channel_values"].items()
        if isinstance(value, _DeltaSnapshot) and channel in new_versions
    ]


def _blob_key(value: Any, channel: str) -> tuple[str, str, str, str]:
    versions = value["checkpoint"].get("channel_versions") or {}
    return (value["thread_id"], value["checkpoint_ns"], channel, str(versions.get(channel)))


class _DeltaHistory:
    """What both savers share: the snapshot cache and assembling a fast history read."""

    snapshots: SnapshotCache
    conn: Any
    lock: Any

    def _configure(self, keep_checkpoints: int | None, snapshot_cache_size: int) -> None:
        if isinstance(self.conn, ConnectionPool | AsyncConnectionPool):
            self.lock = _NoLock()
        self.keep_checkpoints = keep_checkpoints
        self.retry_stats = RetryStats()
        self.snapshots = SnapshotCache(snapshot_cache_size)

    # A checkpoint that stores a snapshot (one step in ``snapshot_frequency``,
    # the head now and then) would otherwise decode the whole list on every
    # read: the stock loader gets only the blobs the cache does not hold, and
    # the snapshots it decodes go into the cache.

    def _without_cached_snapshots(self, value: Any) -> tuple[Any, dict[str, Any]]:
        from_cache: dict[str, Any] = {}
        to_decode = []
        for row in value["channel_values"] or ():
            cached = self.snapshots.get(_blob_key(value, bytes(row[0]).decode()))
            if cached is None:
                to_decode.append(row)
            else:
                from_cache[bytes(row[0]).decode()] = fresh_copy(cached)
        return {**value, "channel_values": to_decode}, from_cache

    def _with_cached_snapshots(
        self, value: Any, saved: CheckpointTuple, from_cache: dict[str, Any]
    ) -> CheckpointTuple:
        channel_values = saved.checkpoint["channel_values"]
        for channel, loaded in list(channel_values.items()):
            if isinstance(loaded, _DeltaSnapshot) and channel not in from_cache:
                self.snapshots.put(_blob_key(value, channel), loaded)
                channel_values[channel] = fresh_copy(loaded)
        channel_values.update(from_cache)
        return saved

    def _history_query(
        self, config: RunnableConfig, checkpoint_id: str, channel: str
    ) -> tuple[str, dict[str, Any], tuple[str, str, str]]:
        thread_id = str(config["configurable"]["thread_id"])
        checkpoint_ns = config["configurable"].get("checkpoint_ns", "")
        cached = self.snapshots.versions(thread_id, checkpoint_ns, channel)
        params = history_params(thread_id, checkpoint_ns, checkpoint_id, channel, cached)
        return DELTA_HISTORY_SQL, params, (thread_id, checkpoint_ns, channel)

    def _assemble(
        self, rows: list[dict[str, Any]], key: tuple[str, str, str]
    ) -> Mapping[str, DeltaChannelHistory] | None:
        """The channel's history from the statement's rows; None when the cache lost the seed."""
        channel = key[2]
        chain, seed_version, seed_inline, seed_in_blob, rest = split_rows(rows)
        history = self._build_delta_channels_writes_history(  # type: ignore[attr-defined]
            channels=[channel],
            chain_by_ch={channel: chain},
            seed_ver_by_ch={channel: seed_version},
            seed_inline_by_ch={channel: seed_inline} if seed_inline is not None else {},
            stage2_rows=rest,
        )
        entry = history[channel]
        if seed_in_blob and seed_version is not None:
            cache_key = (*key, seed_version)
            if "seed" in entry:
                self.snapshots.put(cache_key, entry["seed"])
                entry["seed"] = fresh_copy(entry["seed"])
            else:
                cached = self.snapshots.get(cache_key)
                if cached is None:
                    return None  # evicted between the two looks: read it the stock way
                entry["seed"] = fresh_copy(cached)
        return history


class MemoryAgentSaver(_DeltaHistory, PostgresSaver):
    """``PostgresSaver`` that rejects invalid thread ids, keeps history bounded, and on a
    pool runs each read and write once more when the connection drops under it
    (every write is an upsert keyed by ids fixed before the first attempt, so a
    replay writes the same rows; see ``database.retry``).

    ``keep_checkpoints``: every ``PRUNE_EVERY_STEPS`` steps a thread is pruned to
    its newest ``keep_checkpoints`` checkpoints and what they need (``None``
    keeps everything). ``snapshot_cache_size``: delta snapshots kept decoded in
    this process (0 turns the cache off).
    """

    def __init__(
        self,
        conn: Any,
        *,
        keep_checkpoints: int | None = None,
        snapshot_cache_size: int = DEFAULT_SNAPSHOT_CACHE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn, **kwargs)
        self._configure(keep_checkpoints, snapshot_cache_size)

    def _with_retry(self, work: Callable[[], T]) -> T:
        pool = _pool_of(self.conn)
        if pool is None:
            return work()
        return run_with_retry(work, pool=pool, stats=self.retry_stats)

    def get_tuple(self, config: RunnableConfig) -> Any:
        thread_id_from_config(config)
        if (reused := _take_reused_head(config)) is not None:
            return reused
        parent = super().get_tuple
        return self._with_retry(lambda: parent(config))

    def _load_checkpoint_tuple(self, value: Any) -> CheckpointTuple:
        trimmed, from_cache = self._without_cached_snapshots(value)
        return self._with_cached_snapshots(
            value, super()._load_checkpoint_tuple(trimmed), from_cache
        )

    def list(self, config: RunnableConfig | None, **kwargs: Any) -> Iterator[Any]:
        thread_id_from_config(config)
        return super().list(config, **kwargs)

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        thread_id_from_config(config)
        checkpoint_id = get_checkpoint_id(config)
        if len(channels) != 1 or not checkpoint_id:
            return super().get_delta_channel_history(config=config, channels=channels)
        sql, params, key = self._history_query(config, checkpoint_id, channels[0])

        def read() -> list[Any]:
            with self._cursor() as cur:
                return cur.execute(sql, params, prepare=False).fetchall()

        history = self._assemble(self._with_retry(read), key)
        if history is None:
            return super().get_delta_channel_history(config=config, channels=channels)
        return history

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
        for key, snapshot in _snapshot_keys(config, checkpoint, new_versions):
            self.snapshots.put(key, snapshot)
        if thread_id is not None and _prune_due(self.keep_checkpoints, config, metadata):
            keep = int(self.keep_checkpoints or 0)  # set: _prune_due checked it

            def prune() -> Any:
                # On a single connection, PostgresSaver serialises every use with
                # self.lock (its writes may run on another thread); pruning must too.
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
        """Delete the thread's checkpoints, writes, blobs and tool-call ledger rows and owner record, atomically."""
        self.prune([thread_id], strategy="delete")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``"delete"``: the threads go whole (ledger rows and owner records included), in one transaction.

        ``"keep_latest"``: each thread keeps its latest checkpoint and what it
        needs to be rebuilt (``retention.prune_thread`` with keep 1), so unlike
        the stock saver it works on threads that use a ``DeltaChannel``.
        """
        ids = _thread_ids(thread_ids, strategy)
        with self.lock:
            if strategy == "delete":
                delete_threads(self.conn, ids)
                for thread_id in ids:
                    self.snapshots.forget_thread(thread_id)
                return
            for thread_id in ids:
                prune_thread(self.conn, thread_id, 1)


def _thread_ids(thread_ids: Sequence[str], strategy: str) -> list[str]:
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in ("keep_latest", "delete"):
        raise ValueError(f"Unknown prune strategy: {strategy!r}")
    ids = [str(thread_id_from_config({"configurable": {"thread_id": t}})) for t in thread_ids]
    return ids


class AsyncMemoryAgentSaver(_DeltaHistory, AsyncPostgresSaver):
    """Async twin of ``MemoryAgentSaver``."""

    def __init__(
        self,
        conn: Any,
        *,
        keep_checkpoints: int | None = None,
        snapshot_cache_size: int = DEFAULT_SNAPSHOT_CACHE_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(conn, **kwargs)
        self._configure(keep_checkpoints, snapshot_cache_size)

    async def _with_retry(self, work: Callable[[], Awaitable[T]]) -> T:
        pool = _pool_of(self.conn)
        if pool is None:
            return await work()
        return await arun_with_retry(work, pool=pool, stats=self.retry_stats)

    async def aget_tuple(self, config: RunnableConfig) -> Any:
        thread_id_from_config(config)
        if (reused := _take_reused_head(config)) is not None:
            return reused
        parent = super().aget_tuple
        return await self._with_retry(lambda: parent(config))

    async def _load_checkpoint_tuple(self, value: Any) -> CheckpointTuple:
        trimmed, from_cache = self._without_cached_snapshots(value)
        return self._with_cached_snapshots(
            value, await super()._load_checkpoint_tuple(trimmed), from_cache
        )

    async def alist(self, config: RunnableConfig | None, **kwargs: Any) -> AsyncIterator[Any]:
        thread_id_from_config(config)
        async for item in super().alist(config, **kwargs):
            yield item

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        thread_id_from_config(config)
        checkpoint_id = get_checkpoint_id(config)
        if len(channels) != 1 or not checkpoint_id:
            return await super().aget_delta_channel_history(config=config, channels=channels)
        sql, params, key = self._history_query(config, checkpoint_id, channels[0])

        async def read() -> list[Any]:
            async with self._cursor() as cur:
                await cur.execute(sql, params, prepare=False)
                return await cur.fetchall()

        history = self._assemble(await self._with_retry(read), key)
        if history is None:
            return await super().aget_delta_channel_history(config=config, channels=channels)
        return history

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
        for key, snapshot in _snapshot_keys(config, checkpoint, new_versions):
            self.snapshots.put(key, snapshot)
        if thread_id is not None and _prune_due(self.keep_checkpoints, config, metadata):
            keep = int(self.keep_checkpoints or 0)  # set: _prune_due checked it

            async def aprune() -> Any:
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
        await self.aprune([thread_id], strategy="delete")

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of ``MemoryAgentSaver.prune``."""
        ids = _thread_ids(thread_ids, strategy)
        async with self.lock:
            if strategy == "delete":
                await adelete_threads(self.conn, ids)
                for thread_id in ids:
                    self.snapshots.forget_thread(thread_id)
                return
            for thread_id in ids:
                await aprune_thread(self.conn, thread_id, 1)


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
