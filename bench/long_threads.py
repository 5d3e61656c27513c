"""Long conversations at flat cost: stock PostgresSaver vs our saver vs our full agent.

    python -m bench --only long_threads            # 1000-turn threads, 8 workers
    python -m bench --only long_threads --turns 200  # a quicker look

One run, one embedded Postgres, configurations interleaved turn by turn so
drift hits them alike:

- **stock PostgresSaver**: LangGraph's saver with a one-node chat graph whose
  messages use ``add_messages`` (the whole list in every checkpoint), no retention;
- **our saver**: ``MemoryAgentSaver`` (retention at the default 200) with the
  same graph on our ``graph.state.State`` (messages as a ``DeltaChannel``);
- **our full agent**: ``build_graph`` with thread lock, ledger, recall and the
  offline model, the default prompt budget and retention.

Each turn sends one user message of 200 characters and gets one reply (the
chat graph answers with 200 characters; the offline model with its own echo).
Latency: after the long threads are grown, 21 turns of each long thread
alternate with turns 5-25 of a fresh short thread of the same configuration,
so turn 10 and turn 1,000 are timed in the same minutes (medians).
Round trips per turn: the times psycopg waited on the server (statements,
pipeline syncs, the pool's check on borrow) during those 21 long-thread turns,
median. All configurations share one pool set up as the agent's is (checked
on borrow, prepared statements). Storage is the bytes the thread's rows hold
(blobs, writes, checkpoint JSON);
WAL per turn is the WAL position's advance over 10 more turns, one
configuration at a time. The concurrency part runs 8 worker threads, each on
its own threads, against one pool of 10 connections, for each configuration in
turn, and reports invokes per second; there the agent is also compared with
its own graph on the stock saver without run guards (same shape, stock parts).
The async savers (``AsyncPostgresSaver``, ``AsyncMemoryAgentSaver``) run the
same chat graph with 8 concurrent tasks on an async pool of 10. Then the
8-worker part and the async part run again through a loopback proxy that adds a
1 ms round trip (``bench.latency``), as statements wait on a network on Lakebase.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from psycopg import Connection

from bench.common import bench_database, markdown_table, median, write_report
from bench.latency import delayed, measured_rtt_ms

TURNS = 1000
WORKERS = 8
TURNS_PER_WORKER = 40
TEXT = "x" * 190
MEASURED_TURNS = 21
STOCK_AGENT = "agent graph on stock PostgresSaver"
ASYNC = "async"
# The concurrent part runs again with this round trip added by a loopback proxy
# (bench.latency): statements wait on a network on Lakebase, and the stock
# saver's lock holds every thread's statements behind each wait.
NETWORK_RTT_MS = 1.0


class CountingConnection(Connection[Any]):
    """A psycopg connection that counts the times it waits on the server.

    Every psycopg operation runs as a generator through ``wait``; one that
    yields waits on the socket (a statement, a pipeline sync, a commit), one
    that returns at once (a commit with no transaction open) sends nothing and
    is not counted.
    """

    round_trips = 0  # across every connection of the process; read before and after
    _count_lock = threading.Lock()

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        return super().wait(_counted(gen), *args, **kwargs)


def _counted(gen: Any) -> Any:
    try:
        item = next(gen)
    except StopIteration as done:
        return done.value
    with CountingConnection._count_lock:
        CountingConnection.round_trips += 1
    while True:
        sent = yield item
        try:
            item = gen.send(sent)
        except StopIteration as done:
            return done.value


@dataclass
class StockChat:
    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)


def _reply(state: Any) -> dict[str, Any]:
    return {"messages": [AIMessage(f"reply {len(state.messages):5d} {TEXT[:188]}")]}


def chat_graph(saver: Any, schema: type) -> Any:
    builder = StateGraph(schema)
    builder.add_node("reply", _reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


def _configurations(pool: Any) -> dict[str, Any]:
    from langgraph.checkpoint.postgres import PostgresSaver

    from checkpointing import MemoryAgentSaver, ThreadLock, ToolCallLedger
    from graph.builder import build_graph
    from graph.settings import DEFAULT_KEEP_CHECKPOINTS
    from graph.state import State

    ours = MemoryAgentSaver(pool, keep_checkpoints=DEFAULT_KEEP_CHECKPOINTS)
    return {
        "stock PostgresSaver": chat_graph(PostgresSaver(pool), StockChat),
        "our saver": chat_graph(ours, State),
        "our full agent": build_graph(
            MemoryAgentSaver(pool, keep_checkpoints=DEFAULT_KEEP_CHECKPOINTS),
            ledger=ToolCallLedger(pool),
            thread_lock=ThreadLock(pool),
        ),
    }


def _stock_agent(pool: Any) -> Any:
    """Our agent's graph with the stock saver and no run guards: the same shape, stock parts."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from langgraph.graph.state import CompiledStateGraph

    from graph.builder import build_graph

    graph = build_graph(PostgresSaver(pool))
    graph.__class__ = CompiledStateGraph  # LangGraph's own invoke: no guard, no lock
    return graph


