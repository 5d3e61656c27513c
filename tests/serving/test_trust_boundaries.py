"""Trust boundaries over HTTP: who owns a thread, who the caller is, what an error may say.

Two deployed server processes (DATABRICKS_APP_NAME set) share one database, and
the CLI writes to it too. Identity comes from the Apps proxy's headers or, as
Databricks' chat UI sends it, from an on-behalf-of token that the real
databricks-sdk verifies against a local stand-in of ``current_user.me``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg
import pytest

from tests.lakebase_harness import _Handler
from tests.serving.conftest import (
    REPO,
    RunningServer,
    base_env,
    server_command,
    start_server,
    stop_server,
)

ALICE = "alice@example.com"
ALICE_NUMERIC_ID = "4242"
BOB = "bob@example.com"
TOKENS = {
    "token-alice": {
        "id": ALICE_NUMERIC_ID,
        "userName": ALICE,
        "emails": [{"value": ALICE, "primary": True}],
        "active": True,
    },
    "token-bob": {"id": "77", "userName": BOB, "active": True},
}


class _CurrentUser(_Handler):
    """``GET /api/2.0/preview/scim/v2/Me`` for the tokens above; anything else is refused.

    The Lakebase harness's handler, answering for many users by their own tokens.
    """

    calls: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/.well-known/databricks-config":
            host = self.headers["Host"]
            self._reply(200, {"oidc_endpoint": f"http://{host}/oidc", "workspace_id": "1"})
            return
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if path == "/api/2.0/preview/scim/v2/Me":
            self.calls.append(token)
            if token in TOKENS:
                self._reply(200, TOKENS[token])
                return
            self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "invalid token"})
            return
        self._reply(404, {"error_code": "NOT_FOUND", "message": path})


@pytest.fixture(scope="module")
def workspace() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CurrentUser)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def servers(
    module_database_url: str, workspace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two deployed server processes on one database."""
    home = tmp_path_factory.mktemp("trust-home")
    env = base_env(home)
    env.update(
        DATABASE_URL=module_database_url,
        AUTO_SETUP="1",
        DATABRICKS_APP_NAME="memory-agent-test",
        DATABRICKS_HOST=workspace,
        MEMORY_AGENT_TRUST_CLIENT_USER_ID="1",
    )
    command = server_command("--host", "127.0.0.1", "--no-tracing")
    first = start_server(env, home / "a.log", command, module_database_url)
    try:
        second = start_server(env, home / "b.log", command, module_database_url)
    except BaseException:
        stop_server(first)
        raise
    yield first, second
    stop_server(second)
    stop_server(first)


def post(
    server: RunningServer,
    body: dict[str, Any],
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/responses",
        json={"model": "agent", **body},
        headers=headers,
        timeout=120,
    )


def turn(text: str, thread_id: str | None = None, **custom: Any) -> dict[str, Any]:
    custom_inputs = {**({"thread_id": thread_id} if thread_id else {}), **custom}
    return {"input": text, "custom_inputs": custom_inputs}


def as_user(email: str) -> dict[str, str]:
    return {"X-Forwarded-Email": email}


def text_of(response: httpx.Response) -> str:
    body = response.json()
    return " ".join(
        part.get("text", "")
        for item in body.get("output", [])
        if item.get("type") == "message"
        for part in item.get("content", [])
    )


def error_code(response: httpx.Response) -> str:
    return str(response.json()["code"])


# 1. Every write path records the owner: a thread written by the CLI is its user's over HTTP.
def test_a_thread_written_by_the_cli_answers_only_its_owner_over_http(
    servers: tuple[RunningServer, RunningServer], module_database_url: str, tmp_path: Path
) -> None:
    server, _ = servers
    env = base_env(tmp_path)
    env["DATABASE_URL"] = module_database_url
    thread_id = f"cli-{uuid.uuid4()}"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    asked = cli("ask", "--user", ALICE, "--thread", thread_id, "my secret is tulip")
    assert asked.returncode == 0, asked.stderr
    stolen = post(server, turn("what is my secret?", thread_id), as_user(BOB))
    assert stolen.status_code == 403
    assert error_code(stolen) == "thread_of_another_user"
    assert "tulip" not in stolen.text and ALICE not in stolen.text
    # The CLI without --user cannot continue it either, and Bob's forget-user leaves it alone.
    anonymous = cli("ask", "--thread", thread_id, "what is my secret?")
    assert anonymous.returncode == 2 and "belongs to a user" in anonymous.stderr
    assert cli("forget-user", BOB, "--threads").returncode == 0
    mine = post(server, turn("what is my secret?", thread_id), as_user(ALICE))
    assert mine.status_code == 200, mine.text
    assert "tulip" in text_of(mine)


