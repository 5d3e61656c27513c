"""The memory tools the model calls: search, list, save, update and delete memories.

The user id and the store are injected through LangChain's ``ToolRuntime``
(``runtime.context.user_id``, ``runtime.store``) and are not part of the schema
the model sees, so the model can never pick whose memories it touches.
Results are short confirmations; errors say what to do next. ``memory_tools``
returns the tools only when there is a user id and a store to use them with.

Overwriting an existing memory by key (``update_memory``, ``save_memory`` with
a key) waits for a human's approval like ``delete_memory``; a fact about a
subject already remembered ("my favourite colour is now green") updates that
memory without approval. On the Lakebase backend its old content stays in the
revision history (``store.revisions``), from which it can be restored, and every
write records the thread and run it came from; a managed memory store
(``store.managed``) keeps only the current value.
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
from store.namespace import InvalidUserId, shared_namespace
from store.revisions import RUN_ID_KEY, Provenance

logger = logging.getLogger(__name__)

T = TypeVar("T")

NO_USER = (
    "No user is identified in this conversation, so there is no long-term memory. "
    "Answer without it."
)
UNAVAILABLE = "Long-term memory is unavailable right now. Answer without it and do not retry."


def runtime_user_id(runtime: ToolRuntime[Any, Any]) -> str | None:
    """The run's user id from the trusted run-time context (a Context object or a dict), or
    from ``config["configurable"]["user_id"]``."""
    context = runtime.context
    user_id = (
        context.get("user_id") if isinstance(context, dict) else getattr(context, "user_id", None)
    )
    if not user_id:
        # As graph.context.run_context does for the nodes: trusted code may pass the
        # user in config["configurable"] instead (the tool's schema never has it).
        user_id = ((runtime.config or {}).get("configurable") or {}).get("user_id")
    return str(user_id) if user_id else None


def provenance(runtime: ToolRuntime[Any, Any], source: str = "tool") -> Provenance:
    """The thread and run a tool call belongs to, from the run's config."""
    config = runtime.config or {}
    configurable = config.get("configurable") or {}
    metadata = config.get("metadata") or {}
    thread_id = configurable.get("thread_id")
    run_id = (
        configurable.get(RUN_ID_KEY)
        or configurable.get("run_id")
        or metadata.get("run_id")
        or config.get("run_id")
    )
    return Provenance(
        source=source,
        thread_id=str(thread_id) if thread_id is not None else None,
        run_id=str(run_id) if run_id is not None else None,
    )


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
    shared_scope: str | None = None,
) -> list[BaseTool]:
    """The memory tools; ``dedup_threshold`` is the save-time near-duplicate cut-off.

    With ``shared_scope`` (deployment configuration, never a tool argument),
    searching and listing also return that scope's shared memories, marked
    ``shared``; no tool can write them.
    """
    shared = shared_namespace(shared_scope) if shared_scope else None

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

        Returns one memory per line as "[key] content"; use a key with update_memory or
        delete_memory. Lines marked "[shared:...]" are your team's shared knowledge: read-only.
        """
        return _run(
            runtime,
            lambda store, user: _search_text(
                memories.search_memories(store, user, query, _limit(limit), shared=shared), query
            ),
        )

    async def asearch_memories(query: str, runtime: ToolRuntime[Any, Any], limit: int = 5) -> str:
        async def action(store: BaseStore, user: str) -> str:
            found = await memories.asearch_memories(
                store, user, query, _limit(limit), shared=shared
            )
            return _search_text(found, query)

        return await _arun(runtime, action)

    # -- list ------------------------------------------------------------------

    def _list_text(items: list[Any]) -> str:
        return memories.format_memories(items) if items else "You have no memories of this user."

    def list_memories(runtime: ToolRuntime[Any, Any], limit: int = 20) -> str:
        """List what you remember about the current user, most recently changed first.

        Args:
            limit: How many memories to return (1-20).

        Returns one memory per line as "[key] content". Read-only.
        """
        return _run(
            runtime,
            lambda store, user: _list_text(
                memories.list_memories(store, user, _limit(limit), shared=shared)
            ),
        )

    async def alist_memories(runtime: ToolRuntime[Any, Any], limit: int = 20) -> str:
        async def action(store: BaseStore, user: str) -> str:
            found = await memories.alist_memories(store, user, _limit(limit), shared=shared)
            return _list_text(found)

        return await _arun(runtime, action)

    # -- save ------------------------------------------------------------------

    def _saved_text(saved: memories.SavedMemory) -> str:
        if saved.unchanged:
            return f"Already remembered as memory {saved.key}; nothing changed."
        if not saved.updated:
            return f"Saved memory {saved.key}."
        return f"Updated memory {saved.key} (it said: {saved.previous!r})."

    def _save_error(exc: Exception) -> str | None:
        if isinstance(exc, ValueError) and not isinstance(exc, InvalidUserId):
            return f"Not saved: {exc}. Pass one short fact as content, e.g. 'prefers green tea'."
        return None

    def save_memory(content: str, runtime: ToolRuntime[Any, Any], key: str | None = None) -> str:
        """Remember a fact about the current user for future conversations.

        Args:
            content: One self-contained fact, e.g. "prefers green tea" or "my city is Lyon".
            key: Leave empty. (Overwriting a known key needs a human's approval; prefer
                update_memory for that.)

        A new value for something already remembered ("my city is now Paris") replaces
        the old one, and a fact that restates an existing memory updates it, instead of
        adding a rival or a copy.
        """

        def action(store: BaseStore, user: str) -> str:
            try:
                saved = memories.save_memory(
                    store,
                    user,
                    content,
                    key or None,
                    dedup_threshold=dedup_threshold,
                    provenance=provenance(runtime),
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
                    key or None,
                    dedup_threshold=dedup_threshold,
                    provenance=provenance(runtime),
                    source=_source(runtime),
                )
            except ValueError as exc:
                if (message := _save_error(exc)) is None:
                    raise
                return message
            return _saved_text(saved)

        return await _arun(runtime, action)

    # -- update ----------------------------------------------------------------

    def _updated_text(saved: memories.SavedMemory | None, key: str) -> str:
        if saved is None:
            return (
                f"No memory has key {key!r}. Call search_memories to find the key, "
                "or save_memory to add a new fact."
            )
        return _saved_text(saved)

    def update_memory(key: str, content: str, runtime: ToolRuntime[Any, Any]) -> str:
        """Replace what one memory of the current user says (a human approves it first).

        Args:
            key: The memory's key, as shown in brackets by search_memories or list_memories.
            content: The corrected fact, self-contained, e.g. "my city is Paris".
        """

        def action(store: BaseStore, user: str) -> str:
            try:
                saved = memories.update_memory(
                    store,
                    user,
                    key,
                    content,
                    provenance=provenance(runtime),
                    source=_source(runtime),
                )
            except ValueError as exc:
                if (message := _save_error(exc)) is None:
                    raise
                return message
            return _updated_text(saved, key)

        return _run(runtime, action)

    async def aupdate_memory(key: str, content: str, runtime: ToolRuntime[Any, Any]) -> str:
        async def action(store: BaseStore, user: str) -> str:
            try:
                saved = await memories.aupdate_memory(
                    store,
                    user,
                    key,
                    content,
                    provenance=provenance(runtime),
                    source=_source(runtime),
                )
            except ValueError as exc:
                if (message := _save_error(exc)) is None:
                    raise
                return message
            return _updated_text(saved, key)

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
            lambda store, user: _deleted_text(
                memories.delete_memory(store, user, key, provenance=provenance(runtime)), key
            ),
        )

    async def adelete_memory(key: str, runtime: ToolRuntime[Any, Any]) -> str:
        async def action(store: BaseStore, user: str) -> str:
            deleted = await memories.adelete_memory(
                store, user, key, provenance=provenance(runtime)
            )
            return _deleted_text(deleted, key)

        return await _arun(runtime, action)

    return [
        StructuredTool.from_function(func=search_memories, coroutine=asearch_memories),
        StructuredTool.from_function(func=list_memories, coroutine=alist_memories),
        # Saving under an explicit key overwrites that memory: approval, as for
        # update and delete. Without a key it never pauses.
        StructuredTool.from_function(
            func=save_memory,
            coroutine=asave_memory,
            metadata={"requires_approval_with": "key"},
        ),
        # Overwriting and deleting are destructive: the graph's approval gate pauses
        # for a human (graph.tool_markers also knows the names, so approval fails closed).
        StructuredTool.from_function(
            func=update_memory,
            coroutine=aupdate_memory,
            metadata={"requires_approval": True},
        ),
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
    shared_scope: str | None = None,
) -> list[BaseTool]:
    """The memory tools when there is a user and a store to remember with; otherwise none."""
    if not user_id or store is None:
        return []
    return make_memory_tools(dedup_threshold, shared_scope)
