"""What the run guards cost per turn: thread lock, pre-run check, sync durability, tool ledger,
and the thread-owner record (checkpointing.ownership).

    python -m bench --only guards

One process, one database, the offline model; every turn is a fresh thread
with a tool call ("what time is it?": call_model, review_tool_calls, run_tools,
call_model). Configurations run round-robin so drift hits them alike; the
figures are medians and p95 over the rounds, with ratios to LangGraph's own
defaults (no guards, durability "async").
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from langchain_core.tools import StructuredTool
from langgraph.graph.state import CompiledStateGraph

from bench.common import bench_database, markdown_table, median, percentile, write_report

ROUNDS = 60


def _graphs(pool: Any) -> dict[str, tuple[Any, dict[str, Any]]]:
    from checkpointing import MemoryAgentSaver, ThreadLock, ThreadOwners, ToolCallLedger
    from graph.builder import build_graph
    from graph.context import Context
    from graph.tools import get_current_time

    saver = MemoryAgentSaver(pool)
    stock = build_graph(saver)
    stock.__class__ = CompiledStateGraph  # LangGraph's own invoke: no checks, no lock
    guarded = build_graph(saver, thread_lock=ThreadLock(pool))
    owned = build_graph(saver, thread_lock=ThreadLock(pool), thread_owners=ThreadOwners(pool))
    recorded_tool = StructuredTool.from_function(
        func=get_current_time.func,
        name="get_current_time",
        description=get_current_time.description,
        metadata={"side_effects": "transactional"},
    )
    with_ledger = build_graph(
        saver, tools=[recorded_tool], ledger=ToolCallLedger(pool), thread_lock=ThreadLock(pool)
    )
    return {
        "LangGraph default (durability async, no guards)": (stock, {"durability": "async"}),
        "durability sync only": (stock, {"durability": "sync"}),
        "all guards (lock + check + sync)": (guarded, {}),
        "all guards + owner record": (owned, {"context": Context(user_id="bench-user")}),
        "all guards + ledger on the tool call": (with_ledger, {}),
    }


def run(url: str | None = None, rounds: int = ROUNDS) -> dict[str, Any]:
    from psycopg_pool import ConnectionPool

    from checkpointing import setup_checkpoint_tables, setup_thread_owners, setup_tool_ledger
    from database.connect import CONNECTION_KWARGS

    timings: dict[str, list[float]] = {}
    with (
        bench_database(url) as database_url,
        ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=2, max_size=4) as pool,
    ):
        setup_checkpoint_tables(pool)
        setup_tool_ledger(pool)
        setup_thread_owners(pool)
        graphs = _graphs(pool)
        for name, (graph, kwargs) in graphs.items():  # warm-up
            graph.invoke(
                {"messages": [("user", "what time is it?")]},
                {"configurable": {"thread_id": f"warm-{uuid.uuid4()}"}},
                **kwargs,
            )
            timings[name] = []
        for _ in range(rounds):
            for name, (graph, kwargs) in graphs.items():
                config = {"configurable": {"thread_id": str(uuid.uuid4())}}
                started = time.perf_counter()
                graph.invoke({"messages": [("user", "what time is it?")]}, config, **kwargs)
                timings[name].append((time.perf_counter() - started) * 1000)
    baseline = median(timings[next(iter(timings))])
    rows = [
        {
            "configuration": name,
            "median_ms": median(values),
            "p95_ms": percentile(values, 0.95),
            "ratio_to_default": median(values) / baseline,
        }
        for name, values in timings.items()
    ]
    return {"rounds": rounds, "rows": rows}


def render(report: dict[str, Any]) -> str:
    table = markdown_table(
        ["configuration", "median ms / turn", "p95 ms", "× LangGraph default"],
        [
            [r["configuration"], r["median_ms"], r["p95_ms"], r["ratio_to_default"]]
            for r in report["rows"]
        ],
    )
    markdown = (
        "# Run guards: cost per tool-calling turn\n\n"
        f"{report['rounds']} rounds, configurations interleaved; offline model, one process.\n\n"
        f"{table}\n"
    )
    write_report("run_guards", markdown, report)
    return markdown