def _pause_on_forgetting(server: RunningServer, fact: str) -> tuple[str, str]:
    saved = post(server, turn(f"remember that {fact}"), as_user(ALICE))
    assert saved.status_code == 200, saved.text
    thread_id = f"forget-{uuid.uuid4()}"
    paused = post(server, turn(f"forget that {fact}", thread_id), as_user(ALICE))
    assert paused.status_code == 200, paused.text
    (request,) = [i for i in paused.json()["output"] if i["type"] == "mcp_approval_request"]
    return thread_id, request["id"]


def _recalls(server: RunningServer, fact_word: str) -> bool:
    answer = post(server, turn("what do you know about me?"), as_user(ALICE))
    assert answer.status_code == 200, answer.text
    return fact_word in text_of(answer)


# 2 and 5. No identity never resumes as the paused user; only a literal true approves.
def test_a_resume_needs_the_owner_and_a_literal_true(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    server, _ = servers
    thread_id, request_id = _pause_on_forgetting(server, "my employer is Globex")

    anonymous = post(server, turn("approve", thread_id))
    assert anonymous.status_code == 401 and error_code(anonymous) == "identity_required"
    bob = post(server, turn("approve", thread_id), as_user(BOB))
    assert bob.status_code == 403
    assert "Globex" not in bob.text and ALICE not in bob.text

    def answer(approve: Any) -> httpx.Response:
        item = {
            "type": "mcp_approval_response",
            "approval_request_id": request_id,
            "approve": approve,
        }
        return post(
            server, {"input": [item], "custom_inputs": {"thread_id": thread_id}}, as_user(ALICE)
        )

    for odd in ("false", "true", 1, None):
        refused = answer(odd)
        assert refused.status_code == 400, (odd, refused.text)
        assert error_code(refused) == "bad_request"
    assert _recalls(server, "Globex")  # nothing was deleted
    approved = answer(True)
    assert approved.status_code == 200, approved.text
    assert not _recalls(server, "Globex")


# 3 and 7. Two processes: the owner check holds for the run, and busy losers get 409.
def test_two_processes_never_share_a_new_thread_and_busy_losers_get_409(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = servers

    def stream(server: RunningServer, user: str, thread_id: str, text: str) -> tuple[int, str]:
        with httpx.stream(
            "POST",
            f"{server.base_url}/responses",
            json={"model": "agent", "stream": True, **turn(text, thread_id)},
            headers=as_user(user),
            timeout=120,
        ) as response:
            return response.status_code, response.read().decode()

    with ThreadPoolExecutor(max_workers=4) as pool:
        for round_number in range(5):
            thread_id = f"race-{round_number}-{uuid.uuid4()}"
            futures = [
                pool.submit(stream, first, ALICE, thread_id, "my secret is tulip"),
                pool.submit(stream, second, BOB, thread_id, "what is my secret?"),
            ]
            results = [future.result() for future in futures]
            for status, body in results:
                assert status in (200, 403, 409), body
                if status == 200:
                    assert '"error"' not in body and "response.completed" in body
            # Never both: the second user would have read (and written) the first's thread.
            assert [status for status, _ in results].count(200) <= 1, results
        thread_id = f"busy-{uuid.uuid4()}"
        assert stream(first, ALICE, thread_id, "hello")[0] == 200
        futures = [
            pool.submit(stream, server, ALICE, thread_id, "what time is it?")
            for server in (first, second, first, second)
        ]
        results = [future.result() for future in futures]
    assert {status for status, _ in results} <= {200, 409}, results
    for status, body in results:
        if status == 200:
            assert '"error"' not in body and "response.completed" in body


def _jwt(expires: float) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'exp': int(expires)})}.signature"


