"""kill -9 during side-effecting tools, then resume: every run completes, every effect once.

Real OS processes run the graph (tests/workers/crash_worker.py) with a slow
tool that inserts a row per call in the same transaction as its ledger
record; the test kills them with SIGKILL at random moments (half of them right
inside a tool), starts a new process each time, and at the end checks each
thread against the side-effect table.
"""

from __future__ import annotations

import random
from collections import Counter

import psycopg
import pytest
from langchain_core.messages import AIMessage, ToolMessage

from tests.processes import Worker
from tests.workers.kit import open_test_graph

THREADS = [f"crash-{n}" for n in range(6)]
ROWS = 4
KILLS_DURING_WORK = 12


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_runs_each_side_effect_exactly_once(
    database_url: str, subprocess_env: dict[str, str]
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    env = {**subprocess_env, "TOOL_SLEEP": "0.05:0.3"}
    args = [database_url, ",".join(THREADS), str(ROWS)]
    kills: list[str] = []
    for attempt in range(3 * KILLS_DURING_WORK):
        if len(kills) >= KILLS_DURING_WORK:
            break
        worker = Worker("crash_worker", args, env)
        assert worker.wait_for("ready"), f"worker did not start: {worker.finish()[1]}"
        if attempt % 2:
            # Inside a tool: after it started, before or after its insert, before its commit.
            worker.wait_for("tool-enter", timeout=60)
            delay = rng.uniform(0, 0.4)
        else:
            delay = rng.uniform(0, 1.5)  # anywhere: model, review, checkpoint writes, tools
        worker.wait_for("all-done", timeout=delay)
        if worker.process.poll() is not None or "all-done" in worker.drain():
            worker.finish()
            break  # nothing left to interrupt
        worker.kill()
        last_tool_line = next(
            (line for line in reversed(worker.seen) if line.startswith("tool-")), "none"
        )
        kills.append(last_tool_line.split(" ")[0])
    assert len(kills) >= 10, f"only {len(kills)} kills landed during work (seed {seed})"
    print(f"seed {seed}: {len(kills)} kills, last tool event before each: {Counter(kills)}")

    final = Worker("crash_worker", args, env)
    code, stderr = final.finish(timeout=300)
    assert code == 0 and "all-done" in final.seen, stderr

    with open_test_graph(database_url) as graph:
        for thread_id in THREADS:
            state = graph.get_state({"configurable": {"thread_id": thread_id}})
            messages = state.values["messages"]
            assert state.next == ()
            assert messages[-1].content == f"done: appended {ROWS} rows for {thread_id}"
            calls = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
            answers = Counter(m.tool_call_id for m in messages if isinstance(m, ToolMessage))
            assert len(calls) == ROWS and answers == Counter(calls), "a call lacks its one answer"
            with psycopg.connect(database_url) as conn:
                rows = conn.execute(
                    "SELECT tool_call_id, payload FROM test_side_effects WHERE thread_id = %s",
                    (thread_id,),
                ).fetchall()
            # Exactly once: one row per call the thread made, and none for calls it lost.
            assert Counter(call_id for call_id, _ in rows) == Counter(calls), (seed, thread_id)
            assert sorted(payload for _, payload in rows) == [
                f"{thread_id}#{n}" for n in range(1, ROWS + 1)
            ]
    with psycopg.connect(database_url) as conn:
        states = conn.execute(
            "SELECT state, count(*) FROM tool_call_ledger GROUP BY state"
        ).fetchall()
    assert states == [("done", len(THREADS) * ROWS)]


def test_external_call_killed_after_its_effect_is_not_repeated_on_resume(
    database_url: str, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, "TOOL_SLEEP": "60:60"}  # sleeps after its effect, before returning
    worker = Worker("run_once", [database_url, "ext", "notify hello"], env)
    assert worker.wait_for("tool-did-effect"), worker.finish()[1]
    worker.kill()
    resumed = Worker("run_once", [database_url, "ext", "--continue"], subprocess_env)
    code, stderr = resumed.finish()
    assert code == 0, stderr
    assert not any(line.startswith("tool-enter") for line in resumed.seen)  # not called again
    assert "Outcome unknown" in next(line for line in resumed.seen if line.startswith("{"))
    with psycopg.connect(database_url) as conn:
        (effects,) = conn.execute("SELECT count(*) FROM test_side_effects").fetchone()
        (state,) = conn.execute("SELECT state FROM tool_call_ledger").fetchone()
    assert effects == 1 and state == "started"
