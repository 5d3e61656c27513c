"""Run each side-effecting tool call at most once, whatever crashes and resumes happen.

LangGraph resumes an interrupted run by re-running the tasks of the step that
did not finish, so a tool that had already done its work when the process died
would do it again. The ledger is a small table keyed on (thread_id,
tool_call_id): a call whose id is recorded as done is not executed again, its
recorded result is returned instead.

Two kinds of side effect (``graph.tool_markers``):

- ``transactional``: the ledger row and the tool's own writes (made on
  ``current_tool_connection()``) commit in one Postgres transaction. A crash
  before the commit rolls both back and the resumed run does the work again;
  after it, the resumed run finds the record. Exactly once.
- ``external``: the row is committed as ``started`` before the tool runs and
  marked ``done`` after. A crash in between leaves ``started``; the resumed run
  does not repeat the call but answers that its outcome is unknown. At most once.

The table is created by ``setup_tool_ledger`` (setup_lakebase.py and the
embedded auto-setup). This module takes a pool and never reads the environment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Literal

from langchain_core.messages import ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

LEDGER_TABLE = "tool_call_ledger"

SideEffects = Literal["transactional", "external"]

CREATE_LEDGER_SQL = """
CREATE TABLE IF NOT EXISTS tool_call_ledger (
    thread_id    text        NOT NULL,
    tool_call_id text        NOT NULL,
    tool_name    text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('started', 'done')),
    result_type  text,
    result       bytea,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    PRIMARY KEY (thread_id, tool_call_id)
)
"""

CLAIM_SQL = """
INSERT INTO tool_call_ledger (thread_id, tool_call_id, tool_name, state)
VALUES (%s, %s, %s, 'started')
ON CONFLICT (thread_id, tool_call_id) DO NOTHING
RETURNING state
"""
RECORD_SQL = "SELECT state, result_type, result FROM tool_call_ledger WHERE thread_id = %s AND tool_call_id = %s"
FINISH_SQL = """
UPDATE tool_call_ledger
SET state = 'done', result_type = %s, result = %s, finished_at = now()
WHERE thread_id = %s AND tool_call_id = %s
"""

_tool_connection: ContextVar[Any] = ContextVar("memory_agent_tool_connection", default=None)
_serde = JsonPlusSerializer()


def current_tool_connection() -> Any:
    """The connection a ``transactional`` tool must write on (inside the ledger's transaction).

    Under ``graph.invoke`` it is a sync psycopg connection; under ``ainvoke`` an
    async one. Outside a transactional tool call it raises ``RuntimeError``.
    """
    conn = _tool_connection.get()
    if conn is None:
        raise RuntimeError(
            "current_tool_connection() is only available inside a tool marked "
            "side_effects='transactional' that runs through the tool ledger"
        )
    return conn


class _RollBackToolWrites(Exception):
    """Undo a failed transactional tool's writes (its savepoint), keep its error answer."""

    def __init__(self, result: Any) -> None:
        self.result = result


def _failed(result: Any) -> bool:
    return isinstance(result, ToolMessage) and result.status == "error"


def outcome_unknown_message(tool_call: Mapping[str, Any]) -> ToolMessage:
    """The answer for an external call that was started but never recorded as finished."""
    return ToolMessage(
        f"Outcome unknown: the process stopped while {tool_call['name']} was running, so it may "
        "or may not have taken effect. It was not run again to avoid doing it twice; check "
        "before calling it again.",
        tool_call_id=tool_call["id"],
        name=tool_call["name"],
        status="error",
    )


def _recorded(row: dict[str, Any], tool_call: Mapping[str, Any]) -> Any:
    if row["state"] == "done":
        return _serde.loads_typed((row["result_type"], bytes(row["result"])))
    return outcome_unknown_message(tool_call)


class ToolCallLedger:
    """The (thread_id, tool_call_id) ledger on ``pool`` (sync or async pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def run_once(
        self,
        thread_id: str,
        tool_call: Mapping[str, Any],
        kind: SideEffects,
        execute: Callable[[], Any],
    ) -> Any:
        """Return ``execute()``'s result, or the recorded one if this call already ran."""
        key = (thread_id, tool_call["id"])
        with self.pool.connection() as conn:
            if kind == "external":
                if conn.execute(CLAIM_SQL, (*key, tool_call["name"])).fetchone() is None:
                    return _recorded(conn.execute(RECORD_SQL, key).fetchone(), tool_call)
                result = execute()
                conn.execute(FINISH_SQL, (*_serde.dumps_typed(result), *key))
                return result
            with conn.transaction():
                # A second runner of the same call blocks here until the first commits.
                if conn.execute(CLAIM_SQL, (*key, tool_call["name"])).fetchone() is None:
                    return _recorded(conn.execute(RECORD_SQL, key).fetchone(), tool_call)
                token = _tool_connection.set(conn)
                try:
                    with conn.transaction():  # a savepoint around the tool's own writes
                        result = execute()
                        if _failed(result):
                            raise _RollBackToolWrites(result)
                except _RollBackToolWrites as failed:
                    result = failed.result
                finally:
                    _tool_connection.reset(token)
                conn.execute(FINISH_SQL, (*_serde.dumps_typed(result), *key))
                return result

    async def arun_once(
        self,
        thread_id: str,
        tool_call: Mapping[str, Any],
        kind: SideEffects,
        execute: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Async twin of ``run_once`` (``pool`` is an async pool)."""
        key = (thread_id, tool_call["id"])
        async with self.pool.connection() as conn:
            if kind == "external":
                claimed = await (
                    await conn.execute(CLAIM_SQL, (*key, tool_call["name"]))
                ).fetchone()
                if claimed is None:
                    row = await (await conn.execute(RECORD_SQL, key)).fetchone()
                    return _recorded(row, tool_call)
                result = await execute()
                await conn.execute(FINISH_SQL, (*_serde.dumps_typed(result), *key))
                return result
            async with conn.transaction():
                claimed = await (
                    await conn.execute(CLAIM_SQL, (*key, tool_call["name"]))
                ).fetchone()
                if claimed is None:
                    row = await (await conn.execute(RECORD_SQL, key)).fetchone()
                    return _recorded(row, tool_call)
                token = _tool_connection.set(conn)
                try:
                    async with conn.transaction():
                        result = await execute()
                        if _failed(result):
                            raise _RollBackToolWrites(result)
                except _RollBackToolWrites as failed:
                    result = failed.result
                finally:
                    _tool_connection.reset(token)
                await conn.execute(FINISH_SQL, (*_serde.dumps_typed(result), *key))
                return result


def setup_tool_ledger(pool: Any) -> None:
    """Create the ledger table; idempotent, and safe beside other processes' migrations.

    It runs under the same advisory lock as the checkpoint migrations: DDL
    racing their ``CREATE INDEX CONCURRENTLY`` can deadlock.
    """
    from checkpointing.saver import setup_lock

    with setup_lock(pool) as conn:
        conn.execute(CREATE_LEDGER_SQL)


async def asetup_tool_ledger(pool: Any) -> None:
    """Async twin of ``setup_tool_ledger``."""
    from checkpointing.saver import asetup_lock

    async with asetup_lock(pool) as conn:
        await conn.execute(CREATE_LEDGER_SQL)
