"""The server in local development, driven by the real OpenAI client over HTTP.

One `python -m serving.server` process for the module, on its own database, with
MLflow tracing into a SQLite store so the traces can be checked too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from langchain_core.messages import HumanMessage

from graph.agent import open_agent
from graph.settings import Settings
from tests.serving.conftest import (
    RunningServer,
    base_env,
    server_command,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("server-home")
    env = base_env(home)
    env["DATABASE_URL"] = module_database_url
    env["AUTO_SETUP"] = "1"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'traces.db'}"
    running = start_server(env, home / "server.log", server_command(), module_database_url)
    yield running
    stop_server(running)


def new_thread() -> str:
    return f"thread-{uuid.uuid4()}"


def thread_messages(database_url: str, thread_id: str, home: Path) -> list[Any]:
    """The thread's messages as the checkpoint holds them (read in this process)."""
    settings = Settings.from_env({"DATABASE_URL": database_url, "MEMORY_AGENT_HOME": str(home)})
    with open_agent(settings) as graph:
        state = graph.get_state({"configurable": {"thread_id": thread_id}})
    return list(state.values.get("messages", [])) if state.values else []


def collect_stream(stream: Any) -> tuple[str, dict[str, Any], list[Any]]:
    """(answer text, custom_outputs, events) from a streamed response."""
    events = list(stream)
    completed = [event for event in events if event.type == "response.completed"]
    assert len(completed) == 1, [event.type for event in events]
    response = completed[0].response
    text = "".join(
        part.text
        for item in response.output
        if item.type == "message"
        for part in item.content
        if part.type == "output_text"
    )
    return text, dict(response.custom_outputs), events


def test_thread_continues_through_custom_inputs_thread_id(server: RunningServer) -> None:
    client = server.client()
    thread_id = new_thread()
    first = client.responses.create(
        input="my name is Ada",
        model="agent",
        extra_body={"custom_inputs": {"thread_id": thread_id}},
    )
    assert first.custom_outputs == {
        "thread_id": thread_id,
        "user_id": None,
        "memory_available": True,
    }
    second = client.responses.create(
        input="what is my name?",
        model="agent",
        extra_body={"custom_inputs": {"thread_id": thread_id}},
    )
    assert "Ada" in second.output_text
    other = client.responses.create(
        input="what is my name?",
        model="agent",
        extra_body={"custom_inputs": {"thread_id": new_thread()}},
    )
    assert "Ada" not in other.output_text


def test_echoed_thread_id_continues_the_conversation_when_streaming(
    server: RunningServer,
) -> None:
    client = server.client()
    text, outputs, _ = collect_stream(
        client.responses.create(input="my favourite colour is teal", model="agent", stream=True)
    )
    assert "teal" in text
    thread_id = outputs["thread_id"]
    uuid.UUID(thread_id)  # a new thread gets a UUID
    answer, outputs, _ = collect_stream(
        client.responses.create(
            input="what is my favourite colour?",
            model="agent",
            stream=True,
            extra_body={"custom_inputs": {"thread_id": thread_id}},
        )
    )
    assert "teal" in answer
    assert outputs["thread_id"] == thread_id


def test_context_conversation_id_names_the_thread(server: RunningServer) -> None:
    client = server.client()
    conversation = new_thread()
    client.responses.create(
        input="my city is Lyon",
        model="agent",
        extra_body={"context": {"conversation_id": conversation}},
    )
    answer = client.responses.create(
        input="what is my city?",
        model="agent",
        extra_body={"context": {"conversation_id": conversation}},
    )
    assert "Lyon" in answer.output_text
    assert answer.custom_outputs["thread_id"] == conversation


def test_resent_history_adds_only_the_newest_user_message(
    server: RunningServer, tmp_path: Path
) -> None:
    client = server.client()
    thread_id = new_thread()
    body = {"custom_inputs": {"thread_id": thread_id}}
    first = client.responses.create(input="what time is it?", model="agent", extra_body=body)
    # Like a chat UI: the whole conversation so far (our own output items included:
    # function_call, function_call_output, message), then the new message.
    history: list[Any] = [{"role": "user", "content": "what time is it?"}]
    history += [item.model_dump(exclude_none=True) for item in first.output]
    assert [item["type"] for item in history[1:]] == [
        "function_call",
        "function_call_output",
        "message",
    ]
    second = client.responses.create(
        input=[*history, {"role": "user", "content": "my name is Grace"}],
        model="agent",
        extra_body=body,
    )
    history += [{"role": "user", "content": "my name is Grace"}]
    history += [item.model_dump(exclude_none=True) for item in second.output]
    third = client.responses.create(
        input=[*history, {"role": "user", "content": "what is my name?"}],
        model="agent",
        stream=True,
        extra_body=body,
    )
    answer, _, _ = collect_stream(third)
    assert "Grace" in answer

    messages = thread_messages(server.database_url or "", thread_id, tmp_path)
    human = [m.content for m in messages if isinstance(m, HumanMessage)]
    assert human == ["what time is it?", "my name is Grace", "what is my name?"]
    # user, AI tool call, tool result, AI answer; then two plain exchanges.
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai", "human", "ai", "human", "ai"]


