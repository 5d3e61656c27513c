"""The async twin of the soak: asyncio workers on the async Lakebase pool, under the same faults.

A third of ``LAKEBASE_SOAK_SECONDS`` (default 60 s) with a third of the token
rotations and the same two Postgres restarts, driving ``AsyncMemoryAgentSaver``
and ``AsyncMemoryStore`` the way the async graph does. Faults run on an OS
thread (they block on pg_ctl), so the event loop keeps serving throughout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from checkpointing import AsyncMemoryAgentSaver, asetup_checkpoint_tables
from database import LakebaseTarget
from database.lakebase import aopen_lakebase_pool
from store.embeddings import HashEmbeddings
from store.postgres import AsyncMemoryStore
from tests.lakebase.test_soak import (
    PAUSE_BETWEEN_REQUESTS,
    ROTATIONS,
    SOAK_SECONDS,
    WORKERS,
    Acknowledged,
    Figures,
    faults,
    find_lost,
    payload,
)
from tests.lakebase_harness import FakeLakebase

ASYNC_SECONDS = SOAK_SECONDS / 3
ASYNC_ROTATIONS = ROTATIONS // 3


async def _serve(
    saver: AsyncMemoryAgentSaver,
    store: AsyncMemoryStore,
    worker: int,
    stop: threading.Event,
    figures: Figures,
    acknowledged: list[Acknowledged],
) -> None:
    number = 0
    while not stop.is_set():
        p = payload(worker, number)
        started = time.monotonic()
        figures.requests += 1
        try:
            saved = await saver.aput(p.config, p.checkpoint, p.metadata, p.versions)
            await saver.aput_writes(saved, [p.write], task_id=p.task_id)
            await store.aput(p.ack.namespace, p.ack.key, p.ack.value)
            read_back = await saver.aget_tuple(saved)
        except Exception as exc:
            figures.failures += 1
            figures.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            assert read_back is not None and read_back.checkpoint["id"] == p.ack.checkpoint_id
            acknowledged.append(p.ack)
        figures.longest_stall = max(figures.longest_stall, time.monotonic() - started)
        number += 1
        await asyncio.sleep(PAUSE_BETWEEN_REQUESTS)


@pytest.mark.slow
async def test_async_agent_memory_survives_rotation_and_restarts(
    fake_lakebase: FakeLakebase, workspace_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = await aopen_lakebase_pool(
        LakebaseTarget(autoscaling_endpoint=fake_lakebase.state.endpoint),
        workspace_client=workspace_client,
        min_size=2,
        max_size=WORKERS + 2,
        max_lifetime=max(5.0, ASYNC_SECONDS / 12),
    )
    try:
        await asetup_checkpoint_tables(pool)
        store = AsyncMemoryStore(pool, embeddings=HashEmbeddings())
        await store.setup()
        saver = AsyncMemoryAgentSaver(pool)

        stop = threading.Event()
        figures = Figures()
        acknowledged: list[Acknowledged] = []
        fault_thread = threading.Thread(
            target=faults, args=(fake_lakebase, stop, ASYNC_SECONDS, ASYNC_ROTATIONS)
        )
        fault_thread.start()
        workers = [
            asyncio.create_task(_serve(saver, store, n, stop, figures, acknowledged))
            for n in range(WORKERS)
        ]
        try:
            await asyncio.to_thread(fault_thread.join, ASYNC_SECONDS + 60)
            await asyncio.sleep(ASYNC_SECONDS / ASYNC_ROTATIONS / 2)
        finally:
            stop.set()
            await asyncio.gather(*workers)
            await asyncio.to_thread(fault_thread.join, 120)

        checkpoints: dict[str, dict[str, Any]] = {}
        for thread_id in {ack.thread_id for ack in acknowledged}:
            config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
            checkpoints[thread_id] = {
                saved.checkpoint["id"]: saved.checkpoint["channel_values"].get("messages")
                async for saved in saver.alist(config)
            }
        memories = {}
        for namespace in {ack.namespace for ack in acknowledged}:
            for item in await store.asearch(namespace, limit=1_000_000):
                memories[(tuple(item.namespace), item.key)] = item.value
        lost = find_lost(checkpoints, memories, acknowledged)
        credentials = pool.lakebase.credential_stats
        figures.retries = saver.retry_stats.retries + store.retry_stats.retries
    finally:
        await pool.close()

    with capsys.disabled():
        print(
            f"\nlakebase async soak: {ASYNC_SECONDS:.0f}s, {WORKERS} tasks, "
            f"requests={figures.requests} acknowledged={len(acknowledged)} "
            f"failures={figures.failures} retries={figures.retries} "
            f"longest_stall={figures.longest_stall:.2f}s lost={len(lost)} "
            f"token_rotations={fake_lakebase.rotations} postgres_restarts={fake_lakebase.restarts} "
            f"tokens_minted={credentials.minted} tokens_refused={credentials.refused}"
        )
    assert fake_lakebase.rotations >= ASYNC_ROTATIONS and fake_lakebase.restarts >= 2
    assert figures.errors == [] and figures.failures == 0
    assert lost == [] and len(acknowledged) == figures.requests > 0
    assert credentials.refused >= 1 and credentials.minted >= 2
