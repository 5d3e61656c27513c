"""Time travel: list, read, replay and fork checkpoints; a fork never changes the original."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage

from checkpointing.copy_thread import CheckpointNotFound
from graph.approvals import decision, pending_in_thread
from graph.time_travel import ThreadExists, checkpoints, fork, replay, state_at
from tests.workers.kit import open_test_graph


@pytest.fixture
def graph(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with open_test_graph(database_url) as compiled:
        yield compiled


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _texts(state: Any) -> list[str]:
    return [str(m.content) for m in state.values["messages"]]


def _snapshot_of(graph: Any, thread_id: str) -> list[tuple[str, list[str], tuple[str, ...]]]:
    return [
        (s.config["configurable"]["checkpoint_id"], _texts(s), s.next)
        for s in checkpoints(graph, thread_id)
    ]


def _checkpoint_where(graph: Any, thread_id: str, texts: list[str], next_: tuple[str, ...]) -> str:
    for snapshot in checkpoints(graph, thread_id):
        if _texts(snapshot) == texts and snapshot.next == next_:
            return str(snapshot.config["configurable"]["checkpoint_id"])
    raise AssertionError(f"no checkpoint with {texts} and next={next_}")


def _two_turns(graph: Any) -> None:
    graph.invoke({"messages": [("user", "hello")]}, _config("t"))
    graph.invoke({"messages": [("user", "append 1 x")]}, _config("t"))


def test_fork_into_a_new_thread_copies_history_and_leaves_the_original(graph: Any) -> None:
    _two_turns(graph)
    original = _snapshot_of(graph, "t")
    after_first_turn = _checkpoint_where(graph, "t", ["hello", "echo: hello"], ())
    head = fork(graph, "t", after_first_turn, to_thread="t2")
    assert _texts(graph.get_state(_config("t2"))) == ["hello", "echo: hello"]
    assert head["configurable"]["thread_id"] == "t2"
    assert (
        graph.invoke({"messages": [("user", "bye")]}, _config("t2"))["messages"][-1].content
        == "echo: bye"
    )
    assert _snapshot_of(graph, "t") == original  # untouched, every checkpoint
    copied = [cid for cid, _, _ in _snapshot_of(graph, "t2")]
    assert after_first_turn in copied  # the history up to the fork came along
    with pytest.raises(ThreadExists):
        fork(graph, "t", after_first_turn, to_thread="t2")


def test_fork_in_the_same_thread_with_an_edit_branches_without_changing_old_checkpoints(
    graph: Any,
) -> None:
    _two_turns(graph)
    original = _snapshot_of(graph, "t")
    before_model = _checkpoint_where(graph, "t", ["hello"], ("call_model",))
    hello = state_at(graph, "t", before_model).values["messages"][0]
    fork(graph, "t", before_model, values={"messages": [HumanMessage("bonjour", id=hello.id)]})
    result = graph.invoke(None, _config("t"))
    assert [m.content for m in result["messages"]] == ["bonjour", "echo: bonjour"]
    for checkpoint_id, texts, next_ in original:  # every old checkpoint reads as before
        snapshot = state_at(graph, "t", checkpoint_id)
        assert (_texts(snapshot), snapshot.next) == (texts, next_)


def test_fork_without_edits_makes_the_checkpoint_the_head_again(graph: Any) -> None:
    _two_turns(graph)
    after_first_turn = _checkpoint_where(graph, "t", ["hello", "echo: hello"], ())
    fork(graph, "t", after_first_turn)
    assert _texts(graph.get_state(_config("t"))) == ["hello", "echo: hello"]
    result = graph.invoke({"messages": [("user", "again")]}, _config("t"))
    assert [m.content for m in result["messages"]] == [
        "hello",
        "echo: hello",
        "again",
        "echo: again",
    ]


def test_fork_of_a_paused_checkpoint_is_paused_too_and_decided_separately(
    graph: Any, database_url: str
) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    head = graph.get_state(_config("t")).config["configurable"]["checkpoint_id"]
    fork(graph, "t", head, to_thread="t2")
    assert [p.tool for p in pending_in_thread(graph, "t2")] == ["delete_thing"]
    graph.invoke(decision("reject"), _config("t2"))
    assert pending_in_thread(graph, "t2") == []
    assert [p.args for p in pending_in_thread(graph, "t")] == [{"key": "k1"}]  # still waiting


def test_replay_reuses_recorded_tool_results(graph: Any, database_url: str) -> None:
    _two_turns(graph)
    before_tool = _checkpoint_where(
        graph, "t", ["hello", "echo: hello", "append 1 x", ""], ("run_tools",)
    )
    result = replay(graph, "t", before_tool)
    assert result["messages"][-1].content == "done: appended 1 rows for x"
    with psycopg.connect(database_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM test_side_effects").fetchone()
    assert count == 1  # the replayed call id was in the ledger: no second row


def test_unknown_checkpoint_is_a_clear_error(graph: Any) -> None:
    _two_turns(graph)
    with pytest.raises(CheckpointNotFound, match="has no checkpoint nope"):
        state_at(graph, "t", "nope")
    with pytest.raises(CheckpointNotFound):
        fork(graph, "t", "nope", to_thread="t3")
    assert graph.get_state(_config("t3")).values == {}


def test_deleting_a_thread_deletes_its_ledger_rows(graph: Any, database_url: str) -> None:
    _two_turns(graph)
    graph.invoke({"messages": [("user", "append 1 y")]}, _config("other"))
    graph.checkpointer.delete_thread("t")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT thread_id FROM tool_call_ledger").fetchall()
    assert rows == [("other",)]
    assert graph.get_state(_config("t")).values == {}
