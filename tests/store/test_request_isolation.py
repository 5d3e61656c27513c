"""One caller's store operations fail alone: no batch shared between concurrent callers.

LangGraph's AsyncBatchedBaseStore runs every operation queued in the same event
loop tick as one batch, and a failure sets the same exception on every future
of the batch, quoting the failing caller's text (issue 9). AsyncMemoryStore
runs each operation on its own.
"""

from __future__ import annotations

import asyncio

import pytest
from langgraph.store.postgres import AsyncPostgresStore

from store.postgres import AsyncMemoryStore

SECRET = "ALICE-PRIVATE-NOTE"


async def _concurrent_calls(store: AsyncPostgresStore) -> list[object]:
    await store.aput(("bob",), "k", {"content": "bob likes tea"})
    return await asyncio.gather(
        store.aget(("alice",), f"{SECRET}\x00"),  # a NUL byte: Postgres refuses it
        store.aget(("bob",), "k"),
        store.asearch(("bob",), limit=5),
        store.aput(("carol",), "k", {"content": "carol likes jazz"}),
        return_exceptions=True,
    )


async def test_a_failing_operation_fails_only_its_caller(amemory_store: AsyncMemoryStore) -> None:
    failed, got, found, put = await _concurrent_calls(amemory_store)
    assert isinstance(failed, Exception)
    assert got is not None and got.value == {"content": "bob likes tea"}
    assert isinstance(found, list) and [item.key for item in found] == ["k"]
    assert put is None
    assert (await amemory_store.aget(("carol",), "k")) is not None


async def test_the_stock_store_shares_the_failure(apool: object) -> None:
    """The behaviour the override removes, shown on the library's store (same tick, same batch)."""
    stock = AsyncPostgresStore(apool)  # type: ignore[arg-type]
    await stock.setup()
    failed, got, found, put = await _concurrent_calls(stock)
    assert isinstance(failed, Exception)
    shared = [result for result in (got, found, put) if isinstance(result, Exception)]
    if not shared:
        pytest.fail("the stock store no longer shares a batch's failure: drop the override")
