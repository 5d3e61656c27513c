"""A server whose graph calls slow side-effecting tools, for the background-run tests.

The scripted model of tests/workers/kit.py ("append N LABEL" calls ``append_row``
N times, "notify TEXT" calls ``notify``) runs async tools that sleep
``TOOL_SLEEP`` seconds (``"0.2:0.5"``: a random time in that range) before and
after their effect and print ``tool-enter`` / ``tool-did-effect`` to the
server's log, so a test can kill the server inside a tool. ``append_row``
writes in the ledger's transaction (exactly once), ``notify`` on its own
connection (at most once). Run it with
``uvicorn --factory tests.serving.background_app:create_test_app``; it serves
the database in DATABASE_URL with the real server code.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime

from checkpointing import (
    AsyncMemoryAgentSaver,
    ThreadLock,
    ToolCallLedger,
    asetup_checkpoint_tables,
    asetup_tool_ledger,
    current_tool_connection,
)
from database import aopen_database
from graph.builder import build_graph
from graph.settings import Settings
from serving.events import asetup_background_tables
from serving.server import create_app
from tests.workers.kit import (
    SIDE_EFFECTS_SQL,
    ScriptedModel,
    _append_row_sql,
    _ids,
    _say,
    delete_thing,
)


async def _pause() -> None:
    low, _, high = os.environ.get("TOOL_SLEEP", "0:0").partition(":")
    await asyncio.sleep(random.uniform(float(low), float(high or low)))


async def append_row(label: str, n: int, runtime: ToolRuntime[Any, Any]) -> str:
    """Append row number n with a label to the test table."""
    _say(f"tool-enter append_row {runtime.tool_call_id}")
    await _pause()
    query, params = _append_row_sql(_ids(runtime), label, n)
    await current_tool_connection().execute(query, params)
    _say(f"tool-did-effect append_row {runtime.tool_call_id}")
    await _pause()
    return f"appended {label}#{n}"


async def notify(text: str, runtime: ToolRuntime[Any, Any]) -> str:
    """Send a notification (an external side effect: its own connection, its own commit)."""
    _say(f"tool-enter notify {runtime.tool_call_id}")
    await _pause()
    async with await psycopg.AsyncConnection.connect(
        os.environ["DATABASE_URL"], autocommit=True
    ) as conn:
        await conn.execute(
            "INSERT INTO test_side_effects (thread_id, tool_call_id, tool, payload) "
            "VALUES (%s, %s, 'notify', %s)",
            (*_ids(runtime), text),
        )
    _say(f"tool-did-effect notify {runtime.tool_call_id}")
    await _pause()
    return f"notified: {text}"


def slow_tools() -> list[BaseTool]:
    return [
        StructuredTool.from_function(
            coroutine=append_row, name="append_row", metadata={"side_effects": "transactional"}
        ),
        StructuredTool.from_function(
            coroutine=notify, name="notify", metadata={"side_effects": "external"}
        ),
        StructuredTool.from_function(func=delete_thing, metadata={"requires_approval": True}),
    ]


@asynccontextmanager
async def open_slow_graph(settings: Settings) -> AsyncIterator[Any]:
    async with aopen_database(settings.database) as database:
        await asetup_checkpoint_tables(database.pool)
        await asetup_tool_ledger(database.pool)
        await asetup_background_tables(database.pool)
        async with database.pool.connection() as conn:
            await conn.execute(SIDE_EFFECTS_SQL)
        graph = build_graph(
            checkpointer=AsyncMemoryAgentSaver(database.pool),
            model=ScriptedModel(),
            tools=slow_tools(),
            ledger=ToolCallLedger(database.pool),
            thread_lock=ThreadLock(database.pool),
        )
        graph.memory_available = True
        graph.memory_status = "memory available (background test graph)"
        yield graph


def create_test_app() -> FastAPI:
    return create_app(open_graph=open_slow_graph, tracing=False)