def _thread_bytes(pool: Any, thread_id: str) -> int:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT (SELECT coalesce(sum(pg_column_size(b.*)), 0) FROM checkpoint_blobs b"
            "        WHERE thread_id = %(t)s)"
            "     + (SELECT coalesce(sum(pg_column_size(w.*)), 0) FROM checkpoint_writes w"
            "        WHERE thread_id = %(t)s)"
            "     + (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM checkpoints c"
            "        WHERE thread_id = %(t)s) AS n",
            {"t": thread_id},
        ).fetchone()
    return int(row["n"])


def _wal_position(pool: Any) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn AS n").fetchone()
    return int(row["n"])


def _counted_turn(graph: Any, thread_id: str, turn: int, trips: list[int]) -> float:
    before = CountingConnection.round_trips
    elapsed = _turn(graph, thread_id, turn)
    trips.append(CountingConnection.round_trips - before)
    return elapsed


def _turn(graph: Any, thread_id: str, turn: int) -> float:
    started = time.perf_counter()
    graph.invoke(
        {"messages": [("user", f"message {turn:5d} {TEXT}")]},
        {"configurable": {"thread_id": thread_id}},
    )
    return (time.perf_counter() - started) * 1000


def _prompt_tokens(graph: Any, thread_id: str) -> int:
    from graph.state import State
    from nodes.call_model import prompt_messages
    from nodes.summarize_history import tokens

    values = graph.get_state({"configurable": {"thread_id": thread_id}}).values
    return tokens(prompt_messages(State(**values)))


def _throughput(graph: Any, workers: int, turns: int) -> float:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        thread_id = f"worker-{worker}-{uuid.uuid4().hex[:8]}"
        try:
            for turn in range(turns):
                _turn(graph, thread_id, turn)
        except BaseException as exc:  # reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return workers * turns / elapsed


async def _athroughput(graph: Any, workers: int, turns: int) -> float:
    async def work(worker: int) -> None:
        thread_id = f"aworker-{worker}-{uuid.uuid4().hex[:8]}"
        for turn in range(turns):
            await graph.ainvoke(
                {"messages": [("user", f"message {turn:5d} {TEXT}")]},
                {"configurable": {"thread_id": thread_id}},
            )

    started = time.perf_counter()
    await asyncio.gather(*(work(w) for w in range(workers)))
    return workers * turns / (time.perf_counter() - started)


async def _async_rates(database_url: str, workers: int) -> dict[str, float]:
    """Invokes/s of the chat graph on each async saver, 8 tasks on one async pool."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg_pool import AsyncConnectionPool

    from checkpointing import AsyncMemoryAgentSaver
    from database.checks import PoolRef, async_draining_check
    from database.connect import DIRECT_CONNECTION_KWARGS
    from graph.settings import DEFAULT_KEEP_CHECKPOINTS
    from graph.state import State

    ref = PoolRef()
    async with AsyncConnectionPool(
        database_url,
        kwargs=DIRECT_CONNECTION_KWARGS,
        min_size=2,
        max_size=10,
        check=async_draining_check(ref),
        open=False,
    ) as pool:
        ref.pool = pool
        graphs = {
            "stock PostgresSaver": chat_graph(AsyncPostgresSaver(pool), StockChat),
            "our saver": chat_graph(
                AsyncMemoryAgentSaver(pool, keep_checkpoints=DEFAULT_KEEP_CHECKPOINTS), State
            ),
        }
        rates: dict[str, float] = {}
        for name, graph in graphs.items():
            await _athroughput(graph, 2, 2)  # warm the pool
            rates[name] = await _athroughput(graph, workers, TURNS_PER_WORKER)
        return rates


def _network_rates(
    database_url: str, workers: int
) -> tuple[dict[str, float], dict[str, float], float]:
    """Through one proxy adding ``NETWORK_RTT_MS``: the 8-worker invokes/s of each
    configuration, the async savers' invokes/s, and the measured round trip."""
    from psycopg_pool import ConnectionPool

    from database.checks import PoolRef, draining_check
    from database.connect import DIRECT_CONNECTION_KWARGS

    ref = PoolRef()
    with (
        delayed(database_url, NETWORK_RTT_MS) as far_url,
        ConnectionPool(
            far_url,
            kwargs=DIRECT_CONNECTION_KWARGS,
            min_size=2,
            max_size=10,
            check=draining_check(ref),
        ) as pool,
    ):
        ref.pool = pool
        rtt = measured_rtt_ms(far_url)
        rates: dict[str, float] = {}
        for name, graph in _configurations(pool).items():
            _throughput(graph, 2, 2)  # warm the pool
            rates[name] = _throughput(graph, workers, TURNS_PER_WORKER)
        async_rates = asyncio.run(_async_rates(far_url, workers))
    return rates, async_rates, rtt


