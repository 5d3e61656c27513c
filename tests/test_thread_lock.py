"""One run at a time per thread, across processes: the second gets "busy" or waits its turn."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psycopg
import pytest

from checkpointing import ThreadBusyError, ThreadLock
from checkpointing.thread_lock import thread_lock_key
from tests.processes import Worker
from tests.workers.kit import open_test_graph


def _assert_linear(database_url: str, thread_id: str) -> int:
    """Every checkpoint has at most one child and there is one root: no fork happened."""
    with psycopg.connect(database_url) as conn:
        parents = [
            row[0]
            for row in conn.execute(
                "SELECT parent_checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''",
                (thread_id,),
            )
        ]
    children = Counter(parents)
    assert children[None] == 1, "more than one root"
    assert max(children.values()) == 1, f"a checkpoint has {max(children.values())} children"
    return len(parents)


def _human_turns(database_url: str, thread_id: str) -> list[str]:
    with open_test_graph(database_url) as graph:
        state = graph.get_state({"configurable": {"thread_id": thread_id}})
    return [m.content for m in state.values["messages"] if m.type == "human"]


def test_second_concurrent_run_gets_busy_and_history_stays_linear(
    database_url: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    gate = tmp_path / "release-the-tool"
    env = {**subprocess_env, "TOOL_GATE": str(gate)}
    first = Worker("run_once", [database_url, "shared", "append 1 slow"], env)
    assert first.wait_for("tool-enter"), first.finish()[1]  # the first run is inside its tool
    second = Worker("run_once", [database_url, "shared", "hello"], env)
    code, stderr = second.finish()
    gate.touch()
    assert code == 3, stderr
    assert "thread 'shared' is busy: another run is in progress" in stderr
    assert first.finish()[0] == 0
    _assert_linear(database_url, "shared")
    assert _human_turns(database_url, "shared") == ["append 1 slow"]


def test_a_run_that_waits_runs_after_the_first_and_history_stays_linear(
    database_url: str, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, "TOOL_SLEEP": "2:2"}
    first = Worker("run_once", [database_url, "shared", "append 1 slow"], env)
    assert first.wait_for("tool-enter"), first.finish()[1]
    second = Worker("run_once", [database_url, "shared", "hello", "--wait", "120"], env)
    code, stderr = second.finish()
    assert code == 0, stderr
    assert '"answer": "echo: hello"' in " ".join(second.seen)
    assert first.finish()[0] == 0
    _assert_linear(database_url, "shared")
    assert _human_turns(database_url, "shared") == ["append 1 slow", "hello"]


def test_lock_is_released_when_the_holder_is_killed(
    database_url: str, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, "TOOL_SLEEP": "30:30"}
    holder = Worker("run_once", [database_url, "victim", "append 1 slow"], env)
    assert holder.wait_for("tool-enter"), holder.finish()[1]
    holder.kill()
    # Postgres ends the dead session and frees its lock; a new run gets the thread.
    env["TOOL_SLEEP"] = "0:0"
    follower = Worker("run_once", [database_url, "victim", "hello", "--wait", "60"], env)
    code, stderr = follower.finish()
    assert code == 0, stderr


def test_lock_in_one_process_busy_then_free(database_url: str) -> None:
    from psycopg_pool import ConnectionPool

    from database.connect import CONNECTION_KWARGS

    with ConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=3, open=True
    ) as pool:
        lock = ThreadLock(pool)
        with lock.hold("t1"):
            with pytest.raises(ThreadBusyError, match="thread 't1' is busy"), lock.hold("t1"):
                pass
            with (
                pytest.raises(ThreadBusyError, match=r"waited 0\.2 s"),
                lock.hold("t1", wait_seconds=0.2),
            ):
                pass
            with lock.hold("t2"):  # other threads are independent
                pass
        with lock.hold("t1"):  # released
            pass
        with pool.connection() as conn:  # the wait setting did not leak into the pool
            assert conn.execute("SHOW lock_timeout").fetchone()["lock_timeout"] == "0"
    assert thread_lock_key("a") != thread_lock_key("b")
    assert -(2**63) <= thread_lock_key("é" * 256) < 2**63


async def test_a_run_that_joins_a_held_lock_keeps_it_after_the_taker_lets_go(
    database_url: str,
) -> None:
    import asyncio
    import contextvars

    from psycopg_pool import AsyncConnectionPool

    from database.connect import CONNECTION_KWARGS

    async with AsyncConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=4, open=False
    ) as pool:
        lock = ThreadLock(pool)

        async def probe() -> bool:
            try:
                async with lock.ahold("t"):
                    return True
            except ThreadBusyError:
                return False

        def elsewhere() -> asyncio.Task[bool]:  # a context that holds nothing
            return asyncio.create_task(probe(), context=contextvars.Context())

        held = await lock.aacquire("t")  # a request takes the lock...
        entered, finish = asyncio.Event(), asyncio.Event()

        async def run() -> None:  # ...and starts a run that outlives it (a background run)
            async with lock.ahold("t"):
                entered.set()
                await finish.wait()

        task = asyncio.create_task(run())
        await entered.wait()
        await held.aclose()  # the request ends first
        assert await elsewhere() is False  # the run still holds the thread
        finish.set()
        await task
        assert await elsewhere() is True
