"""migrate-memories moves a user's memories between the Lakebase store and a managed memory
store (the REST stand-in, through the real databricks-sdk client): exactly, both ways, again
without effect; a missing privilege is one line naming it, with nothing lost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.main import main
from graph.agent import open_agent
from graph.settings import Settings
from store import memories
from store.managed import make_managed_store
from store.namespace import shared_namespace, user_namespace
from tests.managed_memory_harness import ALL_PRIVILEGES


@pytest.fixture
def service(database_url: str, memory_service_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Lakebase as the agent's backend, a fresh managed store beside it to migrate to."""
    service = memory_service_session
    with service.state.lock:
        service.state.privileges = set(ALL_PRIVILEGES)
    name = f"main.agent_tests.migrate_{id(monkeypatch):x}"
    service.add_store(name)
    for variable, value in service.environment().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", name)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    monkeypatch.setenv("MEMORY_SHARED_SCOPE", "team-data")
    return service


def _values(store: Any, namespace: tuple[str, ...]) -> dict[str, Any]:
    return {item.key: item.value for item in store.search(namespace, limit=1000)}


def _migrate(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["migrate-memories", *args, "--json"]) == 0, capsys.readouterr().err
    return dict(json.loads(capsys.readouterr().out))


def test_round_trip_both_ways_is_exact_and_idempotent(
    service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob, team = (
        user_namespace("a.b@x.com"),
        user_namespace("bob"),
        shared_namespace("team-data"),
    )
    with open_agent(Settings.from_env()) as graph:
        lakebase = graph.store
        memories.save_memory(lakebase, "a.b@x.com", "my city is Lyon", source={"thread_id": "t1"})
        memories.save_memory(lakebase, "a.b@x.com", "I like green tea -- with milk")
        memories.save_memory(lakebase, "a.b@x.com", "my dog is Rex", key="dog")
        memories.save_memory(lakebase, "bob", "my city is Oslo")
        memories.save_shared(lakebase, "team-data", "the office is Building 5")
        memories.record_thread(lakebase, "bob", "b1")  # bob is a user the database knows
        memories.record_thread(lakebase, "a.b@x.com", "t1")
        original = {ns: _values(lakebase, ns) for ns in (alice, bob, team)}
    assert [len(v) for v in original.values()] == [3, 1, 1]

    dry = _migrate(capsys, "--to", "managed", "--user", "a.b@x.com", "--dry-run")
    assert (dry["found"], dry["copied"], dry["removed"]) == (3, 3, 0)
    moved = _migrate(capsys, "--to", "managed", "--user", "a.b@x.com")
    assert (moved["found"], moved["copied"], moved["removed"]) == (3, 3, 3)
    managed = make_managed_store(
        Settings.from_env().memory.managed_store, client=service.workspace_client()
    )
    with open_agent(Settings.from_env()) as graph:
        assert _values(graph.store, alice) == {}
        assert _values(graph.store, bob) == original[bob]  # only the user asked for
    assert _values(managed, alice) == original[alice]
    # Again: nothing left to move.
    assert _migrate(capsys, "--to", "managed", "--user", "a.b@x.com")["found"] == 0
    # Every user the database knows, and the shared scope.
    everyone = _migrate(capsys, "--to", "managed")
    assert (everyone["found"], everyone["removed"]) == (2, 2)
    assert {ns: _values(managed, ns) for ns in (alice, bob, team)} == original

    back = _migrate(capsys, "--to", "lakebase")
    assert (back["found"], back["copied"], back["removed"]) == (5, 5, 5)
    with open_agent(Settings.from_env()) as graph:
        assert {ns: _values(graph.store, ns) for ns in (alice, bob, team)} == original
        # The Lakebase history shows the round trip; the memory reads as before.
        actions = [r.action for r in memories.memory_history(graph.store, "a.b@x.com", "dog")]
        assert actions == ["create", "delete", "create"]
    assert _values(managed, alice) == _values(managed, team) == {}
    assert _migrate(capsys, "--to", "lakebase")["found"] == 0


def test_a_missing_privilege_is_one_line_naming_it_and_nothing_is_lost(
    service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_agent(Settings.from_env()) as graph:
        memories.save_memory(graph.store, "ann", "my city is Lyon")
    with service.state.lock:
        service.state.privileges.discard("WRITE MEMORY STORE")
    assert main(["migrate-memories", "--to", "managed", "--user", "ann"]) == 1
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "WRITE MEMORY STORE" in error, error
    assert "Traceback" not in error
    with open_agent(Settings.from_env()) as graph:
        assert len(_values(graph.store, user_namespace("ann"))) == 1  # still there


def test_bad_store_names_are_refused_before_any_call(
    service: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(service.state.requests)
    for name in ("main.default", "main.default.a/b", "main..x", ""):
        monkeypatch.setenv("DATABRICKS_MEMORY_STORE", name)
        assert main(["migrate-memories", "--to", "managed"]) == 2
        error = capsys.readouterr().err.strip()
        assert "three-level name" in error and "\n" not in error, error
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.default.missing_store")
    assert main(["migrate-memories", "--to", "managed"]) == 1
    error = capsys.readouterr().err.strip()
    assert "main.default.missing_store not found" in error and "\n" not in error, error
    monkeypatch.setenv("MEMORY_BACKEND", "managed")
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.default")
    assert main(["memories", "list", "--user", "ann"]) == 2
    assert "three-level name" in capsys.readouterr().err
    assert len([r for r in service.state.requests[before:] if "/memory-stores/" in r[1]]) == 1
