"""A server whose graph has an approval-gated tool, for the approval tests over HTTP.

The tool stands in for the product's sensitive tools: it pauses in
``interrupt()`` with what it would do, and acts on the human's answer
(approve, reject, or edit). The offline model calls it for "remember that
...", because it is named like the memory tool. Run it with
``uvicorn --factory tests.server.approval_app:create_test_app``; it serves the
database in DATABASE_URL with the real server code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from langchain_core.tools import tool
from langgraph.types import interrupt

from checkpointing import AsyncMemoryAgentSaver, asetup_checkpoint_tables, asetup_tool_ledger
from database import aopen_database
from graph.builder import build_graph
from graph.server import create_app
from graph.settings import Settings
from graph.tools import BASE_TOOLS


@tool
def save_memory(content: str) -> str:
    """Save a memory (asks a human first)."""
    decision: Any = interrupt({"tool": "save_memory", "args": {"content": content}})
    action = decision.get("action") if isinstance(decision, dict) else decision
    if action == "edit":
        content = decision["args"]["content"]
        action = "approve"
    if action == "approve":
        return f"Saved: {content}"
    reason = decision.get("reason") if isinstance(decision, dict) else None
    return f"Not saved: the user rejected it ({reason or 'no reason given'})."


@asynccontextmanager
async def open_approval_graph(settings: Settings) -> AsyncIterator[Any]:
    async with aopen_database(settings.database) as database:
        await asetup_checkpoint_tables(database.pool)
        await asetup_tool_ledger(database.pool)
        graph = build_graph(
            checkpointer=AsyncMemoryAgentSaver(database.pool),
            tools=[*BASE_TOOLS, save_memory],
        )
        graph.memory_available = True
        graph.memory_status = "memory available (approval test graph)"
        yield graph


def create_test_app() -> FastAPI:
    return create_app(open_graph=open_approval_graph, tracing=False)
