"""Facts extracted after each turn: off by default, after the answer, once per turn even
across a kill -9 between the answer and the extraction, attributed to the turn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest

from graph.agent import open_agent
from graph.context import Context
from graph.settings import Settings
from store import memories
from tests.processes import Worker


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    return Settings.from_env()


def _rows(database_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT thread_id, user_id, state, attempts, saved FROM memory_extractions"
        ).fetchall()


def _wait_until_done(database_url: str, seconds: float = 120) -> None:
    # The worker runs in the background; on a loaded machine it can take a while.
    deadline = time.monotonic() + seconds
    while any(row[2] != "done" for row in _rows(database_url)) and time.monotonic() < deadline:
        time.sleep(0.1)


def _contents(store: Any, user: str) -> set[str]:
    return {item.value["content"] for item in memories.list_memories(store, user)}


def test_off_by_default(settings: Settings, database_url: str) -> None:
    with open_agent(settings) as graph:
        assert graph.extractor is None and "queue_extraction" not in graph.nodes
        graph.invoke(
            {"messages": [("user", "My city is Lyon.")]},
            {"configurable": {"thread_id": "t"}},
            context=Context(user_id="ann"),
        )
        assert _contents(graph.store, "ann") == set()


def test_extracted_after_the_answer_attributed_to_the_turn(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMORY_EXTRACTION", "1")
    with open_agent(Settings.from_env()) as graph:
        result = graph.invoke(
            {"messages": [("user", "Hi! My city is Lyon and my favourite colour is green.")]},
            {"configurable": {"thread_id": "t1", "run_id": "run-1"}},
            context=Context(user_id="ann"),
        )
        assert result["messages"][-1].content.startswith("Noted")  # the answer, unchanged
        _wait_until_done(database_url)
        assert _rows(database_url) == [("t1", "ann", "done", 1, 2)]
        assert _contents(graph.store, "ann") == {
            "my city is Lyon",
            "my favourite colour is green",
        }
        history = memories.memory_history(graph.store, "ann")
        assert {(r.action, r.source, r.thread_id, r.run_id) for r in history} == {
            ("create", "extraction", "t1", "run-1")
        }
        # The model's own save and the extraction meet on one memory: no rival, and the
        # extraction's restatement changes nothing.
        graph.invoke(
            {"messages": [("user", "My city is now Paris")]},
            {"configurable": {"thread_id": "t2"}},
            context=Context(user_id="ann"),
        )
        _wait_until_done(database_url)
    assert [row[2] for row in _rows(database_url)] == ["done", "done"]
    with open_agent(settings) as graph:
        assert _contents(graph.store, "ann") == {
            "my city is Paris",
            "my favourite colour is green",
        }
        assert len(memories.memory_history(graph.store, "ann")) == 3


def test_once_per_turn_across_a_kill_between_answer_and_extraction(
    settings: Settings, database_url: str, subprocess_env: dict[str, str]
) -> None:
    env = {**subprocess_env, "MEMORY_EXTRACTION": "1", "AUTO_SETUP": "1"}
    worker = Worker("answer_then_die", ["zoë", "crash-1", "I live in Oslo and my dog is Rex."], env)
    assert worker.wait_for("answer: ") is not None, (
        worker.drain(),
        worker.process.stderr.read() if worker.process.stderr else "",
    )
    assert worker.process.wait(timeout=60) == -9
    # Killed after the answer was saved and before anything was extracted.
    assert _rows(database_url) == [("crash-1", "zoë", "pending", 0, None)]
    with open_agent(settings) as graph:
        assert _contents(graph.store, "zoë") == set()
        answered = graph.get_state({"configurable": {"thread_id": "crash-1"}})
        assert answered.values["messages"][-1].content.startswith("Noted")

    # The next process with extraction on does the turn, once.
    for _ in range(2):
        with open_agent(_with_extraction(settings)) as graph:
            assert graph.extractor is not None
            _wait_until_done(database_url)
    assert _rows(database_url) == [("crash-1", "zoë", "done", 1, 2)]
    with open_agent(settings) as graph:
        assert _contents(graph.store, "zoë") == {"my home is Oslo", "my dog is Rex"}
        history = memories.memory_history(graph.store, "zoë")
        assert len(history) == 2
        assert {(r.source, r.thread_id) for r in history} == {("extraction", "crash-1")}
        assert all(r.run_id for r in history)


def _with_extraction(settings: Settings) -> Settings:
    from dataclasses import replace

    return replace(settings, memory=replace(settings.memory, extract_after_turn=True))


async def test_the_async_agent_extracts_too(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graph.agent import aopen_agent

    monkeypatch.setenv("MEMORY_EXTRACTION", "1")
    async with aopen_agent(Settings.from_env()) as graph:
        await graph.ainvoke(
            {"messages": [("user", "My dog is Rex and I work at Acme.")]},
            {"configurable": {"thread_id": "a1"}},
            context=Context(user_id="amy"),
        )
        # The worker task does it in the background (on a loaded machine, not at once).
        deadline = time.monotonic() + 120
        while any(row[2] != "done" for row in _rows(database_url)):
            assert time.monotonic() < deadline, _rows(database_url)
            await asyncio.sleep(0.1)
        assert _rows(database_url) == [("a1", "amy", "done", 1, 2)]
    async with aopen_agent(settings) as graph:
        found = await memories.alist_memories(graph.store, "amy")
        assert {item.value["content"] for item in found} == {"my dog is Rex", "my employer is Acme"}
        history = await graph.store.ahistory(("user_memories", "amy"))
        assert {(r.source, r.thread_id) for r in history} == {("extraction", "a1")}
