"""Many users at once against one real server process: no starvation, no shared failure.

64 clients, each its own user and thread, several turns each, all at once on
the default pool; one more user keeps sending input that must be refused (a
NUL byte, an oversized message, an oversized body). Checked: every turn is
answered (no 5xx, no client timeout), each thread's history is one line (no
fork), each user sees their own memory and never another user's text, and
/health and /memory/status keep answering while the load runs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from graph.validation import MAX_MESSAGE_CHARS
from serving.server import MAX_REQUEST_BYTES
from tests.serving.conftest import (
    RunningServer,
    base_env,
    server_command,
    start_server,
    stop_server,
)

CLIENTS = 64
RUN = uuid.uuid4().hex[:6]
BAD_USER_SECRET = f"MALLORY-PRIVATE-{RUN}"


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("many-users-home")
    env = base_env(home)
    env["DATABASE_URL"] = module_database_url
    env["AUTO_SETUP"] = "1"
    running = start_server(env, home / "server.log", server_command("--no-tracing"), None)
    yield running
    stop_server(running)


def _code(user: int) -> str:
    return f"C{RUN}X{user:03d}"


def _text(body: dict[str, Any]) -> str:
    return " ".join(
        part.get("text", "")
        for item in body.get("output", [])
        if item.get("type") == "message"
        for part in item.get("content", [])
    )


async def _turn(
    client: httpx.AsyncClient, user: int, text: str, stream: bool
) -> tuple[int, dict[str, Any], str]:
    """(status, response body, raw text of the whole answer) for one turn."""
    payload = {
        "input": [{"role": "user", "content": text}],
        "custom_inputs": {"thread_id": f"thread-{RUN}-{user}", "user_id": f"user-{RUN}-{user}"},
        "stream": stream,
    }
    response = await client.post("/responses", json=payload)
    if not stream or response.status_code != 200:
        return response.status_code, response.json(), response.text
    completed = [
        json.loads(line[len("data: ") :])
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    done = [event for event in completed if event.get("type") == "response.completed"]
    errors = [event for event in completed if "error" in event]
    status = 200 if len(done) == 1 and not errors else 599  # an error after the 200
    return status, done[0]["response"] if done else {}, response.text


async def _conversation(client: httpx.AsyncClient, user: int) -> list[tuple[int, str, str]]:
    turns = [
        f"remember that my code is {_code(user)}",
        "what is my code?",
        "what do you know about me",
    ]
    results = []
    for text in turns:
        status, body, raw = await _turn(client, user, text, stream=user % 2 == 1)
        results.append((status, _text(body), raw))
    return results


async def _bad_user(client: httpx.AsyncClient) -> list[int]:
    bad_texts = [
        f"{BAD_USER_SECRET} \x00 nul",
        f"{BAD_USER_SECRET} " + "w " * MAX_MESSAGE_CHARS,
    ]
    statuses = []
    for round_ in range(3):
        for text in bad_texts:
            status, _, _ = await _turn(client, 999, text, stream=round_ % 2 == 1)
            statuses.append(status)
        big = {"input": [{"role": "user", "content": "x" * (MAX_REQUEST_BYTES + 10)}]}
        statuses.append((await client.post("/responses", json=big)).status_code)
        await asyncio.sleep(0.05)
    return statuses


async def _watch(client: httpx.AsyncClient, stop: asyncio.Event) -> list[int]:
    statuses = []
    while not stop.is_set():
        for path in ("/health", "/memory/status"):
            statuses.append((await client.get(path)).status_code)
        await asyncio.sleep(0.2)
    return statuses


async def _load(base_url: str) -> tuple[list[Any], list[int], list[int]]:
    limits = httpx.Limits(max_connections=CLIENTS + 8)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        stop = asyncio.Event()
        watcher = asyncio.create_task(_watch(client, stop))
        bad = asyncio.create_task(_bad_user(client))
        conversations = await asyncio.gather(*(_conversation(client, u) for u in range(CLIENTS)))
        stop.set()
        return conversations, await bad, await watcher


def _forks(database_url: str) -> list[str]:
    """Threads whose checkpoints do not form one line (two children of one parent)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT thread_id, parent_checkpoint_id, count(*) FROM checkpoints "
            "WHERE checkpoint_ns = '' AND parent_checkpoint_id IS NOT NULL "
            "GROUP BY thread_id, parent_checkpoint_id HAVING count(*) > 1"
        ).fetchall()
    return [row[0] for row in rows]


def test_64_users_at_once_all_answered_none_sees_another(
    server: RunningServer, module_database_url: str
) -> None:
    conversations, bad_statuses, watch_statuses = asyncio.run(_load(server.base_url))

    for user, turns in enumerate(conversations):
        assert [status for status, _, _ in turns] == [200, 200, 200], (user, turns)
        assert all(text for _, text, _ in turns), (user, turns)
        assert _code(user) in turns[1][1], (user, turns[1])
        for _, _, raw in turns:
            others = [u for u in range(CLIENTS) if u != user and _code(u) in raw]
            assert not others, (user, others)
            assert BAD_USER_SECRET not in raw
    assert sorted(set(bad_statuses)) == [400, 413], bad_statuses
    assert watch_statuses and set(watch_statuses) == {200}
    assert _forks(module_database_url) == []
    with psycopg.connect(module_database_url) as conn:
        saved = conn.execute(
            "SELECT count(*) FROM checkpoint_writes WHERE thread_id = %s", (f"thread-{RUN}-999",)
        ).fetchone()
    assert saved == (0,), "the refused input reached the database"
