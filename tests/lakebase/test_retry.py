"""The agent's saver and store replay an operation once when its connection was dropped.

The pools here deliberately skip the check-before-use, so the dead connection
is really lent out and the statement really fails; the replay must succeed on
a fresh connection and be counted.
"""

from __future__ import annotations

from typing import Any

import psycopg
from langgraph.checkpoint.base import empty_checkpoint
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpointing import (
    AsyncMemoryAgentSaver,
    MemoryAgentSaver,
    asetup_checkpoint_tables,
    setup_checkpoint_tables,
)
from database.checks import PoolRef, draining_check
from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.postgres import AsyncMemoryStore, MemoryStore

CONFIG = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}


def _drop_other_sessions(database_url: str) -> int:
    """Terminate every session on this database but ours (what a failover does)."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_sync_saver_and_store_replay_after_a_dropped_connection(database_url: str) -> None:
    with ConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=1, open=True
    ) as pool:
        setup_checkpoint_tables(pool)
        store = MemoryStore(pool, embeddings=HashEmbeddings())
        store.setup()
        saver = MemoryAgentSaver(pool)

        assert _drop_other_sessions(database_url) == 1
        saved = saver.put(CONFIG, empty_checkpoint(), {}, {})
        assert saver.retry_stats.retries == 1
        assert _drop_other_sessions(database_url) == 1
        assert saver.get_tuple(saved) is not None
        assert saver.retry_stats.retries == 2

        assert _drop_other_sessions(database_url) == 1
        store.put(("user_memories", "ada"), "k", {"content": "likes tea"})
        assert store.retry_stats.retries == 1
        assert store.get(("user_memories", "ada"), "k").value == {"content": "likes tea"}
        assert saver.retry_stats.failures == store.retry_stats.failures == 0


async def test_async_saver_and_store_replay_after_a_dropped_connection(database_url: str) -> None:
    async with AsyncConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=1, open=False
    ) as pool:
        await asetup_checkpoint_tables(pool)
        store = AsyncMemoryStore(pool, embeddings=HashEmbeddings())
        await store.setup()
        saver = AsyncMemoryAgentSaver(pool)

        assert _drop_other_sessions(database_url) == 1
        saved = await saver.aput(CONFIG, empty_checkpoint(), {}, {})
        assert saver.retry_stats.retries == 1
        assert _drop_other_sessions(database_url) == 1
        await store.aput(("user_memories", "ada"), "k", {"content": "likes tea"})
        assert store.retry_stats.retries == 1
        assert await saver.aget_tuple(saved) is not None
        assert (await store.aget(("user_memories", "ada"), "k")).value == {"content": "likes tea"}


def _pool(database_url: str, check: Any) -> ConnectionPool[Any]:
    return ConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=4, max_size=4, check=check, open=True
    )


def test_first_dead_connection_drains_the_pool(database_url: str) -> None:
    """After a restart every idle connection is dead: one is found, all are replaced.

    psycopg_pool's own check finds them one at a time, sleeping 0, 1, 2 s
    between them; the draining check meets one and closes the rest at once.
    """
    ref = PoolRef()
    with _pool(database_url, draining_check(ref)) as draining:
        ref.pool = draining
        draining.wait()
        assert _drop_other_sessions(database_url) == 4
        with draining.connection() as conn:
            conn.execute("SELECT 1")
        assert draining.get_stats().get("connections_lost", 0) == 1

    with _pool(database_url, ConnectionPool.check_connection) as stock:
        stock.wait()
        assert _drop_other_sessions(database_url) == 4
        with stock.connection() as conn:
            conn.execute("SELECT 1")
        assert stock.get_stats().get("connections_lost", 0) == 4
