"""A shared scope: every user of the agent recalls and searches it, marked shared; only the
admin path (the CLI) writes it; the model can neither choose the scope nor change it."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from graph.agent import open_agent
from graph.settings import Settings
from store import memories
from store.namespace import shared_namespace
from store.tools import make_memory_tools
from tests.store.turns import ask as _ask
from tests.store.turns import on_backend


def test_shared_scope_read_by_all_written_only_by_admin(
    database_url: str,
    memory_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    monkeypatch.setenv("MEMORY_SHARED_SCOPE", "team-data")
    # The admin path: the CLI, with the configured scope.
    assert main(["shared", "add", "my office is Building 5", "--json"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    assert main(["shared", "add", "the release freeze is on Fridays", "--scope", "team-web"]) == 0
    capsys.readouterr()

    with open_agent(Settings.from_env()) as graph:
        store = graph.store
        assert on_backend(graph, memory_backend)
        for user in ("ann", "bob"):
            assert _ask(graph, "What is my office?", f"{user}-1", user) == (
                "Your office is Building 5."
            )
            found = _ask(graph, "What do you know about me?", f"{user}-2", user)
            assert f"[shared:{key}] my office is Building 5" in found
            assert "release freeze" not in found  # another scope
        # A user's own fact comes first; the shared one is still there, marked.
        said = _ask(graph, "Remember that my office is Room 12", "ann-3", "ann")
        assert said.startswith("Saved memory"), said
        lines = memories.memory_lines(
            memories.search_memories(
                store, "ann", "office", 5, shared=shared_namespace("team-data")
            )
        )
        assert lines[0].endswith("my office is Room 12") and lines[1].startswith("[shared:")
        # The model cannot write it: deleting or updating the shared key looks in the
        # user's own memories only, and no tool has a scope argument.
        assert "I have no saved memory" in _ask(graph, "Forget my office", "ann-4", "ann") or (
            graph.get_state({"configurable": {"thread_id": "ann-4"}}).interrupts[0].value["args"]
            != {"key": key}
        )
        assert not memories.delete_memory(store, "ann", key)
        assert memories.update_memory(store, "ann", key, "my office is nowhere") is None
        assert store.get(shared_namespace("team-data"), key) is not None
        assert _ask(graph, "What is my office?", "bob-5", "bob") == "Your office is Building 5."
        for tool in make_memory_tools(shared_scope="team-data"):
            properties = tool.tool_call_schema.model_json_schema()["properties"]
            assert not {"scope", "shared", "namespace", "user_id"} & set(properties)

    assert main(["shared", "delete", key]) == 0
    assert main(["shared", "list", "--json"]) == 0
    capsys.readouterr()
    assert main(["shared", "delete", key]) == 1
    monkeypatch.delenv("MEMORY_SHARED_SCOPE")
    assert main(["shared", "list"]) == 2
    assert "MEMORY_SHARED_SCOPE" in capsys.readouterr().err