def test_client_user_id_is_honoured_in_local_development(server: RunningServer) -> None:
    client = server.client()
    from_custom_inputs = client.responses.create(
        input="hello", model="agent", extra_body={"custom_inputs": {"user_id": "alice"}}
    )
    assert from_custom_inputs.custom_outputs["user_id"] == "alice"
    from_context = client.responses.create(
        input="hello", model="agent", extra_body={"context": {"user_id": "bob"}}
    )
    assert from_context.custom_outputs["user_id"] == "bob"
    from_header = server.client({"X-Forwarded-Email": "carol@example.com"}).responses.create(
        input="hello", model="agent"
    )
    assert from_header.custom_outputs["user_id"] == "carol@example.com"


@pytest.mark.parametrize(
    ("extra_body", "message"),
    [
        ({"custom_inputs": {"thread_id": "bad\x00id"}}, "control character"),
        ({"custom_inputs": {"thread_id": ["t1"]}}, "thread_id must be a string"),
        ({"custom_inputs": {"user_id": ["alice"]}}, "user_id must be a string"),
        ({"custom_inputs": {"approval": "approve"}}, "nothing waiting for approval"),
    ],
)
def test_bad_requests_get_a_400_with_one_line(
    server: RunningServer, extra_body: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().responses.create(input="hello", model="agent", extra_body=extra_body)
    assert message in str(caught.value)


def test_a_bad_streaming_request_is_refused_before_the_stream_starts(
    server: RunningServer,
) -> None:
    with pytest.raises(openai.BadRequestError):
        server.client().responses.create(
            input="hello",
            model="agent",
            stream=True,
            extra_body={"custom_inputs": {"thread_id": " "}},
        )


def test_the_invocations_route_serves_the_same_agent(server: RunningServer) -> None:
    import httpx

    thread_id = new_thread()
    reply = httpx.post(
        f"{server.base_url}/invocations",
        json={
            "input": [{"role": "user", "content": "my dog is Rex"}],
            "custom_inputs": {"thread_id": thread_id},
        },
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["custom_outputs"]["thread_id"] == thread_id


def test_traces_carry_the_thread_as_session(server: RunningServer) -> None:
    import mlflow

    thread_id = new_thread()
    server.client().responses.create(
        input="hello",
        model="agent",
        extra_body={"custom_inputs": {"thread_id": thread_id, "user_id": "tracy"}},
    )
    home = server.log_path.parent
    mlflow.set_tracking_uri(f"sqlite:///{home / 'traces.db'}")
    experiment = mlflow.get_experiment_by_name("memory-agent")
    assert experiment is not None
    # Traces are exported in the background: wait for this one to land.
    deadline = time.monotonic() + 60
    traces: list[Any] = []
    while not traces and time.monotonic() < deadline:
        traces = mlflow.search_traces(
            locations=[experiment.experiment_id],
            filter_string=f"metadata.`mlflow.trace.session` = '{thread_id}'",
            return_type="list",
        )
        if not traces:
            time.sleep(0.5)
    assert len(traces) == 1
    metadata = traces[0].info.trace_metadata
    assert metadata["mlflow.trace.session"] == thread_id
    assert metadata["mlflow.trace.user"] == "tracy"


def test_the_openai_stream_helper_works_with_tool_calls(server: RunningServer) -> None:
    with server.client().responses.stream(input="what time is it?", model="agent") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert [item.type for item in final.output] == [
        "function_call",
        "function_call_output",
        "message",
    ]
    assert final.output_text.startswith("It is ")


def test_memory_status_checks_the_pool_live(server: RunningServer) -> None:
    import httpx

    status = httpx.get(f"{server.base_url}/memory/status", timeout=30).json()
    assert status["memory_available"] is True
    assert status["deployed"] is False
    assert status["health"]["connected"] is True
    assert status["health"]["tables_missing"] == []
    assert status["health"]["pool"]["pool_size"] >= 1
