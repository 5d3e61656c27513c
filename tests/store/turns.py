"""One user message through a compiled agent, for the long-term memory tests."""

from __future__ import annotations

from typing import Any

from graph.context import Context


def ask(graph: Any, text: str, thread: str, user: str | None) -> str:
    """Send ``text`` as ``user`` in ``thread``; return the agent's last message."""
    result = graph.invoke(
        {"messages": [("user", text)]},
        {"configurable": {"thread_id": thread}},
        context=Context(user_id=user),
    )
    return str(result["messages"][-1].content)


def on_backend(graph: Any, backend: str) -> bool:
    """True when ``graph``'s long-term memory is on ``backend`` (lakebase or managed)."""
    managed = "managed memory store" in graph.long_term_memory_status
    return managed == (backend == "managed")
