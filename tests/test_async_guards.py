"""The async path: ainvoke with an async pool takes the thread lock, pauses, resumes, uses the ledger."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from checkpointing import (
    AsyncMemoryAgentSaver,
    ThreadBusyError,
    ThreadLock,
    ToolCallLedger,
    asetup_checkpoint_tables,
    asetup_thread_owners,
    asetup_tool_ledger,
)
from database.connect import CONNECTION_KWARGS
from graph.approvals import decision
from graph.builder import build_graph
from tests.workers.kit import SIDE_EFFECTS_SQL, ScriptedModel, scripted_tools


async def test_async_run_pause_resume_lock_and_ledger(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SIDE_EFFECTS_SQL)
    async with AsyncConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=4, open=False
    ) as pool:
        await asetup_checkpoint_tables(pool)
        await asetup_tool_ledger(pool)
        await asetup_thread_owners(pool)
        graph = build_graph(
            AsyncMemoryAgentSaver(pool),
            model=ScriptedModel(),
            tools=scripted_tools(),
            ledger=ToolCallLedger(pool),
            thread_lock=ThreadLock(pool),
        )
        config: dict[str, Any] = {"configurable": {"thread_id": "a"}}
        result = await graph.ainvoke({"messages": [("user", "append 2 x")]}, config)
        assert result["messages"][-1].content == "done: appended 2 rows for x"
        paused = await graph.ainvoke({"messages": [("user", "delete k")]}, config)
        assert paused["__interrupt__"][0].value["tool"] == "delete_thing"
        async with graph.thread_lock.ahold("a"):  # type: ignore[union-attr]
            with pytest.raises(ThreadBusyError):
                await graph.ainvoke(decision("approve"), config)
        done = await graph.ainvoke(decision("approve"), config)
        assert done["messages"][-1].content == "deleted k"
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT tool, count(*) AS n FROM test_side_effects GROUP BY tool ORDER BY tool"
            )
            rows = await cursor.fetchall()
            cursor = await conn.execute("SELECT count(*) AS n FROM tool_call_ledger")
            ledger_rows = (await cursor.fetchone())["n"]
        await graph.checkpointer.adelete_thread("a")  # type: ignore[union-attr]
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT count(*) AS n FROM tool_call_ledger")
            ledger_rows_after_delete = (await cursor.fetchone())["n"]
    assert [(row["tool"], row["n"]) for row in rows] == [("append_row", 2), ("delete_thing", 1)]
    assert ledger_rows == 3  # two transactional appends and the approved (external) delete
    assert ledger_rows_after_delete == 0
