"""Test tools and a scripted chat model that calls them, plus a graph on a DATABASE_URL.

The scripted model stands in for an LLM whose tool-call ids are random (as a
real model's are), so a test fails if a crash could make the same action run
again under a new id.

- "append N LABEL": calls ``append_row`` N times, one call per turn step.
- "notify TEXT": calls ``notify`` (an external side effect).
- "delete KEY": calls ``delete_thing`` (sensitive: needs approval).
Anything else gets an echo.
"""

from __future__ import annotations

import os
import random
import re
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolRuntime

from checkpointing import current_tool_connection

SIDE_EFFECTS_SQL = """
CREATE TABLE IF NOT EXISTS test_side_effects (
    id bigserial PRIMARY KEY,
    thread_id text NOT NULL,
    tool_call_id text NOT NULL,
    tool text NOT NULL,
    payload text NOT NULL
)
"""


def _say(line: str) -> None:
    print(line, flush=True)


def _pause(name: str) -> None:
    # TOOL_SLEEP="0.1:0.3" sleeps a random time in that range (seconds).
    low, _, high = os.environ.get("TOOL_SLEEP", "0:0").partition(":")
    time.sleep(random.uniform(float(low), float(high or low)))
    # TOOL_GATE=<path>: wait (at most 120 s) before the effect until the test creates
    # that file, so "the tool is still running" never depends on how loaded the machine is.
    gate = os.environ.get("TOOL_GATE")
    if gate and name == "before":
        deadline = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.05)


def _append_row_sql(
    runtime_ids: tuple[str, str], label: str, n: int
) -> tuple[str, tuple[Any, ...]]:
    return (
        "INSERT INTO test_side_effects (thread_id, tool_call_id, tool, payload) VALUES (%s, %s, 'append_row', %s)",
        (*runtime_ids, f"{label}#{n}"),
    )


def _ids(runtime: ToolRuntime[Any, Any]) -> tuple[str, str]:
    return (str(runtime.config["configurable"]["thread_id"]), str(runtime.tool_call_id))


def append_row(label: str, n: int, runtime: ToolRuntime[Any, Any]) -> str:
    """Append row number n with a label to the test table."""
    _say(f"tool-enter append_row {runtime.tool_call_id}")
    _pause("before")
    query, params = _append_row_sql(_ids(runtime), label, n)
    current_tool_connection().execute(query, params)
    _say(f"tool-did-effect append_row {runtime.tool_call_id}")
    _pause("after")
    return f"appended {label}#{n}"


async def aappend_row(label: str, n: int, runtime: ToolRuntime[Any, Any]) -> str:
    """Append row number n with a label to the test table."""
    query, params = _append_row_sql(_ids(runtime), label, n)
    await current_tool_connection().execute(query, params)
    return f"appended {label}#{n}"


def notify(text: str, runtime: ToolRuntime[Any, Any]) -> str:
    """Send a notification (an external side effect: its own connection, its own commit)."""
    _say(f"tool-enter notify {runtime.tool_call_id}")
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_side_effects (thread_id, tool_call_id, tool, payload) VALUES (%s, %s, 'notify', %s)",
            (*_ids(runtime), text),
        )
    _say(f"tool-did-effect notify {runtime.tool_call_id}")
    _pause("after")
    return f"notified: {text}"


def delete_thing(key: str, runtime: ToolRuntime[Any, Any]) -> str:
    """Delete the thing with this key (irreversible)."""
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_side_effects (thread_id, tool_call_id, tool, payload) VALUES (%s, %s, 'delete_thing', %s)",
            (*_ids(runtime), key),
        )
    user_id = getattr(runtime.context, "user_id", None)
    return f"deleted {key}" + (f" for {user_id}" if user_id else "")


def scripted_tools() -> list[BaseTool]:
    """The tools the scripted model calls, marked as the product expects."""
    return [
        StructuredTool.from_function(
            func=append_row,
            coroutine=aappend_row,
            metadata={"side_effects": "transactional"},
        ),
        StructuredTool.from_function(func=notify, metadata={"side_effects": "external"}),
        StructuredTool.from_function(func=delete_thing, metadata={"requires_approval": True}),
    ]


_APPEND = re.compile(r"^append (\d+) (\S+)$")
_NOTIFY = re.compile(r"^notify (.+)$")
_DELETE = re.compile(r"^delete (\S+)$")


class ScriptedModel(BaseChatModel):
    """Calls the test tools on cue, with random tool-call ids like a real LLM."""

    @property
    def _llm_type(self) -> str:
        return "scripted-test-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self.reply(messages))])

    @staticmethod
    def reply(messages: Sequence[BaseMessage]) -> AIMessage:
        turn_start = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
        text = str(messages[turn_start].content).strip()
        results = [m for m in messages[turn_start:] if isinstance(m, ToolMessage)]

        def call(name: str, args: dict[str, Any]) -> AIMessage:
            return AIMessage(
                content="",
                tool_calls=[{"name": name, "args": args, "id": f"call_{uuid.uuid4().hex}"}],
            )

        if match := _APPEND.match(text):
            count, label = int(match.group(1)), match.group(2)
            if len(results) < count:
                return call("append_row", {"label": label, "n": len(results) + 1})
            return AIMessage(content=f"done: appended {count} rows for {label}")
        if (match := _NOTIFY.match(text)) and not results:
            return call("notify", {"text": match.group(1)})
        if (match := _DELETE.match(text)) and not results:
            return call("delete_thing", {"key": match.group(1)})
        if results:
            return AIMessage(content=" | ".join(str(r.content) for r in results))
        return AIMessage(content=f"echo: {text}")


@contextmanager
def open_test_graph(url: str) -> Iterator[Any]:
    """A graph on ``url`` with the ledger and the thread lock, the scripted model and test tools."""
    from psycopg_pool import ConnectionPool

    from checkpointing import (
        MemoryAgentSaver,
        ThreadLock,
        ThreadOwners,
        ToolCallLedger,
        setup_checkpoint_tables,
        setup_thread_owners,
        setup_tool_ledger,
    )
    from database.connect import CONNECTION_KWARGS
    from graph.builder import build_graph

    with ConnectionPool(url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=5, open=True) as pool:
        setup_checkpoint_tables(pool)
        setup_tool_ledger(pool)
        setup_thread_owners(pool)
        with pool.connection() as conn:
            conn.execute(SIDE_EFFECTS_SQL)
        yield build_graph(
            MemoryAgentSaver(pool),
            model=ScriptedModel(),
            tools=scripted_tools(),
            ledger=ToolCallLedger(pool),
            thread_lock=ThreadLock(pool),
            thread_owners=ThreadOwners(pool),
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run the workers in this package, not the kit")
