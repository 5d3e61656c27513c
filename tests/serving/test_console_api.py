"""The console's JSON API over HTTP, against a real server process (no browser needed).

The same identity and ownership rules as /responses: a thread answers only the
user of its latest run (403), memories are the caller's own, deleting one
needs an approval, and bad input is a 4xx with one line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.serving.conftest import RunningServer, server_command, start_agent_server, stop_server


@pytest.fixture(scope="module")
def server(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("console-api-home")
    running = start_agent_server(home, module_database_url, server_command("--no-tracing"))
    yield running
    stop_server(running)


def as_user(user: str | None) -> dict[str, str]:
    return {"X-Memory-Agent-User": user} if user else {}


def turn(
    server: RunningServer, user: str | None, text: str, thread: str | None = None
) -> dict[str, Any]:
    """One chat turn through the console's route; returns the response.completed event."""
    custom_inputs: dict[str, Any] = {"user_id": user} if user else {}
    if thread:
        custom_inputs["thread_id"] = thread
    body = {"input": [{"role": "user", "content": text}], "custom_inputs": custom_inputs}
    with httpx.stream(
        "POST", f"{server.base_url}/console/api/responses", json=body, timeout=60
    ) as response:
        assert response.status_code == 200, response.read()
        events = [
            json.loads(line[5:])
            for line in response.iter_lines()
            if line.startswith("data:") and line != "data: [DONE]"
        ]
    assert events[-1]["type"] == "response.completed", events[-1]
    return dict(events[-1])


def get(server: RunningServer, path: str, user: str | None) -> httpx.Response:
    return httpx.get(f"{server.base_url}{path}", headers=as_user(user), timeout=30)


def test_the_page_is_served_at_the_root(server: RunningServer) -> None:
    page = httpx.get(server.base_url + "/")
    assert page.status_code == 200 and 'src="/console/static/app.js"' in page.text
    for module in ("app.js", "api.js", "dom.js"):
        script = httpx.get(f"{server.base_url}/console/static/{module}")
        assert script.status_code == 200
        # Nothing a user, the model or a memory wrote is ever parsed as HTML.
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write", script.text)
    status = get(server, "/console/api/status", "ada").json()
    assert status["user_id"] == "ada" and status["identity"] == "local"
    assert status["offline_model"] is True and status["memory_available"] is True
    # The server has background runs, so the page starts turns with background: true.
    assert status["background_runs"] is True


def test_threads_are_listed_for_their_owner_only(server: RunningServer) -> None:
    done = turn(server, "ada", "my name is Ada")
    thread = done["custom_outputs"]["thread_id"]
    listed = get(server, "/console/api/threads", "ada").json()
    assert [t["thread_id"] for t in listed][:1] == [thread]
    assert listed[0]["title"] == "my name is Ada"
    assert thread not in [t["thread_id"] for t in get(server, "/console/api/threads", "bob").json()]
    for path in (
        f"/console/api/threads/{thread}",
        f"/console/api/threads/{thread}/checkpoints",
        f"/threads/{thread}",
    ):
        refused = get(server, path, "bob")
        assert refused.status_code == 403, path
        assert "Ada" not in refused.text
    checkpoint = get(server, f"/console/api/threads/{thread}/checkpoints", "ada").json()[0][
        "checkpoint_id"
    ]
    assert (
        get(server, f"/console/api/threads/{thread}/checkpoints/{checkpoint}", "bob").status_code
        == 403
    )
    fork = httpx.post(
        f"{server.base_url}/console/api/threads/{thread}/checkpoints/{checkpoint}/fork",
        headers=as_user("bob"),
    )
    assert fork.status_code == 403
    delete = httpx.delete(f"{server.base_url}/console/api/threads/{thread}", headers=as_user("bob"))
    assert delete.status_code == 403
    # Continuing it through the console's chat route is refused the same way as /responses.
    body = {
        "input": [{"role": "user", "content": "hi"}],
        "custom_inputs": {"user_id": "bob", "thread_id": thread},
    }
    assert httpx.post(f"{server.base_url}/console/api/responses", json=body).status_code == 403


