"""Human approval of sensitive tool calls: approve, reject, edit; in one process and across processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

from checkpointing.ownership import ThreadOfAnotherUser
from graph.approvals import decision, pending_approvals, pending_in_thread
from graph.validation import InvalidInput
from nodes.review_tool_calls import InvalidDecision, parse_decision
from tests.processes import Worker
from tests.workers.kit import open_test_graph


@pytest.fixture
def graph(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DATABASE_URL", database_url)  # the test tools write through it
    with open_test_graph(database_url) as compiled:
        yield compiled


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _deleted(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT payload FROM test_side_effects WHERE tool = 'delete_thing' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]


def _assert_every_call_answered(messages: list[Any]) -> None:
    calls = [c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    answers = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
    assert sorted(calls) == sorted(answers)


def test_sensitive_call_pauses_with_what_would_happen(graph: Any, database_url: str) -> None:
    result = graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    (request,) = result["__interrupt__"]
    assert request.value["type"] == "tool_approval"
    assert request.value["tool"] == "delete_thing"
    assert request.value["args"] == {"key": "k1"}
    assert (
        "delete_thing" in request.value["description"]
        and "irreversible" in request.value["description"]
    )
    assert _deleted(database_url) == []  # nothing happened yet
    (pending,) = pending_approvals(graph)
    assert (pending.thread_id, pending.tool, pending.args) == ("t", "delete_thing", {"key": "k1"})


def test_approve_runs_the_call_once(graph: Any, database_url: str) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    result = graph.invoke(decision("approve"), _config("t"))
    assert result["messages"][-1].content == "deleted k1"
    assert _deleted(database_url) == ["k1"]
    assert pending_approvals(graph) == []
    _assert_every_call_answered(result["messages"])


def test_reject_answers_the_call_and_the_thread_goes_on(graph: Any, database_url: str) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    result = graph.invoke(decision("reject", reason="keep it"), _config("t"))
    rejection = result["messages"][-2]
    assert isinstance(rejection, ToolMessage) and rejection.status == "error"
    assert "rejected" in rejection.content and "Reason: keep it." in rejection.content
    assert _deleted(database_url) == []
    _assert_every_call_answered(result["messages"])
    after = graph.invoke({"messages": [("user", "hello")]}, _config("t"))
    assert after["messages"][-1].content == "echo: hello"


def test_edit_replaces_the_arguments(graph: Any, database_url: str) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    result = graph.invoke(decision("edit", args={"key": "k2"}), _config("t"))
    assert _deleted(database_url) == ["k2"]
    ai = next(m for m in result["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert ai.tool_calls[0]["args"] == {"key": "k2"}  # the transcript shows what ran
    _assert_every_call_answered(result["messages"])


def test_two_sensitive_calls_pause_one_after_the_other(graph: Any, database_url: str) -> None:
    graph.invoke({"messages": [("user", "hello")]}, _config("t"))
    calls = [
        {"name": "delete_thing", "args": {"key": key}, "id": f"call_{key}"} for key in ("a", "b")
    ]
    graph.update_state(
        _config("t"), {"messages": [AIMessage("", tool_calls=calls)]}, as_node="call_model"
    )
    first = graph.invoke(None, _config("t"))
    assert first["__interrupt__"][0].value["args"] == {"key": "a"}
    second = graph.invoke(decision("approve"), _config("t"))
    assert second["__interrupt__"][0].value["args"] == {"key": "b"}
    assert _deleted(database_url) == []  # nothing runs until every call is decided
    final = graph.invoke(decision("reject"), _config("t"))
    assert _deleted(database_url) == ["a"]  # the re-run review node did not repeat anything
    _assert_every_call_answered(final["messages"])


def test_bad_decisions_are_refused_before_anything_is_saved(graph: Any) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    before = graph.get_state(_config("t"))
    for bad in ({"action": "maybe"}, {"action": "edit"}, {"action": "approve", "args": {}}, 42):
        with pytest.raises(InvalidInput, match="invalid resume value"):
            graph.invoke(Command(resume=bad), _config("t"))
    after = graph.get_state(_config("t"))
    assert after.config == before.config and after.interrupts == before.interrupts
    assert graph.invoke(decision("approve"), _config("t"))["messages"][-1].content == "deleted k1"


def test_new_message_while_waiting_declines_the_call_then_answers(
    graph: Any, database_url: str
) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    result = graph.invoke({"messages": [("user", "hello")]}, _config("t"))
    assert pending_in_thread(graph, "t") == []
    assert _deleted(database_url) == []  # declined, never run
    messages = result["messages"]
    declined = [m for m in messages if m.type == "tool" and "new message" in str(m.content)]
    assert len(declined) == 1
    assert messages[-2].content == "hello" and messages[-1].type == "ai"  # then answered
    _assert_every_call_answered(messages)


def test_resume_without_a_pending_decision_is_refused(graph: Any) -> None:
    graph.invoke({"messages": [("user", "hello")]}, _config("t"))
    with pytest.raises(InvalidInput, match="not waiting for a decision"):
        graph.invoke(decision("approve"), _config("t"))


def test_resume_with_the_head_checkpoint_id_resumes_instead_of_replaying(
    graph: Any, database_url: str
) -> None:
    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"))
    head = graph.get_state(_config("t")).config["configurable"]["checkpoint_id"]
    older = list(graph.get_state_history(_config("t")))[-1].config["configurable"]["checkpoint_id"]
    with pytest.raises(InvalidInput, match="is not the latest"):
        graph.invoke(
            decision("approve"), {"configurable": {"thread_id": "t", "checkpoint_id": older}}
        )
    result = graph.invoke(
        decision("approve"), {"configurable": {"thread_id": "t", "checkpoint_id": head}}
    )
    assert result["messages"][-1].content == "deleted k1"
    assert _deleted(database_url) == ["k1"]


def test_resume_runs_as_the_user_the_request_was_made_for(graph: Any, database_url: str) -> None:
    from graph.context import Context

    graph.invoke({"messages": [("user", "delete k1")]}, _config("t"), context=Context("alice"))
    (pending,) = pending_in_thread(graph, "t")
    assert pending.user_id == "alice"
    with pytest.raises(ThreadOfAnotherUser, match="belongs to another user"):
        graph.invoke(decision("approve"), _config("t"), context=Context("bob"))
    # A caller without a user id never inherits the paused user's identity.
    with pytest.raises(ThreadOfAnotherUser, match="belongs to a user"):
        graph.invoke(decision("approve"), _config("t"))
    assert _deleted(database_url) == []
    result = graph.invoke(decision("approve"), _config("t"), context=Context("alice"))
    assert result["messages"][-1].content == "deleted k1 for alice"


def test_parse_decision() -> None:
    assert parse_decision("approve").action == "approve"
    assert parse_decision({"action": "edit", "args": {"a": 1}}).args == {"a": 1}
    with pytest.raises(InvalidDecision, match="unknown key"):
        parse_decision({"action": "approve", "why": "x"})
    with pytest.raises(InvalidDecision, match="reason must be text"):
        parse_decision({"action": "reject", "reason": 3})


@pytest.mark.parametrize(
    ("resume", "answer", "deleted"),
    [
        ({"action": "approve"}, "deleted k1", ["k1"]),
        ({"action": "reject", "reason": "no"}, "rejected", []),
        ({"action": "edit", "args": {"key": "k9"}}, "deleted k9", ["k9"]),
    ],
)
def test_decision_from_another_process(
    database_url: str,
    subprocess_env: dict[str, str],
    resume: dict[str, Any],
    answer: str,
    deleted: list[str],
) -> None:
    asker = Worker("run_once", [database_url, "t", "delete k1"], subprocess_env)
    assert asker.finish()[0] == 0
    pending = json.loads(next(line for line in asker.seen if line.startswith("{")))
    assert pending["pending"]["tool"] == "delete_thing"
    decider = Worker(
        "run_once", [database_url, "t", "--resume", json.dumps(resume)], subprocess_env
    )
    code, stderr = decider.finish()
    assert code == 0, stderr
    assert answer in next(line for line in decider.seen if line.startswith("{"))
    assert _deleted(database_url) == deleted
    again = Worker("run_once", [database_url, "t", "--resume", json.dumps(resume)], subprocess_env)
    code, stderr = again.finish()
    assert code == 2 and "not waiting for a decision" in stderr
    assert _deleted(database_url) == deleted
