"""Node: run tool calls (LangGraph's ToolNode), side-effecting ones at most once.

ToolNode already runs sync and async, injects ``ToolRuntime`` (store, context)
into tools that ask for it, and turns a tool's exception into an error
ToolMessage the model can read and act on, so the thread never holds a tool
call without its answer.

The review node sends each approved call here on its own (``Send("run_tools",
[call])``). With a ledger, a call to a tool with side effects
(``graph.tool_markers.side_effects``) goes through ``ToolCallLedger``, so a run
resumed after a crash does not repeat work that already happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest

from checkpointing.tool_ledger import ToolCallLedger
from graph.tool_markers import side_effects


def _thread_id(request: ToolCallRequest) -> str | None:
    configurable = (request.runtime.config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    return str(thread_id) if thread_id is not None else None


def run_tools(tools: Sequence[BaseTool], ledger: ToolCallLedger | None = None) -> ToolNode:
    """Build the node that runs ``tools`` (through ``ledger`` for side-effecting ones)."""
    if ledger is None:
        return ToolNode(list(tools), name="run_tools", handle_tool_errors=True)

    def wrap(request: ToolCallRequest, execute: Callable[[ToolCallRequest], Any]) -> Any:
        kind = side_effects(request.tool)
        thread_id = _thread_id(request)
        if kind is None or thread_id is None:
            return execute(request)
        return ledger.run_once(thread_id, request.tool_call, kind, lambda: execute(request))

    async def awrap(
        request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        kind = side_effects(request.tool)
        thread_id = _thread_id(request)
        if kind is None or thread_id is None:
            return await execute(request)
        return await ledger.arun_once(thread_id, request.tool_call, kind, lambda: execute(request))

    return ToolNode(
        list(tools),
        name="run_tools",
        handle_tool_errors=True,
        wrap_tool_call=wrap,
        awrap_tool_call=awrap,
    )