def test_fork_copies_history_up_to_the_checkpoint_and_delete_removes_the_thread(
    server: RunningServer,
) -> None:
    thread = turn(server, "ada", "my name is Ada")["custom_outputs"]["thread_id"]
    turn(server, "ada", "my city is Lyon", thread)
    rows = get(server, f"/console/api/threads/{thread}/checkpoints", "ada").json()
    first_answer = next(
        r
        for r in rows
        if r["preview"].startswith("assistant: Noted: your name") and r["node"] == "call_model"
    )
    assert first_answer["next"] == []
    assert [r["node"] for r in rows].count("input") == 2  # one per turn
    state = get(
        server, f"/console/api/threads/{thread}/checkpoints/{first_answer['checkpoint_id']}", "ada"
    ).json()
    assert [m["text"] for m in state["messages"] if m["role"] == "user"] == ["my name is Ada"]
    forked = httpx.post(
        f"{server.base_url}/console/api/threads/{thread}/checkpoints/{first_answer['checkpoint_id']}/fork",
        headers=as_user("ada"),
    ).json()["thread_id"]
    copy = get(server, f"/console/api/threads/{forked}", "ada").json()
    assert [m["text"] for m in copy["messages"] if m["role"] == "user"] == ["my name is Ada"]
    assert copy["forked_from"]["thread_id"] == thread
    assert (
        get(server, f"/console/api/threads/{forked}", "bob").status_code == 403
    )  # owned like its source
    deleted = httpx.delete(
        f"{server.base_url}/console/api/threads/{thread}", headers=as_user("ada")
    )
    assert deleted.json() == {"thread_id": thread, "deleted": True}
    assert get(server, f"/console/api/threads/{thread}", "ada").status_code == 404
    assert get(server, f"/console/api/threads/{forked}", "ada").status_code == 200


def test_memories_search_edit_and_delete_behind_an_approval(server: RunningServer) -> None:
    done = turn(server, "carol", "remember that my favourite tea is sencha")
    thread = done["custom_outputs"]["thread_id"]
    turn(server, "carol", "remember that my bike is blue")
    found = get(server, "/console/api/memories?query=tea", "carol").json()
    assert found[0]["content"] == "my favourite tea is sencha"
    assert found[0]["score"] > found[-1]["score"]
    assert found[0]["source"]["thread_id"] == thread  # where it was saved
    assert get(server, "/console/api/memories", "dave").json() == []
    key = found[0]["key"]
    url = f"{server.base_url}/console/api/memories/{key}"

    edited = httpx.put(
        url, json={"content": "my favourite tea is hojicha"}, headers=as_user("carol")
    )
    assert edited.json()["content"] == "my favourite tea is hojicha"
    assert edited.json()["source"] == {**found[0]["source"], "edited_in": "console"}
    assert httpx.put(url, json={"content": "x"}, headers=as_user("dave")).status_code == 404

    unasked = httpx.request("DELETE", url, headers=as_user("carol"))
    assert unasked.status_code == 428 and "approval" in unasked.json()["detail"]
    rejected = httpx.request("DELETE", url, json={"approval": "reject"}, headers=as_user("carol"))
    assert rejected.json()["deleted"] is False
    bad = httpx.request("DELETE", url, json={"approval": "maybe"}, headers=as_user("carol"))
    assert bad.status_code == 400
    assert len(get(server, "/console/api/memories", "carol").json()) == 2
    other = httpx.request("DELETE", url, json={"approval": "approve"}, headers=as_user("dave"))
    assert other.status_code == 404  # another user's key is not found among your memories
    approved = httpx.request("DELETE", url, json={"approval": "approve"}, headers=as_user("carol"))
    assert approved.json() == {"key": key, "deleted": True}
    assert [m["content"] for m in get(server, "/console/api/memories", "carol").json()] == [
        "my bike is blue"
    ]


def test_bad_input_is_a_4xx_with_one_line(server: RunningServer) -> None:
    assert get(server, "/console/api/threads?limit=0", "ada").status_code == 400
    assert get(server, "/console/api/threads?limit=many", "ada").status_code == 400
    assert get(server, "/console/api/threads/nope", "ada").status_code == 404
    assert get(server, "/console/api/memories", None).status_code == 400  # no user, no memories
    too_long = get(server, "/console/api/status", "x" * 300)
    assert too_long.status_code == 400 and "limit" in too_long.json()["detail"]
    not_json = httpx.post(
        f"{server.base_url}/console/api/responses",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    no_message = httpx.post(f"{server.base_url}/console/api/responses", json={"input": []})
    assert no_message.status_code == 400 and "message" in no_message.json()["detail"]
