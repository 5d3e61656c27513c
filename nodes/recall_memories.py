"""Node: recall the user's long-term memories relevant to the latest message.

Runs before every model call that starts a turn. With a user id and a store it
searches the user's memories for the latest user message and puts them in
``recalled_memories`` as ``[key] content`` lines (the key lets the model delete
one); without either it clears them. With a shared scope (deployment
configuration, never the model's choice) that scope's memories are recalled
too, after the user's own, as ``[shared:key]`` lines. It also records that the user talked in
this thread, so ``forget-user --threads`` can find the user's threads. A
database that has gone away costs the turn its memories, not its answer.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

from database.errors import is_connection_error, is_missing_table
from graph.context import Context, run_context
from graph.state import State
from store import memories
from store.namespace import shared_namespace

logger = logging.getLogger("memory_agent")

DEFAULT_RECALL_LIMIT = 5


def _latest_user_text(state: State) -> str:
    for message in reversed(state.messages):
        if isinstance(message, HumanMessage):
            return message.text.strip() if hasattr(message, "text") else str(message.content)
    return ""


def _thread_id() -> str | None:
    thread_id = get_config().get("configurable", {}).get("thread_id")
    return str(thread_id) if thread_id is not None else None


def _unavailable(exc: Exception) -> dict[str, Any]:
    if not (is_connection_error(exc) or is_missing_table(exc)):
        raise exc
    logger.warning("long-term memory unavailable for this turn: %s", str(exc).splitlines()[0])
    return {"recalled_memories": []}


def _shared(scope: str | None) -> tuple[str, ...] | None:
    return shared_namespace(scope) if scope else None


async def recall_memories(
    state: State,
    runtime: Runtime[Context],
    *,
    limit: int = DEFAULT_RECALL_LIMIT,
    shared_scope: str | None = None,
) -> dict[str, Any]:
    """Recall the user's memories relevant to the latest message."""
    user_id = run_context(runtime.context).user_id
    query = _latest_user_text(state)
    if not user_id or runtime.store is None or not query:
        return {"recalled_memories": []}
    try:
        if thread_id := _thread_id():
            await memories.arecord_thread(runtime.store, user_id, thread_id)
        found = await memories.asearch_memories(
            runtime.store, user_id, query, limit, shared=_shared(shared_scope)
        )
    except Exception as exc:
        return _unavailable(exc)
    return {"recalled_memories": memories.memory_lines(found)}


def recall_memories_sync(
    state: State,
    runtime: Runtime[Context],
    *,
    limit: int = DEFAULT_RECALL_LIMIT,
    shared_scope: str | None = None,
) -> dict[str, Any]:
    """Recall the user's memories relevant to the latest message (sync twin)."""
    user_id = run_context(runtime.context).user_id
    query = _latest_user_text(state)
    if not user_id or runtime.store is None or not query:
        return {"recalled_memories": []}
    try:
        if thread_id := _thread_id():
            memories.record_thread(runtime.store, user_id, thread_id)
        found = memories.search_memories(
            runtime.store, user_id, query, limit, shared=_shared(shared_scope)
        )
    except Exception as exc:
        return _unavailable(exc)
    return {"recalled_memories": memories.memory_lines(found)}
