"""Fixtures for the memory store tests: a pool on this test's fresh database and a set-up store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.postgres import AsyncMemoryStore, MemoryStore

DIMS = 64


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=4) as pool:
        yield pool


@pytest.fixture
async def apool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=4, open=False
    )
    await pool.open()
    yield pool
    await pool.close()


@pytest.fixture
def memory_store(pool: ConnectionPool[Any]) -> MemoryStore:
    store = MemoryStore(pool, embeddings=HashEmbeddings(DIMS), dims=DIMS)
    store.setup()
    return store


@pytest.fixture
async def amemory_store(apool: AsyncConnectionPool[Any]) -> AsyncMemoryStore:
    store = AsyncMemoryStore(apool, embeddings=HashEmbeddings(DIMS), dims=DIMS)
    await store.setup()
    return store
