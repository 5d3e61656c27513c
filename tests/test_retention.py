"""Checkpoint retention and storage: bounded history, nothing a kept checkpoint needs is lost.

Most tests drive a one-node chat graph whose messages are a ``DeltaChannel``
with a snapshot every 4 updates, so a few dozen turns cross many snapshots.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.message import _messages_delta_reducer, add_messages
from psycopg.rows import dict_row

from checkpointing import MemoryAgentSaver, setup_checkpoint_tables, setup_tool_ledger
from checkpointing.message_reducer import MessagesDeltaChannel
from checkpointing.retention import aprune_thread, prune_thread
from database import Database, UrlTarget, aopen_database, open_database
from graph.builder import build_graph


@dataclass
class DeltaChat:
    # The agent's channel (LangGraph's DeltaChannel reducing with a kept id index).
    messages: Annotated[
        list[AnyMessage], MessagesDeltaChannel(_messages_delta_reducer, snapshot_frequency=4)
    ] = field(default_factory=list)


@dataclass
class OldFormatChat:
    """The state as this project stored it before: the whole list in every checkpoint."""

    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)


def reply(state: Any) -> dict[str, Any]:
    return {"messages": [AIMessage(f"reply {len(state.messages)}")]}


def chat_graph(saver: Any, schema: type = DeltaChat) -> Any:
    builder = StateGraph(schema)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=saver)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    with open_database(UrlTarget(database_url)) as db:
        setup_checkpoint_tables(db.pool)
        setup_tool_ledger(db.pool)
        yield db


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def talk(graph: Any, thread_id: str, turns: int, start: int = 0) -> None:
    for turn in range(start, start + turns):
        graph.invoke({"messages": [("user", f"message {turn} " + "x" * 200)]}, config(thread_id))


def states(graph: Any, thread_id: str) -> dict[str, tuple[list[str], str | None]]:
    """Every checkpoint's messages (as text) and parent id."""
    return {
        s.config["configurable"]["checkpoint_id"]: (
            [m.content for m in s.values.get("messages", [])],
            (s.parent_config or {}).get("configurable", {}).get("checkpoint_id"),
        )
        for s in graph.get_state_history(config(thread_id))
    }


def thread_rows(database: Database, thread_id: str) -> dict[str, int]:
    with database.pool.connection() as conn:
        return {
            table: conn.execute(
                f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s", (thread_id,)
            ).fetchone()["n"]
            for table in (
                "checkpoints",
                "checkpoint_blobs",
                "checkpoint_writes",
                "tool_call_ledger",
            )
        }


@pytest.mark.parametrize("keep", [1, 3, 7, 20])
def test_every_kept_checkpoint_rebuilds_identically_after_pruning(
    database: Database, keep: int
) -> None:
    graph = chat_graph(MemoryAgentSaver(database.pool))
    talk(graph, "long", 15)
    talk(graph, "other", 2)
    before = states(graph, "long")
    other = thread_rows(database, "other")

    result = prune_thread(database.pool, "long", keep=keep)

    after = states(graph, "long")
    assert result.checkpoints == len(before) - len(after) > 0
    assert keep <= len(after) < keep + 8  # the newest `keep` plus the way back to a snapshot
    newest = sorted(before, reverse=True)[:keep]
    assert set(newest) <= set(after)
    for checkpoint_id, (messages, parent) in after.items():
        assert messages == before[checkpoint_id][0]  # the same state, message for message
        assert parent is None or parent in after  # no kept checkpoint points at a deleted one
    assert len(after[newest[0]][0]) == 30
    assert thread_rows(database, "other") == other
    talk(graph, "long", 1, start=15)  # the pruned thread carries on
    assert len(graph.get_state(config("long")).values["messages"]) == 32


def test_old_format_threads_still_read_and_prune(database: Database) -> None:
    """A thread written with the whole list in each checkpoint reads and continues as deltas."""
    saver = MemoryAgentSaver(database.pool)
    old = chat_graph(saver, OldFormatChat)
    talk(old, "legacy", 5)
    written = old.get_state(config("legacy")).values["messages"]
    new = chat_graph(saver)
    assert [m.content for m in new.get_state(config("legacy")).values["messages"]] == [
        m.content for m in written
    ]
    talk(new, "legacy", 6, start=5)
    before = states(new, "legacy")
    assert len(before[max(before)][0]) == 22
    prune_thread(database.pool, "legacy", keep=2)
    after = states(new, "legacy")
    assert all(after[c][0] == before[c][0] for c in after)


