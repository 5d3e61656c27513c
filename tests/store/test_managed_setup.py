"""setup_lakebase.py --memory-store creates a managed memory store and prints the grants;
--check and `memory-agent status` report it and what that backend does not do."""

from __future__ import annotations

import json
from typing import Any

import pytest

import setup_lakebase
from cli.main import main as cli
from tests.managed_memory_harness import ALL_PRIVILEGES


@pytest.fixture
def service(database_url: str, memory_service_session: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    service = memory_service_session
    with service.state.lock:
        service.state.privileges = set(ALL_PRIVILEGES)
    for variable, value in service.environment().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    return service


def test_memory_store_is_created_once_and_the_grants_printed(
    service: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"main.setup_tests.store_{id(capsys):x}"
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", name)
    assert setup_lakebase.main(["--memory-store", "--grant", "sp-1234"]) == 0
    out = capsys.readouterr().out
    assert f"memory store {name}: created" in out
    assert "GRANT USE SCHEMA ON SCHEMA main.setup_tests TO `sp-1234`;" in out
    assert f"permissions/memory_store/{name}" in out and "WRITE_MEMORY_STORE" in out
    assert name in service.state.stores
    assert setup_lakebase.main(["--memory-store"]) == 0
    assert "already exists" in capsys.readouterr().out

    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.setup_tests.another")
    with service.state.lock:
        service.state.privileges.discard("CREATE MEMORY STORE")
    assert setup_lakebase.main(["--memory-store"]) == 1
    error = capsys.readouterr().err.strip()
    assert "CREATE MEMORY STORE on schema main.setup_tests" in error and "\n" not in error
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "no-dots")
    assert setup_lakebase.main(["--memory-store"]) == 2
    assert "three-level name" in capsys.readouterr().err


def test_check_and_status_report_the_managed_store_and_its_limits(
    service: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup_lakebase.main([]) == 0  # the checkpoint tables stay in Postgres
    monkeypatch.setenv("MEMORY_BACKEND", "managed")
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.setup_tests.absent")
    capsys.readouterr()
    assert setup_lakebase.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] long-term memory: managed memory store main.setup_tests.absent" in out
    assert "setup_lakebase.py --memory-store" in out

    service.add_store("main.setup_tests.present")
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.setup_tests.present")
    assert setup_lakebase.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "[ok  ] long-term memory: managed memory store main.setup_tests.present" in out
    assert "no revision history" in out and "no scores" in out

    assert cli(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["long_term_memory"]
    assert report["ok"] and report["store"] == "main.setup_tests.present"
    assert any("MEMORY_SEARCH_MODE" in limit for limit in report["limits"])
    # What the managed backend cannot do is refused in one line, not answered wrongly.
    for command in (
        ["memories", "history", "--user", "ann"],
        ["consolidate"],
        ["import-template-memories", "--dry-run"],
    ):
        assert cli(command) in (1, 2)
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and ("lakebase" in error.lower()), error
    with service.state.lock:
        service.state.privileges.discard("READ MEMORY STORE")
    assert cli(["status"]) == 1
    out = capsys.readouterr().out
    assert "READ MEMORY STORE on memory store main.setup_tests.present is needed" in out


def test_throttling_is_waited_out_by_the_sdk_client(service: Any) -> None:
    """429 + Retry-After: the SDK's client waits and retries (store.managed adds no retry)."""
    from store import memories
    from store.managed import make_managed_store

    service.add_store("main.setup_tests.busy")
    store = make_managed_store("main.setup_tests.busy", client=service.workspace_client())
    with service.state.lock:
        service.state.throttle, service.state.throttled = 2, 0
    saved = memories.save_memory(store, "ann", "my city is Lyon")
    assert service.state.throttled == 2
    assert store.get(("user_memories", "ann"), saved.key) is not None
    # ABORTED (a concurrent write): retried here, as the SDK's client does not.
    with service.state.lock:
        service.state.abort_writes = 2
    assert memories.update_memory(store, "ann", saved.key, "my city is Paris") is not None
    assert service.state.abort_writes == 0
    assert store.get(("user_memories", "ann"), saved.key).value["content"] == "my city is Paris"  # type: ignore[union-attr]
    # Create is create-only: a taken path answers False (the store then PATCHes), not an error.
    assert store.client.create_entry("ann", "/memories/late", "first", "first")
    assert not store.client.create_entry("ann", "/memories/late", "second", "second")


def test_listing_pages_and_filters_as_the_lakebase_store_does(
    service: Any, memory_store: Any
) -> None:
    """Search without a query (list, offset, filter) gives the same keys in the same order
    on both backends: most recently updated first."""
    from store import memories
    from store.managed import make_managed_store
    from store.namespace import user_namespace

    service.add_store("main.setup_tests.listing")
    managed = make_managed_store("main.setup_tests.listing", client=service.workspace_client())
    namespace = user_namespace("ann")
    for store in (memory_store, managed):
        for number in range(20):
            text = f"my colour is shade {number}" if number % 3 else f"note {number}"
            memories.save_memory(store, "ann", text, key=f"k{number:02d}")
        memories.update_memory(store, "ann", "k05", "my colour is red")

    def keys(store: Any, **options: Any) -> list[str]:
        return [item.key for item in store.search(namespace, **options)]

    for options in (
        {"limit": 100},
        {"limit": 5},
        {"limit": 4, "offset": 7},
        {"limit": 3, "offset": 18},
        {"limit": 50, "filter": {"subject": "colour"}},
        {"limit": 3, "offset": 2, "filter": {"subject": "colour"}},
    ):
        assert keys(managed, **options) == keys(memory_store, **options), options
    assert keys(managed, limit=2) == ["k05", "k19"]
    assert keys(managed, limit=3, filter={"subject": "colour"}) == ["k05", "k19", "k17"]
