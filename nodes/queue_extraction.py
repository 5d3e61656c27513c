"""Node: queue the finished turn for fact extraction (after the answer, off its path).

Runs last, only when extraction is on (``MEMORY_EXTRACTION=1``) and the run has
a user and a thread. It records the turn (``store.extraction``) and returns: the
answer is already in the thread, and the facts are extracted by a worker
(``graph.extraction``), so the answer never waits for them. The record is keyed
on the thread and the id of the user message that began the turn, so a step
that LangGraph replays cannot queue the turn twice.
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
from store.extraction import ExtractionQueue
from store.revisions import RUN_ID_KEY

logger = logging.getLogger("memory_agent")


def _turn(state: State, runtime: Runtime[Context]) -> tuple[str, str, str, str | None] | None:
    user_id = run_context(runtime.context).user_id
    configurable = get_config().get("configurable", {})
    thread_id = configurable.get("thread_id")
    turn = next((m for m in reversed(state.messages) if isinstance(m, HumanMessage)), None)
    if not user_id or thread_id is None or turn is None or not turn.id:
        return None
    run_id = configurable.get(RUN_ID_KEY) or configurable.get("run_id")
    return str(thread_id), str(turn.id), user_id, str(run_id) if run_id else None


def _skipped(exc: Exception) -> dict[str, Any]:
    if not (is_connection_error(exc) or is_missing_table(exc)):
        raise exc
    logger.warning("turn not queued for fact extraction: %s", str(exc).splitlines()[0])
    return {}


async def queue_extraction(
    state: State, runtime: Runtime[Context], *, queue: ExtractionQueue
) -> dict[str, Any]:
    """Queue the finished turn for fact extraction."""
    if (turn := _turn(state, runtime)) is None:
        return {}
    try:
        await queue.aenqueue(*turn)
    except Exception as exc:
        return _skipped(exc)
    return {}


def queue_extraction_sync(
    state: State, runtime: Runtime[Context], *, queue: ExtractionQueue
) -> dict[str, Any]:
    """Queue the finished turn for fact extraction (sync twin)."""
    if (turn := _turn(state, runtime)) is None:
        return {}
    try:
        queue.enqueue(*turn)
    except Exception as exc:
        return _skipped(exc)
    return {}
