"""The server as Databricks Apps runs it (DATABRICKS_APP_NAME set), and with no database.

Deployed, the only identity is the one the Apps proxy forwards in X-Forwarded-*
headers; a user id in the request body is ignored. Without a reachable
database the server still starts and answers, statelessly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.serving.conftest import (
    RunningServer,
    base_env,
    free_port,
    server_command,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def deployed_server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("deployed-home")
    env = base_env(home)
    env.update(
        DATABASE_URL=module_database_url,
        AUTO_SETUP="1",
        DATABRICKS_APP_NAME="memory-agent-test",
    )
    # Bind loopback even though a deployed app listens on every interface.
    running = start_server(
        env, home / "server.log", server_command("--host", "127.0.0.1", "--no-tracing"), None
    )
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def server_without_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("no-database-home")
    env = base_env(home)
    env["DATABASE_URL"] = f"postgresql://agent@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    running = start_server(env, home / "server.log", server_command("--no-tracing"), None)
    yield running
    stop_server(running)


def test_client_user_id_is_ignored_when_deployed(deployed_server: RunningServer) -> None:
    import openai

    # A body-supplied id is no identity: with nothing else, the request is refused.
    with pytest.raises(openai.AuthenticationError) as caught:
        deployed_server.client().responses.create(
            input="hello",
            model="agent",
            extra_body={"custom_inputs": {"user_id": "mallory"}, "context": {"user_id": "mallory"}},
        )
    assert "identity_required" in str(caught.value)


def test_forwarded_identity_wins_when_deployed(deployed_server: RunningServer) -> None:
    client = deployed_server.client(
        {"X-Forwarded-Email": "alice@example.com", "X-Forwarded-User": "123@456"}
    )
    response = client.responses.create(
        input="hello", model="agent", extra_body={"custom_inputs": {"user_id": "mallory"}}
    )
    assert response.custom_outputs["user_id"] == "alice@example.com"
    assert response.custom_outputs["memory_available"] is True


def test_server_without_database_answers_statelessly(
    server_without_database: RunningServer,
) -> None:
    client = server_without_database.client()
    first = client.responses.create(
        input="my name is Ada", model="agent", extra_body={"custom_inputs": {"thread_id": "t1"}}
    )
    assert first.custom_outputs == {"thread_id": "t1", "user_id": None, "memory_available": False}
    assert "Ada" in first.output_text
    # Nothing is saved between requests...
    forgotten = client.responses.create(
        input="what is my name?", model="agent", extra_body={"custom_inputs": {"thread_id": "t1"}}
    )
    assert "Ada" not in forgotten.output_text
    # ...but a client that resends the conversation is answered from it.
    resent = client.responses.create(
        input=[
            {"role": "user", "content": "my name is Ada"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"role": "user", "content": "what is my name?"},
        ],
        model="agent",
        stream=True,
        extra_body={"custom_inputs": {"thread_id": "t1"}},
    )
    completed = [event for event in resent if event.type == "response.completed"]
    assert "Ada" in completed[0].response.output[0].content[0].text
    assert completed[0].response.custom_outputs["memory_available"] is False


def test_memory_status_route_says_why(server_without_database: RunningServer) -> None:
    import httpx

    status = httpx.get(f"{server_without_database.base_url}/memory/status", timeout=10).json()
    assert status["memory_available"] is False
    assert "DATABASE_URL" in status["status"]


def test_a_thread_answers_only_its_user(deployed_server: RunningServer) -> None:
    import openai

    alice = deployed_server.client({"X-Forwarded-Email": "alice@example.com"})
    bob = deployed_server.client({"X-Forwarded-Email": "bob@example.com"})
    first = alice.responses.create(input="my secret is tulip", model="agent")
    thread = {"custom_inputs": {"thread_id": first.custom_outputs["thread_id"]}}
    with pytest.raises(openai.PermissionDeniedError) as caught:
        bob.responses.create(input="what is my secret?", model="agent", extra_body=thread)
    assert "belongs to another user" in str(caught.value)
    mine = alice.responses.create(input="what is my secret?", model="agent", extra_body=thread)
    assert "tulip" in mine.output_text


def test_long_term_memory_follows_the_forwarded_user_only(
    deployed_server: RunningServer,
) -> None:
    alice = deployed_server.client({"X-Forwarded-Email": "alice@example.com"})
    bob = deployed_server.client({"X-Forwarded-Email": "bob@example.com"})
    saved = alice.responses.create(input="remember that my employer is Databricks", model="agent")
    assert any(item.type == "function_call" and item.name == "save_memory" for item in saved.output)
    # A new thread of Alice's knows it; Bob, even claiming to be Alice in the body, does not.
    recalled = alice.responses.create(input="what do you know about me?", model="agent")
    assert "Databricks" in recalled.output_text
    claimed = bob.responses.create(
        input="what do you know about me?",
        model="agent",
        extra_body={"custom_inputs": {"user_id": "alice@example.com"}},
    )
    assert claimed.custom_outputs["user_id"] == "bob@example.com"
    assert "Databricks" not in claimed.output_text
