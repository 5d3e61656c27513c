"""Databricks' chat UI (e2e-chatbot-app-next) against the real server, with its request shapes.

The bodies are built the way the UI's provider (@databricks/ai-sdk-provider,
``convertToResponsesInput``) builds them: the whole conversation as input
items, an assistant's approval card resent as an ``mcp_approval_request``
item, a decision as an ``mcp_approval_response`` item, ``stream: true``, and
``context.conversation_id`` / ``context.user_id``. The title request is the
UI's ``generateTitleFromUserMessage``: a system message and the first message
as JSON, with no context at all. The served graph has an approval-gated tool
(tests/serving/approval_app.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.serving.conftest import (
    RunningServer,
    approval_app_command,
    base_env,
    start_server,
    stop_server,
)

TITLE_INSTRUCTIONS = """
    - you will generate a short title based on the first message a user begins a conversation with
    - ensure it is not more than 80 characters long
    - the title should be a summary of the user's message
    - do not use quotes or colons. do not include other expository content ("I'll help...")"""


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("chat-ui-home")
    env = base_env(home)
    env["DATABASE_URL"] = module_database_url
    running = start_server(env, home / "server.log", approval_app_command(), module_database_url)
    yield running
    stop_server(running)


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


def _assistant(text: str, item_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "output_text", "text": text}], "id": item_id}


def _send(server: RunningServer, chat_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """POST like the UI (streaming, context from its session); return response.completed's body."""
    body = {
        "model": "agent",
        "input": items,
        "stream": True,
        "context": {"conversation_id": chat_id, "user_id": "ada@example.com"},
    }
    response = httpx.post(f"{server.base_url}/invocations", json=body, timeout=120)
    assert response.status_code == 200, response.text
    events = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    assert not [event for event in events if "error" in event], events
    (completed,) = [event for event in events if event.get("type") == "response.completed"]
    return dict(completed["response"])


def _texts(response: dict[str, Any]) -> list[str]:
    return [
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
    ]


def _as_history(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant's turn as the UI resends it (convertToResponsesInput)."""
    history = []
    for item in response["output"]:
        if item["type"] == "message":
            history.append(_assistant(item["content"][0]["text"], item["id"]))
        elif item["type"] == "mcp_approval_request":
            history.append({k: item[k] for k in ("type", "id", "name", "arguments")})
            history[-1]["server_label"] = item["server_label"]
    return history


def _card(server: RunningServer, chat_id: str, first: str) -> tuple[list[Any], dict[str, Any]]:
    """Ask for something that needs approval; return (history so far, the approval item)."""
    paused = _send(server, chat_id, [_user(first)])
    types = [item["type"] for item in paused["output"]]
    assert types == ["message", "mcp_approval_request"], types  # one card, no function_call
    return [_user(first), *_as_history(paused)], paused["output"][-1]


def _decision(card: dict[str, Any], approve: bool) -> dict[str, Any]:
    """Allow or Deny as the UI's provider sends it (a tool-approval-response part)."""
    return {
        "type": "mcp_approval_response",
        "id": card["id"],
        "approval_request_id": card["id"],
        "approve": approve,
    }


def test_allow_runs_the_call_and_closes_its_card(server: RunningServer) -> None:
    chat_id = str(uuid.uuid4())
    history, card = _card(server, chat_id, "remember that my name is Ada")
    resumed = _send(
        server, chat_id, [*history, _decision(card, True)]
    )  # Allow: sendMessage() with no text
    outputs = [item for item in resumed["output"] if item["type"] == "function_call_output"]
    assert [(o["call_id"], o["output"]) for o in outputs] == [(card["id"], "Saved: my name is Ada")]
    assert not [item for item in resumed["output"] if item["type"] == "function_call"]
    assert "pending_approvals" not in resumed["custom_outputs"]


def test_deny_then_a_new_message_applies_the_denial_and_answers(server: RunningServer) -> None:
    # Without its database the UI sends the denial with the next message.
    chat_id = str(uuid.uuid4())
    history, card = _card(server, chat_id, "remember that my name is Bob")
    answer = _send(server, chat_id, [*history, _decision(card, False), _user("hello")])
    (closed,) = [item for item in answer["output"] if item["type"] == "function_call_output"]
    assert closed["call_id"] == card["id"] and "rejected" in closed["output"]
    assert any(text.startswith("Hello!") for text in _texts(answer)), _texts(answer)
    assert "pending_approvals" not in answer["custom_outputs"]


def test_deny_sends_nothing_and_the_next_message_is_not_stuck(server: RunningServer) -> None:
    # With its database the UI never sends the denial: only the next message arrives.
    chat_id = str(uuid.uuid4())
    history, card = _card(server, chat_id, "remember that my name is Carl")
    answer = _send(server, chat_id, [*history, _user("hello")])
    (closed,) = [item for item in answer["output"] if item["type"] == "function_call_output"]
    assert closed["call_id"] == card["id"] and "new message" in closed["output"]
    assert any(text.startswith("Hello!") for text in _texts(answer)), _texts(answer)
    assert "pending_approvals" not in answer["custom_outputs"]
    again = _send(server, chat_id, [*history, _user("hello"), _user("what is my name?")])
    assert not [item for item in again["output"] if item["type"] == "mcp_approval_request"]


def test_a_title_request_is_answered_statelessly_following_its_instructions(
    server: RunningServer,
) -> None:
    first = {
        "id": str(uuid.uuid4()),
        "role": "user",
        "parts": [{"type": "text", "text": "my name is Ada and I like chess"}],
    }
    body = {
        "model": "agent",
        "input": [
            {"role": "system", "content": TITLE_INSTRUCTIONS},
            _user(json.dumps(first)),
        ],
    }
    with psycopg.connect(server.database_url or "") as conn:
        before = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
    response = httpx.post(f"{server.base_url}/invocations", json=body, timeout=120)
    assert response.status_code == 200, response.text
    (title,) = _texts(response.json())
    assert title == "my name is Ada and I like chess"
    assert response.json()["custom_outputs"]["thread_id"] is None
    with psycopg.connect(server.database_url or "") as conn:
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone() == before


def test_an_error_is_a_4xx_with_a_one_line_message(server: RunningServer) -> None:
    body = {"model": "agent", "input": [_user("bad \x00 byte")], "stream": True}
    response = httpx.post(f"{server.base_url}/invocations", json=body, timeout=120)
    assert response.status_code == 400
    message = response.json()["detail"]
    assert "NUL byte" in message and "\n" not in message
