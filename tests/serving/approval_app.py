"""A server whose graph has an approval-gated tool, for the approval tests over HTTP.

The tool is marked ``requires_approval`` (graph.tool_markers), so the graph's
review step pauses every call to it with ``interrupt()`` and resumes on the
human's approve / reject / edit, exactly as for the product's sensitive tools.
It is named like the memory tool because the offline model calls that for
"remember that ...". Run it with
``uvicorn --factory tests.serving.approval_app:create_test_app``; it serves the
database in DATABASE_URL with the real server code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from langchain_core.tools import tool

from checkpointing import (
    AsyncMemoryAgentSaver,
    ThreadLock,
    ThreadOwners,
    ToolCallLedger,
    asetup_checkpoint_tables,
    asetup_thread_owners,
    asetup_tool_ledger,
)
from database import aopen_database
from graph.builder import build_graph
from graph.settings import Settings
from graph.tools import BASE_TOOLS
from serving.server import create_app


@tool
def save_memory(content: str) -> str:
    """Save a memory (a human approves every call first)."""
    return f"Saved: {content}"


save_memory.metadata = {"requires_approval": True}


@asynccontextmanager
async def open_approval_graph(settings: Settings) -> AsyncIterator[Any]:
    async with aopen_database(settings.database) as database:
        await asetup_checkpoint_tables(database.pool)
        await asetup_tool_ledger(database.pool)
        await asetup_thread_owners(database.pool)
        graph = build_graph(
            checkpointer=AsyncMemoryAgentSaver(database.pool),
            tools=[*BASE_TOOLS, save_memory],
            ledger=ToolCallLedger(database.pool),
            thread_lock=ThreadLock(database.pool),
            thread_owners=ThreadOwners(database.pool),
        )
        graph.memory_available = True
        graph.memory_status = "memory available (approval test graph)"
        yield graph


def create_test_app() -> FastAPI:
    return create_app(open_graph=open_approval_graph, tracing=False)
