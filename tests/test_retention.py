"""Checkpoint retention: bounded history, nothing the kept checkpoints need is lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from checkpointing import MemoryAgentSaver, setup_checkpoint_tables
from checkpointing.retention import aprune_thread, prune_thread
from database import Database, UrlTarget, aopen_database, open_database
from graph.builder import MemoryAgentGraph, build_graph


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    with open_database(UrlTarget(database_url)) as db:
        setup_checkpoint_tables(db.pool)
        yield db


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def counts(database: Database, thread_id: str) -> tuple[int, int]:
    with database.pool.connection() as conn:
        checkpoints = conn.execute(
            "SELECT count(*) AS n FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()["n"]
        blobs = conn.execute(
            "SELECT count(*) AS n FROM checkpoint_blobs WHERE thread_id = %s", (thread_id,)
        ).fetchone()["n"]
    return checkpoints, blobs


def chat(graph: MemoryAgentGraph, thread_id: str, turns: int) -> None:
    graph.invoke({"messages": [("user", "My name is Ada.")]}, config(thread_id))
    for turn in range(turns - 1):
        graph.invoke({"messages": [("user", f"What time is it? ({turn})")]}, config(thread_id))


def test_prune_keeps_the_newest_checkpoints_and_the_thread_intact(database: Database) -> None:
    graph = build_graph(checkpointer=MemoryAgentSaver(database.pool))
    chat(graph, "long", turns=6)
    chat(graph, "other", turns=2)
    before_state = graph.get_state(config("long"))
    newest_ids = [
        s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(config("long"))
    ][:5]
    checkpoints_before, blobs_before = counts(database, "long")
    other_before = counts(database, "other")

    result = prune_thread(database.pool, "long", keep=5)

    assert result.checkpoints == checkpoints_before - 5
    assert 0 < result.blobs < blobs_before
    assert counts(database, "long")[0] == 5
    assert counts(database, "other") == other_before  # other threads untouched
    history = list(graph.get_state_history(config("long")))
    assert [s.config["configurable"]["checkpoint_id"] for s in history] == newest_ids
    for snapshot in history:  # every kept checkpoint still reads back whole
        assert snapshot.values["messages"][0].content == "My name is Ada."
    assert graph.get_state(config("long")).values == before_state.values
    graph.invoke({"messages": [("user", "What is my name?")]}, config("long"))
    assert graph.get_state(config("long")).values["messages"][-1].content == "Your name is Ada."


def test_prune_is_idempotent_and_refuses_to_drop_everything(database: Database) -> None:
    graph = build_graph(checkpointer=MemoryAgentSaver(database.pool))
    chat(graph, "t", turns=2)
    assert prune_thread(database.pool, "t", keep=3).checkpoints > 0
    assert prune_thread(database.pool, "t", keep=3).checkpoints == 0
    with pytest.raises(ValueError, match="at least 1"):
        prune_thread(database.pool, "t", keep=0)


async def test_async_prune(database_url: str, database: Database) -> None:
    graph = build_graph(checkpointer=MemoryAgentSaver(database.pool))
    chat(graph, "a", turns=3)
    async with aopen_database(UrlTarget(database_url)) as adb:
        result = await aprune_thread(adb.pool, "a", keep=2)
    assert result.checkpoints > 0 and counts(database, "a")[0] == 2


def test_saver_keeps_each_thread_bounded_as_it_runs(database: Database) -> None:
    graph = build_graph(checkpointer=MemoryAgentSaver(database.pool, keep_checkpoints=12))
    chat(graph, "bounded", turns=12)  # ~48 steps
    checkpoints, _ = counts(database, "bounded")
    assert 12 <= checkpoints <= 12 + 10  # pruned every 10 steps down to 12
    messages = graph.get_state(config("bounded")).values["messages"]
    assert messages[0].content == "My name is Ada." and len(messages) == 1 + 1 + 11 * 4
    unbounded = build_graph(checkpointer=MemoryAgentSaver(database.pool))
    chat(unbounded, "unbounded", turns=12)
    assert counts(database, "unbounded")[0] > 40


def test_keep_checkpoints_setting() -> None:
    from graph.settings import DEFAULT_KEEP_CHECKPOINTS, Settings, SettingsError

    assert Settings.from_env({}).keep_checkpoints == DEFAULT_KEEP_CHECKPOINTS
    assert Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "0"}).keep_checkpoints is None
    assert Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "50"}).keep_checkpoints == 50
    with pytest.raises(SettingsError, match="whole number"):
        Settings.from_env({"MEMORY_AGENT_KEEP_CHECKPOINTS": "-3"})


def test_saver_on_a_single_connection_prunes_too(database_url: str, database: Database) -> None:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(
        database_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
    ) as conn:
        graph = build_graph(checkpointer=MemoryAgentSaver(conn, keep_checkpoints=5))
        chat(graph, "one-connection", turns=6)
    assert 5 <= counts(database, "one-connection")[0] <= 15
