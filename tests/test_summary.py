"""The bounded prompt: older turns fold into a running summary; what must stay, stays."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from checkpointing import MemoryAgentSaver, setup_checkpoint_tables
from database import UrlTarget, open_database
from graph.builder import build_graph
from graph.state import State
from graph.time_travel import checkpoints, fork, state_at
from nodes.call_model import prompt_messages, system_prompt
from nodes.summarize_history import PromptBudget, extractive_summary, plan_window, tokens

BUDGET = PromptBudget(max_tokens=1000)


def conversation(turns: int, tool_every: int = 3) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    counter = itertools.count()
    for turn in range(turns):
        messages.append(HumanMessage(f"turn {turn}: " + "words " * 40, id=f"m{next(counter)}"))
        if turn % tool_every == 0:
            calls = [{"name": "lookup", "args": {"n": i}, "id": f"call-{turn}-{i}"} for i in (1, 2)]
            messages.append(AIMessage("", tool_calls=calls, id=f"m{next(counter)}"))
            for call in calls:
                messages.append(
                    ToolMessage("result " * 30, tool_call_id=call["id"], id=f"m{next(counter)}")
                )
        messages.append(AIMessage(f"answer {turn} " + "text " * 30, id=f"m{next(counter)}"))
    return messages


def assert_pairs_intact(window: list[BaseMessage]) -> None:
    calls_seen: set[str] = set()
    for message in window:
        if isinstance(message, AIMessage):
            calls_seen |= {call["id"] for call in message.tool_calls}
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in calls_seen, "a tool result without its call"


@pytest.mark.parametrize("cut_at", range(20, 75, 3))
def test_a_fold_keeps_the_newest_user_message_and_every_tool_pair(cut_at: int) -> None:
    messages = conversation(25)[:cut_at]  # ends anywhere: mid tool loop, after a result, ...
    system = system_prompt(["[k1] the user likes tea"])
    folded, window = plan_window(system, messages, None, BUDGET)
    assert folded and folded == messages[: len(folded)]
    newest_user = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
    assert newest_user in window
    assert_pairs_intact(window)
    summary = extractive_summary("", folded, BUDGET.summary_tokens)
    assert tokens([system_prompt(["[k1] the user likes tea"], summary), *window]) <= 1000
    # The next call starts after the fold and still keeps the newest user message.
    _, next_window = plan_window(system, messages, folded[-1].id, BUDGET)
    assert newest_user in next_window
    assert_pairs_intact(next_window)


def test_the_extractive_summary_keeps_facts_longest() -> None:
    folded = [HumanMessage("my name is Ada. " + "filler " * 50, id="a")]
    folded += [HumanMessage(f"chat {i} " + "filler " * 50, id=f"c{i}") for i in range(40)]
    summary = extractive_summary("", folded, 200)
    assert "my name is Ada" in summary and len(summary) <= 200 * 4
    summary = extractive_summary(summary, [HumanMessage("my name is Grace", id="g")], 200)
    assert "my name is Grace" in summary and "Ada" not in summary


@pytest.fixture
def saver(database_url: str) -> Iterator[MemoryAgentSaver]:
    with open_database(UrlTarget(database_url)) as database:
        setup_checkpoint_tables(database.pool)
        yield MemoryAgentSaver(database.pool)


def config(thread_id: str, checkpoint_id: str | None = None) -> dict[str, Any]:
    configurable = {"thread_id": thread_id}
    if checkpoint_id:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def test_a_summarized_thread_keeps_every_message_and_travels_in_time(
    saver: MemoryAgentSaver,
) -> None:
    graph = build_graph(saver, prompt_budget=BUDGET)
    graph.invoke({"messages": [("user", "My name is Ada.")]}, config("t"))
    for turn in range(24):
        text = "What time is it?" if turn % 5 == 0 else f"note {turn}: " + "words " * 40
        graph.invoke({"messages": [("user", text)]}, config("t"))
    state = graph.get_state(config("t"))
    messages = state.values["messages"]
    assert len(messages) == 2 + 24 * 2 + 5 * 2  # every message is kept in the checkpoints
    assert state.values["summary"] and state.values["summarized_through"]
    prompt = prompt_messages(State(**state.values))
    assert tokens(prompt) <= BUDGET.max_tokens
    assert len(prompt) < len(messages)
    answer = graph.invoke({"messages": [("user", "What is my name?")]}, config("t"))
    assert answer["messages"][-1].content == "Your name is Ada."  # from the summary

    history = list(checkpoints(graph, "t"))
    summaries = [s.values.get("summary", "") for s in history]
    folded_at = next(i for i, s in enumerate(summaries) if s and not summaries[i + 1])
    before_fold = history[folded_at + 1]
    assert before_fold.values["messages"] == history[folded_at + 1].values["messages"]
    old = state_at(graph, "t", before_fold.config["configurable"]["checkpoint_id"])
    assert old.values.get("summary", "") == ""  # the state as it was, summary included

    # Fork a summarized checkpoint, in this thread and into a new one: both carry on.
    source = next(s for s in history[1:] if s.values.get("summary") and not s.next)
    summarized = source.config["configurable"]["checkpoint_id"]
    head = fork(graph, "t", summarized, to_thread="t-copy")
    copied = graph.get_state(head)
    assert copied.values["summary"] == source.values["summary"]
    assert copied.values["messages"] == source.values["messages"]
    reply = graph.invoke({"messages": [("user", "What is my name?")]}, config("t-copy"))
    assert reply["messages"][-1].content == "Your name is Ada."
    fork(graph, "t", summarized)
    graph.invoke({"messages": [("user", "my name is Grace")]}, config("t"))
    branch = graph.invoke({"messages": [("user", "What is my name?")]}, config("t"))
    assert branch["messages"][-1].content == "Your name is Grace."
    assert len(branch["messages"]) == len(source.values["messages"]) + 4


def test_prompt_budget_setting() -> None:
    from graph.settings import DEFAULT_PROMPT_TOKENS, Settings, SettingsError

    assert Settings.from_env({}).prompt_tokens == DEFAULT_PROMPT_TOKENS
    assert Settings.from_env({"MEMORY_AGENT_PROMPT_TOKENS": "0"}).prompt_tokens is None
    assert Settings.from_env({"MEMORY_AGENT_PROMPT_TOKENS": "4000"}).prompt_tokens == 4000
    with pytest.raises(SettingsError, match="MEMORY_AGENT_PROMPT_TOKENS"):
        Settings.from_env({"MEMORY_AGENT_PROMPT_TOKENS": "50"})
