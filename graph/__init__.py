"""State, run-time context, settings, model selection and graph wiring: the agent itself.

Public API::

    from graph import open_agent, Context
    with open_agent() as graph:
        graph.invoke({"messages": [("user", "hi")]},
                     config={"configurable": {"thread_id": "t1"}},
                     context=Context(user_id="alice"))

Names are imported lazily so that ``import graph.settings`` (used by the setup
script and the CLI's argument parsing) does not pay for importing LangGraph.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Context",
    "MemoryUnavailableError",
    "Settings",
    "aopen_agent",
    "build_graph",
    "open_agent",
    "resolve_thread_id",
]

_LOCATIONS = {
    "Context": "graph.context",
    "MemoryUnavailableError": "graph.agent",
    "Settings": "graph.settings",
    "aopen_agent": "graph.agent",
    "build_graph": "graph.builder",
    "open_agent": "graph.agent",
    "resolve_thread_id": "checkpointing.threads",
}


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module 'graph' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LOCATIONS[name]), name)