# 8. The chat UI's on-behalf-of token is the user; email and numeric id are one person.
def test_a_forwarded_token_is_verified_and_its_user_keeps_one_namespace(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    server, _ = servers
    token = {"X-Forwarded-Access-Token": "token-alice"}
    calls_before = _CurrentUser.calls.count("token-alice")
    saved = post(server, turn("remember that my team is Raptors"), token)
    assert saved.status_code == 200, saved.text
    assert saved.json()["custom_outputs"]["user_id"] == ALICE
    again = post(server, turn("hello"), token)
    assert again.json()["custom_outputs"]["user_id"] == ALICE
    assert _CurrentUser.calls.count("token-alice") - calls_before == 1  # cached per token

    # The numeric id (app-templates#214) reaches the same memories as the email.
    by_id = post(
        server, {**turn("what do you know about me?"), "context": {"user_id": ALICE_NUMERIC_ID}}
    )
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["custom_outputs"]["user_id"] == ALICE
    assert "Raptors" in text_of(by_id)

    for refused in ("token-forged", _jwt(time.time() - 60)):
        answer = post(server, turn("hello"), {"X-Forwarded-Access-Token": refused})
        assert answer.status_code == 401, answer.text
        assert error_code(answer) == "identity_required"
        assert "token-forged" not in answer.text


def test_identity_headers_sent_twice_and_invisible_characters_are_refused(
    servers: tuple[RunningServer, RunningServer],
) -> None:
    server, _ = servers
    twice = post(server, turn("hello"), [("X-Forwarded-Email", BOB), ("X-Forwarded-Email", ALICE)])
    assert twice.status_code == 400 and "more than once" in twice.text
    hidden = post(server, {**turn("hello"), "context": {"user_id": "ali\u200bce@example.com"}})
    assert hidden.status_code == 400 and error_code(hidden) == "bad_request"
    nobody = post(server, turn("hello"))
    assert nobody.status_code == 401 and error_code(nobody) == "identity_required"


# 6. Error bodies: a code and a message for the client; nothing from below.
def test_errors_say_what_the_client_needs_and_nothing_more(
    servers: tuple[RunningServer, RunningServer], module_database_url: str
) -> None:
    server, _ = servers
    status = httpx.get(f"{server.base_url}/memory/status", timeout=30)
    assert status.status_code == 401
    mine = httpx.get(f"{server.base_url}/memory/status", headers=as_user(ALICE), timeout=30)
    assert mine.status_code == 200
    assert mine.json() == {
        "user_id": ALICE,
        "memory_available": True,
        "long_term_memory_available": True,
    }
    database_name = module_database_url.rsplit("/", 1)[-1].split("?")[0]
    assert database_name not in mine.text

    malformed = post(server, {"input": 5}, as_user(ALICE))
    assert malformed.status_code == 400 and error_code(malformed) == "bad_request"
    assert "input_value" not in malformed.text and "pydantic" not in malformed.text

    # A run that fails part-way (here: Postgres refuses its checkpoint, saying something
    # internal) is a 500 that names nothing from inside.
    with psycopg.connect(module_database_url, autocommit=True) as conn:
        conn.execute(REFUSE_CHECKPOINTS_SQL)
        try:
            failed = post(server, turn("my pin is 1234", f"boom-{uuid.uuid4()}"), as_user(ALICE))
            streamed = httpx.post(
                f"{server.base_url}/responses",
                json={
                    "model": "agent",
                    "stream": True,
                    **turn("my pin is 1234", f"boom-{uuid.uuid4()}"),
                },
                headers=as_user(ALICE),
                timeout=120,
            )
        finally:
            conn.execute("DROP TRIGGER refuse_checkpoints ON checkpoints")
    assert failed.status_code == 500 and error_code(failed) == "internal_error"
    assert "internal-detail" in REFUSE_CHECKPOINTS_SQL
    for body in (failed.text, streamed.text):
        assert "internal-detail" not in body and "checkpoints" not in body and "1234" not in body


REFUSE_CHECKPOINTS_SQL = """
CREATE OR REPLACE FUNCTION refuse_checkpoints() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.thread_id LIKE 'boom-%' THEN
        RAISE EXCEPTION 'internal-detail: checkpoints of % refused', NEW.thread_id;
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER refuse_checkpoints BEFORE INSERT ON checkpoints
FOR EACH ROW EXECUTE FUNCTION refuse_checkpoints();
"""
