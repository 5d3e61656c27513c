"""Soak under faults: steady requests while the token rotates many times and Postgres restarts twice.

Each request is what one agent turn does to memory, through the agent's own
persistence classes (``MemoryAgentSaver``, ``MemoryStore``) on the Lakebase
pool: write a checkpoint (with its channel blob and a pending write) for a
thread, save a long-term memory in the user's namespace, and read the
checkpoint back. Those classes replay an operation once when its connection
drops (``database.retry``); the test adds no retry of its own. A request is
acknowledged when it returns; at the end every acknowledged write is read back.

The duration is ``LAKEBASE_SOAK_SECONDS`` (default 180). Whatever the
duration, the token rotates ``ROTATIONS`` times (the previous token refused
each time) and Postgres is restarted twice, at one and two thirds.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpointing import MemoryAgentSaver, setup_checkpoint_tables
from database import LakebaseTarget
from database.lakebase import open_lakebase_pool
from store.embeddings import HashEmbeddings
from store.postgres import MemoryStore
from tests.lakebase_harness import FakeLakebase

SOAK_SECONDS = float(os.environ.get("LAKEBASE_SOAK_SECONDS", "180"))
ROTATIONS = 24
WORKERS = 4
THREADS_PER_WORKER = 5
PAUSE_BETWEEN_REQUESTS = 0.02


@dataclass(frozen=True)
class Acknowledged:
    """One request whose writes the agent was told succeeded."""

    thread_id: str
    checkpoint_id: str
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]


@dataclass
class Figures:
    requests: int = 0
    failures: int = 0
    retries: int = 0
    longest_stall: float = 0.0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Payload:
    """One request's writes, with every id fixed before the first attempt."""

    config: dict[str, Any]
    checkpoint: Any
    metadata: dict[str, Any]
    versions: dict[str, str]
    write: tuple[str, str]
    task_id: str
    ack: Acknowledged


