"""The offline model: deterministic, history-aware, and it emits real tool calls."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from graph.offline_model import OfflineChatModel, respond
from graph.tools import BASE_TOOLS


def test_same_conversation_same_answer() -> None:
    conversation = [HumanMessage("hello there")]
    assert respond(conversation).content == respond(conversation).content


def test_answers_from_earlier_in_the_thread() -> None:
    conversation = [
        HumanMessage("My name is Ada and my favourite colour is teal."),
        AIMessage("Noted."),
        HumanMessage("What is my favourite colour?"),
    ]
    assert respond(conversation).content == "Your favourite colour is teal."
    assert "don't know your name" in str(respond([HumanMessage("What is my name?")]).content)


def test_calls_a_bound_tool_with_a_unique_id_per_turn() -> None:
    model = OfflineChatModel().bind_tools(BASE_TOOLS)
    first = model.invoke([HumanMessage("what time is it?")])
    later = model.invoke(
        [HumanMessage("what time is it?"), AIMessage("..."), HumanMessage("what time is it?")]
    )
    assert first.tool_calls[0]["name"] == "get_current_time"
    assert first.tool_calls[0]["id"] != later.tool_calls[0]["id"]


def test_never_calls_a_tool_it_was_not_given() -> None:
    reply = OfflineChatModel().invoke([HumanMessage("what time is it?")])
    assert not reply.tool_calls
    assert respond([HumanMessage("remember that I like tea")]).tool_calls == []


def test_summarises_tool_results_and_errors() -> None:
    call = AIMessage("", tool_calls=[{"name": "get_current_time", "args": {}, "id": "c1"}])
    ok = respond(
        [
            HumanMessage("time?"),
            call,
            ToolMessage("2026-01-01T00:00:00+00:00", tool_call_id="c1", name="get_current_time"),
        ]
    )
    assert ok.content == "It is 2026-01-01T00:00:00+00:00 (UTC)."
    failed = respond(
        [
            HumanMessage("time?"),
            call,
            ToolMessage("clock broke", tool_call_id="c1", name="get_current_time", status="error"),
        ]
    )
    assert "couldn't complete get_current_time: clock broke" in str(failed.content)


def test_uses_memories_from_the_system_prompt() -> None:
    system = SystemMessage("You are helpful.\n<memories>\n- [m1] my name is Grace\n</memories>")
    assert respond([system, HumanMessage("what's my name?")]).content == "Your name is Grace."


def test_a_new_value_for_a_remembered_fact_overwrites_that_memory_only() -> None:
    system = SystemMessage(
        "<memories>\n- [m1] my city is Lyon and my dog is Rex\n"
        "- [m2] my favourite colour is blue\n</memories>"
    )

    def saved(text: str) -> dict[str, str]:
        (call,) = respond([system, HumanMessage(text)], ["save_memory"]).tool_calls
        return dict(call["args"])

    assert saved("Remember that my favourite colour is green.") == {
        "content": "my favourite colour is green",
        "key": "m2",
    }
    # The same value again, a new fact, or a fact stored beside another: no overwrite.
    assert "key" not in saved("Remember that my favourite colour is blue.")
    assert "key" not in saved("Remember that my team is Falcons.")
    assert "key" not in saved("Remember that my city is Paris.")