def test_retention_runs_as_the_thread_grows_and_keeps_it_bounded(database: Database) -> None:
    from checkpointing.saver import PRUNE_EVERY_STEPS

    graph = chat_graph(MemoryAgentSaver(database.pool, keep_checkpoints=6))
    talk(graph, "bounded", 60)  # 120 steps: pruned at steps 50 and 100
    assert thread_rows(database, "bounded")["checkpoints"] <= 6 + PRUNE_EVERY_STEPS // 2 + 8
    messages = graph.get_state(config("bounded")).values["messages"]
    assert len(messages) == 120 and messages[0].content.startswith("message 0 ")


async def test_async_prune_matches_sync(database_url: str, database: Database) -> None:
    graph = chat_graph(MemoryAgentSaver(database.pool))
    talk(graph, "a", 10)
    before = states(graph, "a")
    async with aopen_database(UrlTarget(database_url)) as adb:
        result = await aprune_thread(adb.pool, "a", keep=2)
    after = states(graph, "a")
    assert result.checkpoints > 0 and all(after[c][0] == before[c][0] for c in after)


async def test_async_saver_and_the_snapshot_cache_rebuild_the_same_states(
    database_url: str, database: Database
) -> None:
    from checkpointing import AsyncMemoryAgentSaver

    async with aopen_database(UrlTarget(database_url)) as adb:
        graph = chat_graph(AsyncMemoryAgentSaver(adb.pool))
        for turn in range(10):
            await graph.ainvoke({"messages": [("user", f"m{turn}")]}, config("async"))
        written = {
            s.config["configurable"]["checkpoint_id"]: [m.content for m in s.values["messages"]]
            async for s in graph.aget_state_history(config("async"))
            if s.values
        }
    assert len(written[max(written)]) == 20
    cached = MemoryAgentSaver(database.pool)
    uncached = MemoryAgentSaver(database.pool, snapshot_cache_size=0)
    for saver in (cached, cached, uncached):  # the second pass reads snapshots from the cache
        read = states(chat_graph(saver), "async")
        assert {c: read[c][0] for c in written} == written
    assert cached.snapshots.versions("async", "", "messages")
    assert not uncached.snapshots.versions("async", "", "messages")


def test_subgraph_namespaces_go_with_their_root_checkpoint(database: Database) -> None:
    inner = StateGraph(DeltaChat)
    inner.add_node("reply", reply)
    inner.add_edge(START, "reply")
    outer = StateGraph(DeltaChat)
    outer.add_node("inner", inner.compile())
    outer.add_edge(START, "inner")
    graph = outer.compile(checkpointer=MemoryAgentSaver(database.pool))
    talk(graph, "nested", 8)

    def namespaces() -> dict[str, str]:
        with database.pool.connection() as conn:
            rows = conn.execute(
                "SELECT checkpoint_ns, min(metadata -> 'parents' ->> '') AS root FROM checkpoints"
                " WHERE thread_id = 'nested' AND checkpoint_ns <> '' GROUP BY 1"
            ).fetchall()
        return {row["checkpoint_ns"]: row["root"] for row in rows}

    assert len(namespaces()) == 8
    prune_thread(database.pool, "nested", keep=2)
    kept = set(states(graph, "nested"))
    remaining = namespaces()
    assert 0 < len(remaining) < 8
    assert all(root in kept for root in remaining.values())


def test_a_step_writes_the_same_bytes_at_turn_300_as_at_turn_10(database: Database) -> None:
    """Bytes a turn adds to the thread: flat, where the old format grew with the thread.

    Measured on the agent's own state (graph.state: snapshot every 100 updates)
    through the saver, retention off. A snapshot turn (one in 50) writes the
    whole list; the median over ten turns is what an ordinary step writes.
    """
    from graph.state import State

    saver = MemoryAgentSaver(database.pool)
    graph = chat_graph(saver, State)
    old = chat_graph(PostgresSaver(database.pool), OldFormatChat)

    def thread_bytes(thread_id: str) -> int:
        with database.pool.connection() as conn:
            return conn.execute(
                "SELECT (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_blobs"
                "        WHERE thread_id = %(t)s)"
                "     + (SELECT coalesce(sum(octet_length(blob)), 0) FROM checkpoint_writes"
                "        WHERE thread_id = %(t)s)"
                "     + (SELECT coalesce(sum(octet_length(checkpoint::text)"
                "                            + octet_length(metadata::text)), 0)"
                "        FROM checkpoints WHERE thread_id = %(t)s) AS n",
                {"t": thread_id},
            ).fetchone()["n"]

    def per_turn(target: Any, thread_id: str, turns: range) -> list[int]:
        sizes = []
        for turn in turns:
            before = thread_bytes(thread_id)
            talk(target, thread_id, 1, start=turn)
            sizes.append(thread_bytes(thread_id) - before)
        return sizes

    talk(graph, "delta", 5)
    early = statistics.median(per_turn(graph, "delta", range(5, 15)))
    talk(graph, "delta", 285, start=15)
    late = statistics.median(per_turn(graph, "delta", range(300, 310)))
    assert late <= 1.5 * early, (early, late)

    talk(old, "whole-list", 5)
    old_early = statistics.median(per_turn(old, "whole-list", range(5, 15)))
    talk(old, "whole-list", 45, start=15)
    old_late = statistics.median(per_turn(old, "whole-list", range(50, 60)))
    assert old_late > 3 * old_early  # the format it replaces grows with the thread


