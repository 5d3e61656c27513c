"""Long-term memory through the whole agent: offline model, real tool calls, real Postgres.

The in-process tests open the agent as an application would (``open_agent`` on
DATABASE_URL); the CLI tests run ``memory-agent`` as real OS processes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from graph.agent import aopen_agent, open_agent
from graph.context import Context
from graph.settings import Settings
from tests.store.turns import ask as _ask
from tests.store.turns import on_backend

ROOT = Path(__file__).resolve().parents[2]


def _resume(graph: Any, decision: dict[str, Any], thread: str, user: str = "alice") -> str:
    from langgraph.types import Command

    result = graph.invoke(
        Command(resume=decision),
        {"configurable": {"thread_id": thread}},
        context=Context(user_id=user),
    )
    return str(result["messages"][-1].content)


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    return Settings.from_env()


def test_remember_recall_across_threads_and_forget(
    database_url: str, memory_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    with open_agent(Settings.from_env()) as graph:
        assert graph.store is not None, graph.long_term_memory_status
        assert on_backend(graph, memory_backend)
        saved = _ask(graph, "Remember that my favourite colour is green", "A", "alice")
        assert re.fullmatch(r"Saved memory [0-9a-f-]{36}\.", saved)
        # Another thread of the same user recalls it; another user never does.
        assert _ask(graph, "What is my favourite colour?", "B", "alice") == (
            "Your favourite colour is green."
        )
        assert _ask(graph, "What is my favourite colour?", "B2", "bob").startswith(
            "I don't know your favourite colour"
        )
        assert _ask(graph, "What is my favourite colour?", "B3", None).startswith(
            "I don't know your favourite colour"
        )
        about = _ask(graph, "What do you know about me?", "C", "alice")
        assert about.startswith("Here is what I remember about you: [")
        assert "my favourite colour is green" in about
        # A restatement updates the memory instead of adding another; the same words
        # change nothing, a new value replaces the old one (kept as a revision).
        again = _ask(graph, "Remember that my favourite colour is green!", "D", "alice")
        assert again.startswith("Already remembered as memory ")
        changed = _ask(graph, "My favourite colour is now blue", "D2", "alice")
        assert changed.startswith("Updated memory ") and "green" in changed
        assert _ask(graph, "What is my favourite colour?", "D3", "alice") == (
            "Your favourite colour is blue."
        )
        _ask(graph, "Actually, my favorite color is green.", "D4", "alice")
        # Forgetting is destructive: it pauses for a human's decision first.
        _ask(graph, "Forget my favourite colour", "E", "alice")
        paused = graph.get_state({"configurable": {"thread_id": "E"}})
        assert [pending.value["tool"] for pending in paused.interrupts] == ["delete_memory"]
        rejected = _resume(graph, {"action": "reject", "reason": "keep it"}, "E")
        assert "reject" in rejected.lower()
        assert _ask(graph, "What is my favourite colour?", "F", "alice") == (
            "Your favourite colour is green."
        )
        _ask(graph, "Forget my favourite colour", "G", "alice")
        assert _resume(graph, {"action": "approve"}, "G").startswith("Deleted memory ")
        assert _ask(graph, "What is my favourite colour?", "H", "alice").startswith(
            "I don't know your favourite colour"
        )


# User ids an attacker would try: query-string and path syntax, the other user's id
# with a suffix or in another case, unicode, and one long enough to be hashed.
HOSTILE_IDS = [
    "alice&scope=bob",
    "alice/../bob",
    "bob%26x",
    "BOB",
    "bob ",
    "böb",
    "x" * 300,
]


def test_users_whose_ids_look_like_another_or_like_syntax_see_only_their_own(
    database_url: str, memory_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    with open_agent(Settings.from_env()) as graph:
        assert on_backend(graph, memory_backend)
        _ask(graph, "Remember that my favourite colour is green", "bob-1", "bob")
        for index, user in enumerate(HOSTILE_IDS):
            assert _ask(graph, "What is my favourite colour?", f"h{index}", user).startswith(
                "I don't know your favourite colour"
            ), user
            _ask(graph, f"Remember that my favourite colour is c{index}", f"h{index}", user)
        # Each saw and wrote only its own; bob's memory is as he left it.
        for index, user in enumerate(HOSTILE_IDS):
            assert _ask(graph, "What is my favourite colour?", f"k{index}", user) == (
                f"Your favourite colour is c{index}."
            ), user
        assert _ask(graph, "What is my favourite colour?", "bob-2", "bob") == (
            "Your favourite colour is green."
        )


def test_without_a_user_the_tools_are_absent_and_the_agent_still_answers(
    settings: Settings,
) -> None:
    with open_agent(settings) as graph:
        answer = _ask(graph, "Remember that my city is Lyon", "T", None)
        assert "can't keep long-term memories" in answer
        state = graph.get_state({"configurable": {"thread_id": "T"}})
        assert not any(getattr(m, "tool_calls", None) for m in state.values["messages"])


async def test_the_async_agent_remembers_too(
    database_url: str, memory_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    async with aopen_agent(Settings.from_env()) as graph:
        assert graph.store is not None
        assert on_backend(graph, memory_backend)
        result = await graph.ainvoke(
            {"messages": [("user", "Remember that my dog is Rex")]},
            {"configurable": {"thread_id": "a1"}},
            context=Context(user_id="zoë"),
        )
        assert str(result["messages"][-1].content).startswith("Saved memory ")
        result = await graph.ainvoke(
            {"messages": [("user", "What is my dog?")]},
            {"configurable": {"thread_id": "a2"}},
            context=Context(user_id="zoë"),
        )
        assert result["messages"][-1].content == "Your dog is Rex."


def test_a_different_embedding_dimension_leaves_memory_off_and_data_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_agent(settings) as graph:
        _ask(graph, "Remember that my city is Lyon", "A", "alice")
    monkeypatch.setenv("EMBEDDING_DIMS", "128")
    with open_agent(Settings.from_env()) as graph:
        assert graph.store is None
        assert "384-dimension" in graph.long_term_memory_status
        assert "produce 128" in graph.long_term_memory_status
    monkeypatch.setenv("MEMORY_REQUIRED", "1")
    from graph.agent import MemoryUnavailableError

    with pytest.raises(MemoryUnavailableError, match=r"384.*128"), open_agent(Settings.from_env()):
        pass
    monkeypatch.delenv("EMBEDDING_DIMS")
    with open_agent(Settings.from_env()) as graph:
        assert _ask(graph, "What is my city?", "B", "alice") == "Your city is Lyon."


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_memories_and_forget_user_commands(
    subprocess_env: dict[str, str], memory_backend: str
) -> None:
    # Real processes; on the managed backend they reach this process's REST stand-in.
    backend = ("MEMORY_BACKEND", "DATABRICKS_MEMORY_STORE", "DATABRICKS_HOST", "DATABRICKS_TOKEN")
    env = {
        **subprocess_env,
        "AUTO_SETUP": "1",
        **{name: os.environ[name] for name in backend if name in os.environ},
    }
    for text, thread in (("my city is Lyon", "t1"), ("my dog is Rex", "t2")):
        result = cli(
            ["ask", f"Remember that {text}", "--user", "a.b@x.com", "--thread", thread], env
        )
        assert result.returncode == 0, result.stderr
    cli(["ask", "Remember that my city is Oslo", "--user", "a-b@x.com", "--thread", "t3"], env)

    listed = json.loads(cli(["memories", "list", "--user", "a.b@x.com", "--json"], env).stdout)
    assert sorted(row["content"] for row in listed) == ["my city is Lyon", "my dog is Rex"]
    found = cli(["memories", "search", "dog", "--user", "a.b@x.com"], env)
    assert found.returncode == 0 and found.stdout.splitlines()[0].endswith("my dog is Rex")

    key = next(row["key"] for row in listed if row["content"] == "my dog is Rex")
    assert cli(["memories", "delete", key, "--user", "a-b@x.com"], env).returncode == 1
    deleted = cli(["memories", "delete", key, "--user", "a.b@x.com"], env)
    assert deleted.returncode == 0 and deleted.stdout.strip() == f"deleted memory {key}"

    forgot = cli(["forget-user", "a.b@x.com", "--threads", "--json"], env)
    assert forgot.returncode == 0, forgot.stderr
    assert json.loads(forgot.stdout) == {
        "user_id": "a.b@x.com",
        "memories_deleted": 1,
        "threads_deleted": 2,
    }
    threads = [t["thread_id"] for t in json.loads(cli(["threads", "--json"], env).stdout)]
    assert threads == ["t3"]
    assert cli(["memories", "list", "--user", "a.b@x.com"], env).stdout.startswith("no memories")
    other = json.loads(cli(["memories", "list", "--user", "a-b@x.com", "--json"], env).stdout)
    assert [row["content"] for row in other] == ["my city is Oslo"]
    empty = cli(["memories", "list", "--user", ""], env)
    assert empty.returncode == 2 and "must not be empty" in empty.stderr