def payload(worker: int, number: int) -> Payload:
    thread_id = f"soak-{worker}-{number % THREADS_PER_WORKER}"
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6())
    checkpoint["channel_values"] = {"messages": [f"request {worker}/{number}"]}
    checkpoint["channel_versions"] = {"messages": f"{number:08d}"}
    ack = Acknowledged(
        thread_id=thread_id,
        checkpoint_id=checkpoint["id"],
        namespace=("user_memories", f"user-{worker}"),
        key=f"memory-{number}",
        value={"content": f"fact {number} from worker {worker}", "thread": thread_id},
    )
    return Payload(
        config={"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}},
        checkpoint=checkpoint,
        metadata={"source": "loop", "step": number},
        versions={"messages": f"{number:08d}"},
        write=("messages", f"pending {number}"),
        task_id=f"task-{number}",
        ack=ack,
    )


def _request(
    saver: MemoryAgentSaver, store: MemoryStore, worker: int, number: int
) -> tuple[Any, Acknowledged]:
    p = payload(worker, number)

    def work() -> Any:
        saved = saver.put(p.config, p.checkpoint, p.metadata, p.versions)
        saver.put_writes(saved, [p.write], task_id=p.task_id)
        store.put(p.ack.namespace, p.ack.key, p.ack.value)
        return saver.get_tuple(saved)

    return work, p.ack


def _serve(
    saver: MemoryAgentSaver,
    store: MemoryStore,
    worker: int,
    stop: threading.Event,
    figures: Figures,
    acknowledged: list[Acknowledged],
) -> None:
    number = 0
    while not stop.is_set():
        work, ack = _request(saver, store, worker, number)
        started = time.monotonic()
        with figures.lock:
            figures.requests += 1
        try:
            read_back = work()
        except Exception as exc:
            with figures.lock:
                figures.failures += 1
                figures.errors.append(f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            assert read_back is not None and read_back.checkpoint["id"] == ack.checkpoint_id
            with figures.lock:
                acknowledged.append(ack)
        stall = time.monotonic() - started
        with figures.lock:
            figures.longest_stall = max(figures.longest_stall, stall)
        number += 1
        time.sleep(PAUSE_BETWEEN_REQUESTS)


def faults(fake: FakeLakebase, stop: threading.Event, seconds: float, rotations: int) -> None:
    """Rotate the token ``rotations`` times, spread evenly; restart Postgres at 1/3 and 2/3."""
    start = time.monotonic()
    events = [(seconds * (i + 0.5) / rotations, "rotate") for i in range(rotations)]
    events += [(seconds / 3, "restart"), (2 * seconds / 3, "restart")]
    for at, what in sorted(events):
        if stop.wait(max(0.0, start + at - time.monotonic())):
            return
        if what == "rotate":
            fake.rotate_token()
        else:
            fake.restart_postgres(down_seconds=1.0)


def find_lost(
    checkpoints: dict[str, dict[str, Any]],
    memories: dict[tuple[tuple[str, ...], str], Any],
    acknowledged: list[Acknowledged],
) -> list[Acknowledged]:
    """Acknowledged requests whose checkpoint (with its value) or memory is missing."""
    lost = []
    for ack in acknowledged:
        values = checkpoints.get(ack.thread_id, {}).get(ack.checkpoint_id)
        if values is None or memories.get((ack.namespace, ack.key)) != ack.value:
            lost.append(ack)
    return lost


def read_back_lost(
    saver: MemoryAgentSaver, store: MemoryStore, acknowledged: list[Acknowledged]
) -> list[Acknowledged]:
    """Read every thread's checkpoints and every user's memories through the agent's
    own classes (one listing per thread and per user), then look for each ack."""
    checkpoints: dict[str, dict[str, Any]] = {}
    for thread_id in {ack.thread_id for ack in acknowledged}:
        config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        checkpoints[thread_id] = {
            saved.checkpoint["id"]: saved.checkpoint["channel_values"].get("messages")
            for saved in saver.list(config)
        }
    memories = {
        (tuple(item.namespace), item.key): item.value
        for namespace in {ack.namespace for ack in acknowledged}
        for item in store.search(namespace, limit=1_000_000)
    }
    return find_lost(checkpoints, memories, acknowledged)


@pytest.mark.slow
def test_no_acknowledged_write_is_lost_under_rotation_and_restarts(
    fake_lakebase: FakeLakebase, workspace_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Connections live a twelfth of the run, so they are recycled many times and
    # must log in again with whatever token is current (as with 45 min vs 1 h).
    pool = open_lakebase_pool(
        LakebaseTarget(instance_name="agent-memory"),
        workspace_client=workspace_client,
        min_size=2,
        max_size=WORKERS + 2,
        max_lifetime=max(5.0, SOAK_SECONDS / 12),
    )
    try:
        setup_checkpoint_tables(pool)
        store = MemoryStore(pool, embeddings=HashEmbeddings())
        store.setup()
        saver = MemoryAgentSaver(pool)

        stop = threading.Event()
        figures = Figures()
        acknowledged: list[Acknowledged] = []
        workers = [
            threading.Thread(target=_serve, args=(saver, store, n, stop, figures, acknowledged))
            for n in range(WORKERS)
        ]
        faults_thread = threading.Thread(
            target=faults, args=(fake_lakebase, stop, SOAK_SECONDS, ROTATIONS)
        )
        for thread in [*workers, faults_thread]:
            thread.start()
        try:
            faults_thread.join(timeout=SOAK_SECONDS + 60)
            time.sleep(max(0.0, SOAK_SECONDS / ROTATIONS / 2))  # serve after the last fault
        finally:
            stop.set()
            for thread in [*workers, faults_thread]:
                thread.join(timeout=120)

        lost = read_back_lost(saver, store, acknowledged)
        credentials = pool.lakebase.credential_stats
        figures.retries = saver.retry_stats.retries + store.retry_stats.retries
        operation_failures = saver.retry_stats.failures + store.retry_stats.failures
    finally:
        pool.close()

    with capsys.disabled():
        print(
            f"\nlakebase soak: {SOAK_SECONDS:.0f}s, {WORKERS} workers, "
            f"requests={figures.requests} acknowledged={len(acknowledged)} "
            f"failures={figures.failures} retries={figures.retries} "
            f"longest_stall={figures.longest_stall:.2f}s lost={len(lost)} "
            f"token_rotations={fake_lakebase.rotations} postgres_restarts={fake_lakebase.restarts} "
            f"tokens_minted={credentials.minted} tokens_refused={credentials.refused} "
            f"restart_durations={[round(x, 1) for x in fake_lakebase.restart_seconds]}s"
        )
    assert fake_lakebase.rotations >= ROTATIONS and fake_lakebase.restarts >= 2
    assert figures.errors == [] and figures.failures == 0 and operation_failures == 0
    assert lost == []
    assert len(acknowledged) == figures.requests > 0
    # The faults really reached the pool: refused tokens were replaced by new ones.
    assert credentials.refused >= 1 and credentials.minted >= 2
