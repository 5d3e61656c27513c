"""Background runs over HTTP with the real OpenAI client: create, retrieve, resume a stream, cancel.

The served graph (tests/serving/background_app.py) calls slow side-effecting
tools, so a run is still going when the test looks at it.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.serving.conftest import RunningServer, base_env, start_server, stop_server

BACKGROUND_APP = [
    sys.executable,
    "-m",
    "uvicorn",
    "--factory",
    "tests.serving.background_app:create_test_app",
    "--host",
    "127.0.0.1",
]


def background_env(home: Any, database_url: str, tool_sleep: str) -> dict[str, str]:
    env = base_env(home)
    env.update(
        DATABASE_URL=database_url,
        TOOL_SLEEP=tool_sleep,
        POLL_INTERVAL_SECONDS="0.1",
        TAKEOVER_SCAN_SECONDS="0.2",
        BACKGROUND_DRAIN_SECONDS="2",
    )
    return env


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("background-home")
    env = background_env(home, module_database_url, "0.2:0.3")
    env["TASK_TIMEOUT_SECONDS"] = "8"
    running = start_server(env, home / "server.log", BACKGROUND_APP, module_database_url)
    yield running
    stop_server(running)


def thread_inputs(thread_id: str) -> dict[str, Any]:
    return {"custom_inputs": {"thread_id": thread_id}}


def wait_until_finished(server: RunningServer, response_id: str, timeout: float = 60) -> Any:
    client = server.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.responses.retrieve(response_id)
        if response.status != "in_progress":
            return response
        time.sleep(0.1)
    raise AssertionError(f"{response_id} still in progress after {timeout} s:\n{server.log()}")


def side_effects(database_url: str, thread_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT tool_call_id, payload FROM test_side_effects WHERE thread_id = %s ORDER BY id",
            (thread_id,),
        ).fetchall()


def assert_thread_answers(client: Any, thread_id: str) -> None:
    """The thread takes a new turn, in the foreground, and answers it."""
    follow_up = client.responses.create(
        model="agent", input="hello", extra_body=thread_inputs(thread_id)
    )
    assert follow_up.output[-1].content[0].text == "echo: hello"


def test_create_returns_at_once_and_retrieve_gives_the_output(server: RunningServer) -> None:
    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    client = server.client()
    created = client.responses.create(
        model="agent",
        input="append 2 first",
        background=True,
        extra_body=thread_inputs(thread_id),
    )
    # Answered before the run finished (its two tool calls alone sleep 0.8 s or more).
    assert created.status == "in_progress" and created.id.startswith("resp_")

    finished = wait_until_finished(server, created.id)
    assert finished.status == "completed"
    kinds = [item.type for item in finished.output]
    assert kinds.count("function_call") == 2 and kinds.count("function_call_output") == 2
    assert finished.output[-1].content[0].text == "done: appended 2 rows for first"
    assert [payload for _, payload in side_effects(server.database_url or "", thread_id)] == [
        "first#1",
        "first#2",
    ]

    # The same thread goes on, in the foreground, from where the background run left it.
    assert_thread_answers(client, thread_id)


def test_a_stream_resumed_after_n_replays_exactly_the_events_after_n(
    server: RunningServer,
) -> None:
    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    client = server.client()
    stream = client.responses.create(
        model="agent",
        input="append 2 streamed",
        background=True,
        stream=True,
        extra_body=thread_inputs(thread_id),
    )
    first = []
    for event in stream:
        first.append(event)
        if len(first) == 4:
            break  # the client goes away mid-run
    stream.close()
    response_id = first[0].response.id
    assert [e.sequence_number for e in first] == [1, 2, 3, 4]
    assert first[0].type == "response.created"

    resumed = list(client.responses.retrieve(response_id, stream=True, starting_after=4))
    numbers = [e.sequence_number for e in resumed]
    assert numbers == list(range(5, 5 + len(numbers))), numbers
    assert resumed[-1].type == "response.completed"
    assert resumed[-1].response.output[-1].content[0].text == "done: appended 2 rows for streamed"

    everything = list(client.responses.retrieve(response_id, stream=True, starting_after=0))
    assert [e.sequence_number for e in everything] == list(range(1, numbers[-1] + 1))


def test_cancel_stops_the_run_and_leaves_the_thread_answerable(server: RunningServer) -> None:
    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    client = server.client()
    created = client.responses.create(
        model="agent",
        input="append 20 cancelled",
        background=True,
        extra_body=thread_inputs(thread_id),
    )
    time.sleep(1.0)
    cancelled = client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    assert wait_until_finished(server, created.id).status == "cancelled"

    rows = side_effects(server.database_url or "", thread_id)
    assert 1 <= len(rows) < 20
    assert len({call_id for call_id, _ in rows}) == len(rows)
    time.sleep(0.6)  # a cancelled run does no more work
    assert side_effects(server.database_url or "", thread_id) == rows

    events = list(client.responses.retrieve(created.id, stream=True, starting_after=0))
    assert events[-1].type == "response.cancelled"

    # Every tool call of the thread has its answer: the next turn runs normally.
    assert_thread_answers(client, thread_id)


def test_unknown_response_is_a_404_and_starting_after_needs_stream(
    server: RunningServer,
) -> None:
    missing = httpx.get(f"{server.base_url}/responses/resp_nothing", timeout=10)
    assert missing.status_code == 404
    assert "resp_nothing" in missing.json()["detail"]
    misuse = httpx.get(f"{server.base_url}/responses/resp_x?starting_after=3", timeout=10)
    assert misuse.status_code == 400


def test_a_run_past_the_task_timeout_fails_with_the_reason(server: RunningServer) -> None:
    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    client = server.client()
    created = client.responses.create(
        model="agent",
        input="append 60 slow",  # 60 calls sleep 24 s or more: far past the 8 s limit
        background=True,
        extra_body=thread_inputs(thread_id),
    )
    finished = wait_until_finished(server, created.id, timeout=120)
    assert finished.status == "failed"
    assert finished.error.code == "task_timeout"
    assert "TASK_TIMEOUT_SECONDS" in finished.error.message
    rows = side_effects(server.database_url or "", thread_id)
    assert 1 <= len(rows) < 60 and len({call_id for call_id, _ in rows}) == len(rows)

    assert_thread_answers(client, thread_id)


def test_a_run_that_pauses_for_approval_completes_with_the_request_and_resumes_later(
    server: RunningServer,
) -> None:
    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    client = server.client()
    created = client.responses.create(
        model="agent", input="delete k1", background=True, extra_body=thread_inputs(thread_id)
    )
    paused = wait_until_finished(server, created.id)
    assert paused.status == "completed"
    requests = [item for item in paused.output if item.type == "mcp_approval_request"]
    assert [item.name for item in requests] == ["delete_thing"]
    assert side_effects(server.database_url or "", thread_id) == []

    resumed = client.responses.create(
        model="agent",
        input="approve",
        background=True,
        extra_body=thread_inputs(thread_id),
    )
    done = wait_until_finished(server, resumed.id)
    assert done.status == "completed"
    assert done.output[-1].content[0].text == "deleted k1"
    assert [payload for _, payload in side_effects(server.database_url or "", thread_id)] == ["k1"]


def test_a_response_whose_process_died_before_it_ran_is_run_by_another(
    server: RunningServer,
) -> None:
    from database.connect import CONNECTION_KWARGS
    from serving.events import create_response

    thread_id = f"bg-{uuid.uuid4().hex[:8]}"
    response_id = f"resp_{uuid.uuid4().hex}"

    async def store_and_die() -> None:
        conn = await psycopg.AsyncConnection.connect(server.database_url or "", **CONNECTION_KWARGS)
        await create_response(
            conn,
            response_id=response_id,
            thread_id=thread_id,
            user_id=None,
            request={
                "input": [{"type": "message", "role": "user", "content": "append 1 orphan"}],
                "custom_inputs": {"thread_id": thread_id},
            },
            base_checkpoint_id=None,
            base_messages=0,
            owner="gone:1",
        )
        await conn.close()  # as a kill -9 right after storing it would: the lock is free

    asyncio.run(store_and_die())
    finished = wait_until_finished(server, response_id)
    assert finished.status == "completed"
    assert finished.output[-1].content[0].text == "done: appended 1 rows for orphan"
    events = list(server.client().responses.retrieve(response_id, stream=True))
    assert [e.sequence_number for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
