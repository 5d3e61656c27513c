"""Model selection: an OpenAI-compatible server on loopback stands in for a local model server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from graph.models import load_chat_model
from graph.settings import Settings


class ChatCompletionsStandIn:
    """Answers POST /v1/chat/completions; calls get_current_time once, then echoes what it saw."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(body)
                stand_in.authorization.append(self.headers.get("Authorization", ""))
                payload = json.dumps(stand_in.reply(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        last = messages[-1]
        if last["role"] == "user" and "time" in last["content"] and body.get("tools"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_current_time", "arguments": "{}"},
                    }
                ],
            }
        else:
            users = [m["content"] for m in messages if m["role"] == "user"]
            message = {
                "role": "assistant",
                "content": f"seen {len(users)} user messages: {' | '.join(users)}",
            }
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@pytest.fixture
def model_server() -> Iterator[ChatCompletionsStandIn]:
    stand_in = ChatCompletionsStandIn()
    stand_in.thread.start()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def test_openai_compatible_model_gets_history_and_calls_tools(
    model_server: ChatCompletionsStandIn, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graph.agent import open_agent

    monkeypatch.setenv("AGENT_MODEL", "openai:local-llama")
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    config = {"configurable": {"thread_id": "llm"}}
    with open_agent() as graph:
        graph.invoke({"messages": [("user", "hello")]}, config)
        result = graph.invoke({"messages": [("user", "what time is it?")]}, config)
    assert result["messages"][-1].content == "seen 2 user messages: hello | what time is it?"
    assert [type(m).__name__ for m in result["messages"]][-3:] == [
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert {r["model"] for r in model_server.requests} == {"local-llama"}
    assert set(model_server.authorization) == {"Bearer sk-local"}
    assert model_server.requests[1]["tools"][0]["function"]["name"] == "get_current_time"


def test_databricks_model_is_chat_databricks_on_the_named_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "DATABRICKS_HOST", "http://127.0.0.1:9"
    )  # never contacted: construction only
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test")
    model = load_chat_model(
        Settings.from_env({"AGENT_MODEL": "databricks-claude-sonnet-4-5"}).model
    )
    assert type(model).__name__ == "ChatDatabricks"
    assert model.model == "databricks-claude-sonnet-4-5"  # type: ignore[attr-defined]