def run(url: str | None = None, turns: int = TURNS, workers: int = WORKERS) -> dict[str, Any]:
    from psycopg_pool import ConnectionPool

    from checkpointing import setup_checkpoint_tables, setup_tool_ledger
    from database.checks import PoolRef, draining_check
    from database.connect import DIRECT_CONNECTION_KWARGS
    from graph.settings import DEFAULT_PROMPT_TOKENS

    ref = PoolRef()
    with (
        bench_database(url) as database_url,
        ConnectionPool(
            database_url,
            kwargs=DIRECT_CONNECTION_KWARGS,
            min_size=2,
            max_size=10,
            check=draining_check(ref),  # as the agent's pool (database.connect)
            connection_class=CountingConnection,
        ) as pool,
    ):
        ref.pool = pool
        setup_checkpoint_tables(pool)
        setup_tool_ledger(pool)
        graphs = _configurations(pool)
        threads = {name: f"long-{index}" for index, name in enumerate(graphs)}
        for turn in range(turns):  # grow the long threads side by side
            for name, graph in graphs.items():
                _turn(graph, threads[name], turn)
        # Turn 10 and turn `turns` measured in the same minutes, alternating, so
        # the machine's drift (it is shared) cannot pass for growth: a fresh
        # short thread per configuration, brought to turn 5, then its turns
        # 5-15 alternate with the long thread's next 11 turns.
        short = {name: f"short-{index}" for index, name in enumerate(graphs)}
        for turn in range(5):
            for name, graph in graphs.items():
                _turn(graph, short[name], turn)
        early: dict[str, list[float]] = {name: [] for name in graphs}
        late: dict[str, list[float]] = {name: [] for name in graphs}
        trips: dict[str, list[int]] = {name: [] for name in graphs}
        names = list(graphs)
        for offset in range(MEASURED_TURNS):
            # Rotate who goes first, so no configuration always follows the
            # stock saver's heavy turn and no thread always goes first.
            for name in names[offset % len(names) :] + names[: offset % len(names)]:
                graph = graphs[name]
                for which in ("short", "long") if offset % 2 else ("long", "short"):
                    if which == "short":
                        early[name].append(_turn(graph, short[name], 5 + offset))
                    else:
                        late[name].append(
                            _counted_turn(graph, threads[name], turns + offset, trips[name])
                        )
        rows = []
        for name, graph in graphs.items():
            before = _wal_position(pool)
            for extra in range(10):
                _turn(graph, threads[name], turns + MEASURED_TURNS + extra)
            wal = (_wal_position(pool) - before) / 10
            rows.append(
                {
                    "configuration": name,
                    "turn_10_ms": median(early[name]),
                    "last_turn_ms": median(late[name]),
                    "ratio": median(late[name]) / median(early[name]),
                    "round_trips_per_turn": median([float(n) for n in trips[name]]),
                    "stored_mb": _thread_bytes(pool, threads[name]) / 1e6,
                    "wal_kb_per_turn": wal / 1e3,
                }
            )
        prompt = _prompt_tokens(graphs["our full agent"], threads["our full agent"])
        rates: dict[str, float] = {}
        throughput = {**graphs, STOCK_AGENT: _stock_agent(pool)}
        for name, graph in throughput.items():
            _throughput(graph, 2, 2)  # warm the pool
            rates[name] = _throughput(graph, workers, TURNS_PER_WORKER)
        async_rates = asyncio.run(_async_rates(database_url, workers))
        network_rates, async_network_rates, network_rtt = _network_rates(database_url, workers)
    return {
        "turns": turns,
        "workers": workers,
        "rows": rows,
        "prompt_tokens": prompt,
        "prompt_budget": DEFAULT_PROMPT_TOKENS,
        "invokes_per_second": rates,
        "async_invokes_per_second": async_rates,
        "network_rtt_ms": network_rtt,
        "network_invokes_per_second": network_rates,
        "async_network_invokes_per_second": async_network_rates,
    }


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    names = [r["configuration"] for r in rows]
    rates = report["invokes_per_second"]
    stock_agent_rate = rates.get(STOCK_AGENT)
    stock_rate = rates["stock PostgresSaver"]
    async_rates = report["async_invokes_per_second"]
    async_stock = async_rates["stock PostgresSaver"]
    network = report["network_invokes_per_second"]
    network_stock = network["stock PostgresSaver"]
    async_network = report["async_network_invokes_per_second"]
    turns = report["turns"]
    table = markdown_table(
        ["", *names],
        [
            [f"latency per turn, turn {turns} / turn 10", *[f"{r['ratio']:.2f}×" for r in rows]],
            ["  turn 10 (median ms)", *[r["turn_10_ms"] for r in rows]],
            [f"  turn {turns} (median ms)", *[r["last_turn_ms"] for r in rows]],
            [
                f"round trips per turn at turn ~{turns} (median)",
                *[f"{r['round_trips_per_turn']:.0f}" for r in rows],
            ],
            [f"storage of the {turns}-turn thread (MB)", *[r["stored_mb"] for r in rows]],
            [f"WAL per turn at turn ~{turns} (KB)", *[r["wal_kb_per_turn"] for r in rows]],
            [
                f"{report['workers']} workers: invokes/s",
                *[rates[name] for name in names],
            ],
            [
                f"{report['workers']} workers: × stock saver",
                *[f"{rates[name] / stock_rate:.2f}×" for name in names],
            ],
            [
                f"{report['workers']} workers, +{NETWORK_RTT_MS:g} ms round trip: invokes/s",
                *[network[name] for name in names],
            ],
            [
                f"{report['workers']} workers, +{NETWORK_RTT_MS:g} ms round trip: × stock saver",
                *[f"{network[name] / network_stock:.2f}×" for name in names],
            ],
            [
                f"{report['workers']} async tasks: invokes/s",
                *[async_rates.get(name, "–") for name in names],
            ],
            [
                f"{report['workers']} async tasks: × stock async saver",
                *[
                    f"{async_rates[name] / async_stock:.2f}×" if name in async_rates else "–"
                    for name in names
                ],
            ],
            [
                f"{report['workers']} async tasks, +{NETWORK_RTT_MS:g} ms round trip: invokes/s",
                *[async_network.get(name, "–") for name in names],
            ],
            [
                f"{report['workers']} async tasks, +{NETWORK_RTT_MS:g} ms round trip: × stock",
                *[
                    f"{async_network[name] / async_network['stock PostgresSaver']:.2f}×"
                    if name in async_network
                    else "–"
                    for name in names
                ],
            ],
        ],
    )
    markdown = (
        f"# Long threads: {turns} turns, {report['workers']} concurrent workers\n\n"
        "One run, configurations interleaved turn by turn; embedded Postgres; "
        "medians of 21 turns, turn ~10 and the last turns timed alternately.\n\n"
        f"{table}\n\n"
        f"Prompt sent to the model at turn {turns}: {report['prompt_tokens']:,} tokens "
        f"(budget {report['prompt_budget']:,}).\n\n"
        f"Round trip through the proxy (median SELECT 1): {report['network_rtt_ms']:.2f} ms.\n\n"
        f"{report['workers']} workers, {STOCK_AGENT}: {stock_agent_rate:.1f} invokes/s; "
        f"our full agent: {rates['our full agent'] / stock_agent_rate:.2f}× that.\n"
    )
    write_report("long_threads", markdown, report)
    return markdown
