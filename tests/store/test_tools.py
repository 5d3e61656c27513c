"""The memory tools through a real LangGraph ToolNode on a real Postgres store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from psycopg_pool import ConnectionPool

from store import memories
from store.embeddings import HashEmbeddings
from store.namespace import user_namespace
from store.postgres import AsyncMemoryStore, MemoryStore
from store.tools import NO_USER, UNAVAILABLE, make_memory_tools, memory_tools


@dataclass
class RunContext:
    user_id: str | None = None


def _graph(store: Any) -> Any:
    builder = StateGraph(MessagesState, context_schema=RunContext)
    builder.add_node("tools", ToolNode(make_memory_tools()))
    builder.add_edge(START, "tools")
    return builder.compile(checkpointer=InMemorySaver(), store=store)


def _call(graph: Any, name: str, args: dict[str, Any], user: str | None, thread: str = "t") -> str:
    message = AIMessage("", tool_calls=[{"name": name, "args": args, "id": "call-1"}])
    result = graph.invoke(
        {"messages": [message]},
        config={"configurable": {"thread_id": thread}},
        context=RunContext(user_id=user),
    )
    return str(result["messages"][-1].content)


def test_the_model_sees_neither_user_nor_store() -> None:
    for tool in make_memory_tools():
        schema = tool.tool_call_schema.model_json_schema()
        assert set(schema["properties"]) <= {"query", "limit", "content", "key"}


def test_tools_absent_without_a_user_or_a_store(memory_store: MemoryStore) -> None:
    assert memory_tools(None, memory_store) == []
    assert memory_tools("", memory_store) == []
    assert memory_tools("alice", None) == []
    assert [tool.name for tool in memory_tools("alice", memory_store)] == [
        "search_memories",
        "save_memory",
        "delete_memory",
    ]


def test_saved_in_one_thread_found_in_another_never_by_another_user(
    memory_store: MemoryStore,
) -> None:
    graph = _graph(memory_store)
    saved = _call(graph, "save_memory", {"content": "prefers green tea"}, "alice", thread="A")
    assert re.fullmatch(r"Saved memory [0-9a-f-]{36}\.", saved)
    found = _call(graph, "search_memories", {"query": "tea"}, "alice", thread="B")
    assert "prefers green tea" in found
    for other in ("bob", "Alice", "alice "):
        assert _call(graph, "search_memories", {"query": "tea"}, other, thread="B") == (
            "No memories match 'tea'."
        )


def test_near_duplicate_updates_instead_of_adding(memory_store: MemoryStore) -> None:
    graph = _graph(memory_store)
    first = _call(graph, "save_memory", {"content": "Prefers green tea"}, "alice")
    second = _call(graph, "save_memory", {"content": "prefers  green tea."}, "alice")
    key = first.removeprefix("Saved memory ").rstrip(".")
    assert second == f"Updated memory {key}."
    different = _call(graph, "save_memory", {"content": "prefers black coffee"}, "alice")
    assert different.startswith("Saved memory ")
    assert memory_store.count(user_namespace("alice")) == 2


def test_dedup_threshold_is_configurable(memory_store: MemoryStore) -> None:
    memories.save_memory(memory_store, "u", "likes hiking in the alps")
    strict = memories.save_memory(
        memory_store, "u", "likes hiking in the alps often", dedup_threshold=0.99
    )
    assert not strict.updated
    loose = memories.save_memory(
        memory_store, "u", "likes hiking in the alps a lot", dedup_threshold=0.5
    )
    assert loose.updated
    assert memory_store.count(user_namespace("u")) == 2


def test_delete_by_key_and_errors_that_say_what_to_do(memory_store: MemoryStore) -> None:
    graph = _graph(memory_store)
    saved = _call(graph, "save_memory", {"content": "lives in Lyon"}, "alice")
    key = saved.removeprefix("Saved memory ").rstrip(".")
    # Another user cannot delete it, even with the key.
    assert "search_memories" in _call(graph, "delete_memory", {"key": key}, "bob")
    assert _call(graph, "delete_memory", {"key": key}, "alice") == f"Deleted memory {key}."
    assert (
        _call(graph, "search_memories", {"query": "Lyon"}, "alice") == "No memories match 'Lyon'."
    )
    assert "search_memories" in _call(graph, "delete_memory", {"key": key}, "alice")
    assert _call(graph, "save_memory", {"content": "   "}, "alice").startswith("Not saved:")
    assert _call(graph, "search_memories", {"query": "x"}, None) == NO_USER


def test_explicit_key_overwrites(memory_store: MemoryStore) -> None:
    graph = _graph(memory_store)
    _call(graph, "save_memory", {"content": "lives in Lyon", "key": "home"}, "alice")
    assert _call(graph, "save_memory", {"content": "lives in Paris", "key": "home"}, "alice") == (
        "Updated memory home."
    )
    value = memory_store.get(user_namespace("alice"), "home").value
    assert value["content"] == "lives in Paris"
    # Where it was saved from travels with it (the console shows it).
    assert value["source"]["thread_id"] == "t"
    assert value["source"]["tool_call_id"]


def test_database_down_tells_the_model_to_go_on_without_memory() -> None:
    with ConnectionPool(
        "postgresql://nobody@127.0.0.1:9/none", min_size=0, max_size=1, timeout=0.5, open=True
    ) as dead_pool:
        store = MemoryStore(dead_pool, embeddings=HashEmbeddings(16), dims=16)
        graph = _graph(store)
        assert _call(graph, "search_memories", {"query": "tea"}, "alice") == UNAVAILABLE


async def test_async_tools_and_forget_user(amemory_store: AsyncMemoryStore) -> None:
    builder = StateGraph(MessagesState, context_schema=RunContext)
    builder.add_node("tools", ToolNode(make_memory_tools()))
    builder.add_edge(START, "tools")
    graph = builder.compile(store=amemory_store)

    async def call(name: str, args: dict[str, Any], user: str) -> str:
        message = AIMessage("", tool_calls=[{"name": name, "args": args, "id": "c"}])
        result = await graph.ainvoke({"messages": [message]}, context=RunContext(user_id=user))
        return str(result["messages"][-1].content)

    assert (await call("save_memory", {"content": "has a cat named Miso"}, "zoë")).startswith(
        "Saved"
    )
    assert (await call("save_memory", {"content": "Has a cat named Miso!"}, "zoë")).startswith(
        "Updated"
    )
    await call("save_memory", {"content": "plays the cello"}, "zoë")
    await call("save_memory", {"content": "plays the cello"}, "zoe")
    assert "Miso" in await call("search_memories", {"query": "cat"}, "zoë")
    assert await memories.aforget_user(amemory_store, "zoë") == 2
    assert await call("search_memories", {"query": "cello"}, "zoë") == "No memories match 'cello'."
    assert "cello" in await call("search_memories", {"query": "cello"}, "zoe")


def test_forget_user_removes_everything_of_that_user_only(memory_store: MemoryStore) -> None:
    for user in ("a.b@x.com", "a-b@x.com", "A.B@x.com"):
        for fact in ("likes tea", "owns a bike", "speaks French"):
            memories.save_memory(memory_store, user, f"{fact} ({user})")
    assert memories.forget_user(memory_store, "a.b@x.com") == 3
    assert memories.list_memories(memory_store, "a.b@x.com") == []
    assert len(memories.list_memories(memory_store, "a-b@x.com")) == 3
    assert len(memories.list_memories(memory_store, "A.B@x.com")) == 3


@pytest.mark.parametrize("user", ["", None])
def test_empty_user_is_rejected_by_the_memories_api(memory_store: MemoryStore, user: Any) -> None:
    with pytest.raises(ValueError, match="user id"):
        memories.save_memory(memory_store, user, "x")