# Conformance of delete_thread and prune, on a database set up by the saver's own setup().


@pytest.fixture
def bare_saver(database_url: str) -> Iterator[MemoryAgentSaver]:
    with psycopg.connect(
        database_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        saver = MemoryAgentSaver(conn)
        saver.setup()
        saver.setup()  # idempotent
        yield saver


def _rows(saver: MemoryAgentSaver, thread_id: str) -> int:
    return sum(
        saver.conn.execute(
            f"SELECT count(*) AS n FROM {table} WHERE thread_id = %s", (thread_id,)
        ).fetchone()["n"]
        for table in ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
    )


def test_delete_thread_on_a_database_set_up_by_the_saver_alone(
    bare_saver: MemoryAgentSaver,
) -> None:
    graph = chat_graph(bare_saver)
    talk(graph, "doomed", 3)
    talk(graph, "kept", 2)
    kept_rows = _rows(bare_saver, "kept")
    bare_saver.delete_thread("doomed")  # no tool_call_ledger table here: nothing fails
    assert _rows(bare_saver, "doomed") == 0
    assert bare_saver.get_tuple(config("doomed")) is None
    assert _rows(bare_saver, "kept") == kept_rows
    bare_saver.delete_thread("never-existed")


def test_prune_on_a_database_set_up_by_the_saver_alone(bare_saver: MemoryAgentSaver) -> None:
    graph = chat_graph(bare_saver)
    talk(graph, "a", 9)
    talk(graph, "b", 2)
    head = graph.get_state(config("a"))
    bare_saver.prune(["a"], strategy="keep_latest")
    assert graph.get_state(config("a")).values == head.values  # delta threads are not refused
    assert graph.get_state(config("a")).config == head.config
    bare_saver.prune(["a", "b"], strategy="delete")
    assert _rows(bare_saver, "a") == _rows(bare_saver, "b") == 0
    with pytest.raises(TypeError):
        bare_saver.prune("a")
    with pytest.raises(ValueError, match="strategy"):
        bare_saver.prune(["a"], strategy="everything")


def test_delete_and_retention_treat_the_ledger_alike(database: Database) -> None:
    saver = MemoryAgentSaver(database.pool)
    graph = chat_graph(saver)
    talk(graph, "t", 3)
    with database.pool.connection() as conn:
        conn.execute(
            "INSERT INTO tool_call_ledger (thread_id, tool_call_id, tool_name, state, started_at)"
            " VALUES ('t', 'old', 'x', 'done', now() - interval '2 days'),"
            "        ('t', 'new', 'x', 'done', now())"
        )
    assert prune_thread(database.pool, "t", keep=1).ledger_rows == 1  # before the oldest kept
    assert thread_rows(database, "t")["tool_call_ledger"] == 1
    saver.delete_thread("t")
    assert thread_rows(database, "t") == dict.fromkeys(thread_rows(database, "t"), 0)


def test_agent_with_retention_keeps_every_message(database: Database) -> None:
    """With tool calls, and a snapshot only every 100 updates, retention keeps the way back."""
    graph = build_graph(checkpointer=MemoryAgentSaver(database.pool, keep_checkpoints=12))
    for turn in range(12):
        graph.invoke({"messages": [("user", f"What time is it? ({turn})")]}, config("agent"))
    messages = graph.get_state(config("agent")).values["messages"]
    assert len(messages) == 12 * 4 and messages[0].content == "What time is it? (0)"
    history = list(graph.get_state_history(config("agent")))
    assert not history[-1].values.get("messages")  # the thread's start, before its input
    for snapshot in history[:-1]:
        assert snapshot.values["messages"][0].content == "What time is it? (0)"


def test_keep_checkpoints_setting() -> None:
    from graph.settings import DEFAULT_KEEP_CHECKPOINTS, Settings, SettingsError

    assert Settings.from_env({}).keep_checkpoints == DEFAULT_KEEP_CHECKPOINTS
    assert Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "0"}).keep_checkpoints is None
    assert Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "50"}).keep_checkpoints == 50
    with pytest.raises(SettingsError, match="whole number"):
        Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "-3"})
