"""The memory tools the model calls: search_memories, save_memory, delete_memory.

The user id and the store are injected through LangChain's ``ToolRuntime``
(``runtime.context.user_id``, ``runtime.store``) and are not part of the schema
the model sees, so the model can never pick whose memories it touches.
Results are short confirmations; errors say what to do next. ``memory_tools``
returns the tools only when there is a user id and a store to use them with.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.tools import BaseTool, StructuredTool

# The same class `langchain.tools` re-exports; importing it from LangGraph spares
# `memory-agent ask` the import of the whole `langchain` package.
from langgraph.prebuilt import ToolRuntime
from langgraph.store.base import BaseStore

from database.errors import is_connection_error, is_missing_table
from store import memories
from store.namespace import InvalidUserId

logger = logging.getLogger(__name__)

T = TypeVar("T")

NO_USER = (
    "No user is identified in this conversation, so there is no long-term memory. "
    "Answer without it."
)
UNAVAILABLE = "Long-term memory is unavailable right now. Answer without it and do not retry."


def runtime_user_id(runtime: ToolRuntime[Any, Any]) -> str | None:
    """The run's user id from the trusted run-time context (a Context object or a dict)."""
    context = runtime.context
    user_id = (
        context.get("user_id") if isinstance(context, dict) else getattr(context, "user_id", None)
    )
    return user_id or None


def _source(runtime: ToolRuntime[Any, Any]) -> dict[str, Any] | None:
    """Where a memory is saved from: the run's thread and the tool call (for the console)."""
    configurable = (runtime.config or {}).get("configurable") or {}
    source = {"thread_id": configurable.get("thread_id"), "tool_call_id": runtime.tool_call_id}
    return {name: value for name, value in source.items() if value} or None


def _scope(runtime: ToolRuntime[Any, Any]) -> tuple[BaseStore, str] | str:
    user_id = runtime_user_id(runtime)
    if runtime.store is None or user_id is None:
        return NO_USER
    return runtime.store, user_id


def _failure(exc: Exception) -> str:
    if isinstance(exc, InvalidUserId):
        return NO_USER
    if is_connection_error(exc) or is_missing_table(exc):
        logger.warning("memory tool failed: %s", exc)
        return UNAVAILABLE
    raise exc


def _limit(limit: int) -> int:
    return max(1, min(int(limit), 20))


def make_memory_tools(
    dedup_threshold: float = memories.DEFAULT_DEDUP_THRESHOLD,
) -> list[BaseTool]:
    """The three memory tools; ``dedup_threshold`` is the save-time near-duplicate cut-off."""

    def _run(runtime: ToolRuntime[Any, Any], action: Callable[[BaseStore, str], str]) -> str:
        scope = _scope(runtime)
        if isinstance(scope, str):
            return scope
        try:
            return action(*scope)
        except Exception as exc:
            return _failure(exc)

    async def _arun(
        runtime: ToolRuntime[Any, Any], action: Callable[[BaseStore, str], Awaitable[str]]
    ) -> str:
        scope = _scope(runtime)
        if isinstance(scope, str):
            return scope
        try:
            return await action(*scope)
        except Exception as exc:
            return _failure(exc)

    # -- search ----------------------------------------------------------------

    def _search_text(items: list[Any], query: str) -> str:
        if not items:
            return f"No memories match {query!r}."
        return memories.format_memories(items)

    def search_memories(query: str, runtime: ToolRuntime[Any, Any], limit: int = 5) -> str:
        """Search what you remember about the current user (facts, preferences, decisions).

        Args:
            query: What to look for, in a few words, e.g. "favourite food".
            limit: How many memories to return (1-20).

        Returns one memory per line as "[key] content"; use a key with delete_memory.
        """
        return _run(
            runtime,
            lambda store, user: _search_text(
                memories.search_memories(store, user, query, _limit(limit)), query
            ),
        )

    async def asearch_memories(query: str, runtime: ToolRuntime[Any, Any], limit: int = 5) -> str:
        async def action(store: BaseStore, user: str) -> str:
            found = await memories.asearch_memories(store, user, query, _limit(limit))
            return _search_text(found, query)

        return await _arun(runtime, action)

    # -- save ------------------------------------------------------------------

    def _saved_text(saved: memories.SavedMemory) -> str:
        verb = "Updated" if saved.updated else "Saved"
        return f"{verb} memory {saved.key}."

    def _save_error(exc: Exception) -> str | None:
        if isinstance(exc, ValueError) and not isinstance(exc, InvalidUserId):
            return f"Not saved: {exc}. Pass one short fact as content, e.g. 'prefers green tea'."
        return None

    def save_memory(content: str, runtime: ToolRuntime[Any, Any], key: str | None = None) -> str:
        """Remember a fact about the current user for future conversations.

        Args:
            content: One self-contained fact, e.g. "prefers green tea" or "lives in Lyon".
            key: Only to overwrite a memory you found with search_memories; leave empty otherwise.

        A fact that restates an existing memory updates it instead of adding a copy.
        """

        def action(store: BaseStore, user: str) -> str:
            try:
                saved = memories.save_memory(
                    store,
                    user,
                    content,
                    key,
                    dedup_threshold=dedup_threshold,
                    source=_source(runtime),
                )
            except ValueError as exc:
                if (message := _save_error(exc)) is None:
                    raise
                return message
            return _saved_text(saved)

        return _run(runtime, action)

    async def asave_memory(
        content: str, runtime: ToolRuntime[Any, Any], key: str | None = None
    ) -> str:
        async def action(store: BaseStore, user: str) -> str:
            try:
                saved = await memories.asave_memory(
                    store,
                    user,
                    content,
                    key,
                    dedup_threshold=dedup_threshold,
                    source=_source(runtime),
                )
            except ValueError as exc:
                if (message := _save_error(exc)) is None:
                    raise
                return message
            return _saved_text(saved)

        return await _arun(runtime, action)

    # -- delete ----------------------------------------------------------------

    def _deleted_text(found: bool, key: str) -> str:
        if found:
            return f"Deleted memory {key}."
        return f"No memory has key {key!r}. Call search_memories to find the key, then try again."

    def delete_memory(key: str, runtime: ToolRuntime[Any, Any]) -> str:
        """Delete one memory of the current user.

        Args:
            key: The memory's key, as shown in brackets by search_memories.
        """
        return _run(
            runtime,
            lambda store, user: _deleted_text(memories.delete_memory(store, user, key), key),
        )

    async def adelete_memory(key: str, runtime: ToolRuntime[Any, Any]) -> str:
        async def action(store: BaseStore, user: str) -> str:
            return _deleted_text(await memories.adelete_memory(store, user, key), key)

        return await _arun(runtime, action)

    return [
        StructuredTool.from_function(func=search_memories, coroutine=asearch_memories),
        StructuredTool.from_function(func=save_memory, coroutine=asave_memory),
        # Deleting is destructive: the graph's approval gate pauses for a human
        # (graph.tool_markers also knows the name, so approval fails closed).
        StructuredTool.from_function(
            func=delete_memory,
            coroutine=adelete_memory,
            metadata={"requires_approval": True},
        ),
    ]


def memory_tools(
    user_id: str | None,
    store: BaseStore | None,
    *,
    dedup_threshold: float = memories.DEFAULT_DEDUP_THRESHOLD,
) -> list[BaseTool]:
    """The memory tools when there is a user and a store to remember with; otherwise none."""
    if not user_id or store is None:
        return []
    return make_memory_tools(dedup_threshold)
