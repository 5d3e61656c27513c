"""The compiled graph on a real Postgres checkpointer: continuity, isolation, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from checkpointing import (
    AsyncMemoryAgentSaver,
    InvalidThreadId,
    MemoryAgentSaver,
    setup_checkpoint_tables,
)
from database import Database, UrlTarget, aopen_database, open_database
from graph.builder import MemoryAgentGraph, build_graph
from graph.validation import MAX_INPUT_ITEMS, MAX_MESSAGE_CHARS, InputTooLarge, InvalidInput


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    with open_database(UrlTarget(database_url)) as db:
        setup_checkpoint_tables(db.pool)
        yield db


@pytest.fixture
def graph(database: Database) -> MemoryAgentGraph:
    return build_graph(checkpointer=MemoryAgentSaver(database.pool))


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def ask(graph: MemoryAgentGraph, text: str, thread_id: str) -> str:
    return str(
        graph.invoke({"messages": [("user", text)]}, config(thread_id))["messages"][-1].content
    )


def test_thread_remembers_and_threads_are_isolated(graph: MemoryAgentGraph) -> None:
    ask(graph, "My name is Ada.", "thread-a")
    assert ask(graph, "What is my name?", "thread-a") == "Your name is Ada."
    assert ask(graph, "What is my name?", "thread-b").startswith("I don't know your name")
    assert len(graph.get_state(config("thread-a")).values["messages"]) == 4
    assert len(graph.get_state(config("thread-b")).values["messages"]) == 2


def test_tool_call_round_trip_is_checkpointed(graph: MemoryAgentGraph) -> None:
    ask(graph, "What time is it?", "t-time")
    messages = graph.get_state(config("t-time")).values["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert messages[1].tool_calls[0]["id"] == messages[2].tool_call_id


def test_stream_yields_each_step(graph: MemoryAgentGraph) -> None:
    steps = [
        next(iter(chunk))
        for chunk in graph.stream({"messages": [("user", "what time is it?")]}, config("s"))
    ]
    assert steps == [
        "recall_memories",
        "call_model",
        "review_tool_calls",
        "run_tools",
        "call_model",
    ]


async def test_async_graph_on_async_pool(database_url: str) -> None:
    async with aopen_database(UrlTarget(database_url)) as db:
        saver = AsyncMemoryAgentSaver(db.pool)
        await saver.setup()
        graph = build_graph(checkpointer=saver)
        await graph.ainvoke({"messages": [("user", "my name is Lin")]}, config("async"))
        chunks = [
            c
            async for c in graph.astream(
                {"messages": [("user", "what is my name?")]}, config("async"), stream_mode="values"
            )
        ]
        assert chunks[-1]["messages"][-1].content == "Your name is Lin."


BAD_INPUTS = [
    pytest.param({"messages": [("user", "")]}, InvalidInput, "empty", id="empty message"),
    pytest.param({"messages": [("user", " \n\t")]}, InvalidInput, "empty", id="blank message"),
    pytest.param(
        {"messages": [{"role": "user", "content": 123}]}, InvalidInput, "got int", id="int content"
    ),
    pytest.param(
        {"messages": [{"role": "user", "content": {"a": 1}}]},
        InvalidInput,
        "got dict",
        id="dict content",
    ),
    pytest.param({"messages": []}, InvalidInput, "must not be empty", id="no messages"),
    pytest.param(
        {"messages": [{"role": "wizard", "content": "hi"}]},
        InvalidInput,
        "could not be read",
        id="unknown role",
    ),
    pytest.param("hello", InvalidInput, "must be a mapping", id="bare string"),
    pytest.param(
        {"messages": [("user", "hi")], "recalled_memories": 5},
        InvalidInput,
        "recalled_memories cannot be set by a caller",
        id="foreign state field",
    ),
    pytest.param(
        Command(update={"messages": [{"role": "user", "content": 123}]}),
        InvalidInput,
        "got int",
        id="Command update with int content",
    ),
    pytest.param(
        Command(update={"recalled_memories": 5}),
        InvalidInput,
        "cannot be set",
        id="Command update of a foreign field",
    ),
    pytest.param(
        {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c9"}]},
        InvalidInput,
        "no earlier message in the input calls",
        id="orphan tool result",
    ),
    pytest.param(
        {
            "messages": [
                AIMessage("", tool_calls=[{"name": "get_current_time", "args": {}, "id": "c1"}])
            ]
        },
        InvalidInput,
        "has no result for it",
        id="unanswered tool call",
    ),
]


@pytest.mark.parametrize(("payload", "error", "fragment"), BAD_INPUTS)
def test_bad_input_is_rejected_and_thread_unchanged(
    graph: MemoryAgentGraph, payload: Any, error: type[Exception], fragment: str
) -> None:
    ask(graph, "My name is Ada.", "guarded")
    before = graph.get_state(config("guarded"))
    with pytest.raises(error, match=fragment) as excinfo:
        graph.invoke(payload, config("guarded"))
    assert "\n" not in str(excinfo.value)
    after = graph.get_state(config("guarded"))
    assert after.config == before.config
    assert after.values["messages"] == before.values["messages"]
    assert ask(graph, "What is my name?", "guarded") == "Your name is Ada."  # still usable


BAD_THREAD_IDS = [
    pytest.param("x" * 10_000, "10000 characters", id="10k characters"),
    pytest.param("a\x00b", "control character", id="NUL byte"),
    pytest.param("line\nbreak", "control character", id="newline"),
    pytest.param("\ud800", "unpaired surrogate", id="lone surrogate"),
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("   ", "must not be empty", id="blank"),
    pytest.param(4.2, "must be a string", id="float"),
    pytest.param(None, "thread_id is required", id="None"),
]


@pytest.mark.parametrize(("thread_id", "fragment"), BAD_THREAD_IDS)
def test_bad_thread_ids_get_a_clear_error_and_write_nothing(
    graph: MemoryAgentGraph, database: Database, thread_id: Any, fragment: str
) -> None:
    with pytest.raises(InvalidThreadId, match=fragment):
        graph.invoke({"messages": [("user", "hi")]}, config(thread_id))
    if isinstance(thread_id, str):  # LangGraph reads any other type as its str()
        with pytest.raises(InvalidThreadId, match=fragment):
            graph.get_state(config(thread_id))
    with database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM checkpoints").fetchone()["n"] == 0


@pytest.mark.parametrize(
    "thread_id",
    [
        "café",
        "cafe\u0301",
        "线程-1",
        "🧠🗄️",
        "\u202eevil",
        "a\u200bb",
        "x" * 256,
        "'; DROP TABLE checkpoints; --",
    ],
)
def test_unusual_unicode_thread_ids_are_kept_exactly(
    graph: MemoryAgentGraph, thread_id: str
) -> None:
    ask(graph, "My name is Kim.", thread_id)
    assert ask(graph, "What is my name?", thread_id) == "Your name is Kim."
    assert graph.get_state(config(thread_id)).config["configurable"]["thread_id"] == thread_id


def test_composed_and_precomposed_accents_are_different_threads(graph: MemoryAgentGraph) -> None:
    ask(graph, "My name is Precomposed.", "café")
    assert ask(graph, "What is my name?", "cafe\u0301").startswith("I don't know")


def test_odd_unicode_in_content_round_trips(graph: MemoryAgentGraph) -> None:
    text = "ab \U0001f9e0 \u202e rtl \ud7ff end"
    graph.invoke({"messages": [HumanMessage(text)]}, config("content"))
    stored = graph.get_state(config("content")).values["messages"]
    assert stored[0].content == text
    assert isinstance(stored[1], AIMessage)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a\x00b", "NUL byte"),
        ("lone \ud800 surrogate", "unpaired UTF-16 surrogate"),
        ("w " * (MAX_MESSAGE_CHARS // 2 + 1), "too long"),
    ],
)
def test_input_rules_refuse_before_anything_is_saved(
    graph: MemoryAgentGraph, text: str, error: str
) -> None:
    with pytest.raises(InvalidInput, match=error):
        graph.invoke({"messages": [HumanMessage(text)]}, config("refused"))
    assert graph.get_state(config("refused")).values == {}


def test_too_many_messages_are_refused(graph: MemoryAgentGraph) -> None:
    messages = [("user", "hi")] * (MAX_INPUT_ITEMS + 1)
    with pytest.raises(InputTooLarge, match="too many messages"):
        graph.invoke({"messages": messages}, config("many"))


def test_int_thread_id_is_the_same_thread_as_its_string(graph: MemoryAgentGraph) -> None:
    graph.invoke({"messages": [("user", "My name is Ada.")]}, config(42))  # type: ignore[arg-type]
    assert ask(graph, "What is my name?", "42") == "Your name is Ada."


def test_paired_tool_call_and_result_in_input_are_accepted(graph: MemoryAgentGraph) -> None:
    call = AIMessage("", tool_calls=[{"name": "get_current_time", "args": {}, "id": "c1"}])
    result = ToolMessage("2026-01-01T00:00:00+00:00", tool_call_id="c1", name="get_current_time")
    graph.invoke(
        {"messages": [("user", "time?"), call, result, ("user", "thanks")]}, config("paired")
    )
    assert len(graph.get_state(config("paired")).values["messages"]) == 5
