"""Approval pauses and their resumes over HTTP, with the real server and OpenAI client.

The served graph has an approval-gated tool (tests/serving/approval_app.py):
a run that calls it answers with an ``mcp_approval_request`` item; the next
request resumes it by an ``mcp_approval_response`` item, by
``custom_inputs.approval``, or by a plain "approve"/"reject" message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from graph.agent import open_agent
from graph.settings import Settings
from tests.serving.conftest import (
    RunningServer,
    approval_app_command,
    base_env,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("approval-home")
    env = base_env(home)
    env["DATABASE_URL"] = module_database_url
    running = start_server(env, home / "server.log", approval_app_command(), module_database_url)
    yield running
    stop_server(running)


def thread_state(server: RunningServer, thread_id: str, home: Path) -> Any:
    settings = Settings.from_env(
        {"DATABASE_URL": server.database_url or "", "MEMORY_AGENT_HOME": str(home)}
    )
    with open_agent(settings) as graph:
        return graph.get_state({"configurable": {"thread_id": thread_id}})


def ask_for_approval(server: RunningServer, thread_id: str, content: str) -> Any:
    response = server.client().responses.create(
        input=f"remember that {content}",
        model="agent",
        extra_body={"custom_inputs": {"thread_id": thread_id}},
    )
    requests = [item for item in response.output if item.type == "mcp_approval_request"]
    assert len(requests) == 1, response.output
    assert requests[0].name == "save_memory"
    assert '"content": "' + content + '"' in requests[0].arguments
    pending = response.custom_outputs["pending_approvals"]
    assert [p["id"] for p in pending] == [requests[0].id]
    assert "approve" in response.output_text  # a plain client is told how to answer
    return response


def test_approve_with_an_mcp_approval_response_item(server: RunningServer, tmp_path: Path) -> None:
    thread_id = f"approve-{uuid.uuid4()}"
    paused = ask_for_approval(server, thread_id, "my name is Ada")
    assert thread_state(server, thread_id, tmp_path).interrupts  # the pause is in the checkpoint
    request_item = next(item for item in paused.output if item.type == "mcp_approval_request")
    # As Databricks' chat UI does: the whole history, then the answer.
    history = [{"role": "user", "content": "remember that my name is Ada"}]
    history += [item.model_dump(exclude_none=True) for item in paused.output]
    resumed = server.client().responses.create(
        input=[
            *history,
            {
                "type": "mcp_approval_response",
                "approval_request_id": request_item.id,
                "approve": True,
            },
        ],
        model="agent",
        extra_body={"custom_inputs": {"thread_id": thread_id}},
    )
    assert "Saved: my name is Ada" in resumed.output_text
    assert "pending_approvals" not in resumed.custom_outputs
    state = thread_state(server, thread_id, tmp_path)
    assert not state.interrupts
    messages = state.values["messages"]
    assert [m.content for m in messages if isinstance(m, HumanMessage)] == [
        "remember that my name is Ada"
    ]
    assert [m.content for m in messages if isinstance(m, ToolMessage)] == ["Saved: my name is Ada"]


def test_a_busy_thread_is_a_409_streaming_or_not(server: RunningServer) -> None:
    from checkpointing import ThreadLock
    from database import open_database
    from database.targets import UrlTarget

    thread_id = f"busy-{uuid.uuid4()}"
    body = {"custom_inputs": {"thread_id": thread_id}}
    # Another process (this one) is running on the thread: it holds the thread's lock.
    with (
        open_database(UrlTarget(server.database_url or "")) as database,
        ThreadLock(database.pool).hold(thread_id),
    ):
        with pytest.raises(openai.ConflictError) as caught:
            server.client().responses.create(input="hello", model="agent", extra_body=body)
        assert "busy" in str(caught.value)
        with pytest.raises(openai.ConflictError):
            server.client().responses.create(
                input="hello", model="agent", stream=True, extra_body=body
            )
    after = server.client().responses.create(input="hello", model="agent", extra_body=body)
    assert after.custom_outputs["thread_id"] == thread_id


def test_reject_with_a_plain_message_while_streaming(server: RunningServer) -> None:
    thread_id = f"reject-{uuid.uuid4()}"
    ask_for_approval(server, thread_id, "my name is Bob")
    events = list(
        server.client().responses.create(
            input="reject",
            model="agent",
            stream=True,
            extra_body={"custom_inputs": {"thread_id": thread_id}},
        )
    )
    completed = next(event for event in events if event.type == "response.completed")
    texts = [item.content[0].text for item in completed.response.output if item.type == "message"]
    assert any("rejected" in text for text in texts), texts
    assert "pending_approvals" not in completed.response.custom_outputs


def test_edit_through_custom_inputs(server: RunningServer) -> None:
    thread_id = f"edit-{uuid.uuid4()}"
    ask_for_approval(server, thread_id, "my name is Carl")
    resumed = server.client().responses.create(
        input=[],
        model="agent",
        extra_body={
            "custom_inputs": {
                "thread_id": thread_id,
                "approval": {"action": "edit", "args": {"content": "my name is Carla"}},
            }
        },
    )
    assert "Saved: my name is Carla" in resumed.output_text


def test_another_message_declines_the_pending_call_then_is_answered(
    server: RunningServer, tmp_path: Path
) -> None:
    thread_id = f"other-{uuid.uuid4()}"
    paused = ask_for_approval(server, thread_id, "my name is Dora")
    card = next(item for item in paused.output if item.type == "mcp_approval_request")
    again = server.client().responses.create(
        input="hello", model="agent", extra_body={"custom_inputs": {"thread_id": thread_id}}
    )
    closed = [item for item in again.output if item.type == "function_call_output"]
    assert [item.call_id for item in closed] == [card.id]
    assert "new message" in closed[0].output
    assert "Hello!" in again.output_text
    assert "pending_approvals" not in again.custom_outputs
    messages = thread_state(server, thread_id, tmp_path).values["messages"]
    assert not [m for m in messages if isinstance(m, ToolMessage) and "Saved" in m.content]


def test_without_a_new_message_the_pending_request_is_repeated(server: RunningServer) -> None:
    thread_id = f"repeat-{uuid.uuid4()}"
    paused = ask_for_approval(server, thread_id, "my name is Eva")
    resent = [
        {"role": "user", "content": "remember that my name is Eva"},
        *[item.model_dump(exclude_none=True) for item in paused.output],
    ]
    again = server.client().responses.create(
        input=resent, model="agent", extra_body={"custom_inputs": {"thread_id": thread_id}}
    )
    assert [item.type for item in again.output] == ["message", "mcp_approval_request"]
    approved = server.client().responses.create(
        input="approve", model="agent", extra_body={"custom_inputs": {"thread_id": thread_id}}
    )
    assert "Saved: my name is Eva" in approved.output_text


def test_a_malformed_approval_is_a_400(server: RunningServer) -> None:
    thread_id = f"bad-{uuid.uuid4()}"
    ask_for_approval(server, thread_id, "my name is Eve")
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().responses.create(
            input=[],
            model="agent",
            extra_body={"custom_inputs": {"thread_id": thread_id, "approval": "maybe"}},
        )
    assert "approve, reject, edit" in str(caught.value)
