"""Node: run the tool calls of the model's last message (LangGraph's ToolNode).

ToolNode already runs sync and async, injects ``ToolRuntime`` (store, context)
into tools that ask for it, and turns a tool's exception into an error
ToolMessage the model can read and act on, so the thread never holds a tool
call without its answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.tools import BaseTool
from langgraph.prebuilt import ToolNode


def run_tools(tools: Sequence[BaseTool]) -> ToolNode:
    """Build the node that runs ``tools``."""
    return ToolNode(list(tools), name="run_tools", handle_tool_errors=True)
