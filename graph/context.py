"""Run-time context: the values that change per run (who the user is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.config import get_config


@dataclass(frozen=True)
class Context:
    """Per-run values, passed as ``graph.invoke(..., context=Context(user_id=...))``.

    ``user_id`` comes from trusted code (the caller, the app's on-behalf-of
    identity) and never from the model. Without it the agent has no long-term
    memory for the run.
    """

    user_id: str | None = None


def run_context(runtime_context: Context | None) -> Context:
    """The run's Context, falling back to ``config["configurable"]["user_id"]``.

    LangGraph users often pass identity in ``configurable``; both spellings work.
    """
    if runtime_context is not None and runtime_context.user_id is not None:
        return runtime_context
    configurable: dict[str, Any] = get_config().get("configurable", {})
    user_id = configurable.get("user_id")
    if user_id is None:
        return runtime_context or Context()
    return Context(user_id=str(user_id))
