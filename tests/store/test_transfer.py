"""export-user -> forget-user -> import-user restores the same rows; template memories move
into our namespaces and a merged template namespace is reported, not guessed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.main import main
from graph.agent import open_agent
from graph.settings import Settings
from store import memories
from store.namespace import user_namespace
from store.postgres import MemoryStore
from store.transfer import (
    InvalidExport,
    export_user,
    import_template_memories,
    import_user,
    template_label,
)
from tests.store.turns import ask as _ask
from tests.store.turns import on_backend


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    return Settings.from_env()


def test_export_forget_import_restores_the_same_rows(
    settings: Settings, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_agent(settings) as graph:
        store = graph.store
        _ask(graph, "Remember that my city is Lyon", "t1", "a.b@x.com")
        _ask(graph, "My city is now Paris", "t2", "a.b@x.com")
        _ask(graph, "Remember that my city is Oslo", "other", "bob")
        before = export_user(store.conn, "a.b@x.com", threads=True)
        assert len(before["memory_revisions"]) == 2 and len(before["store_vectors"]) == 1
        assert {row["thread_id"] for row in before["threads"]["checkpoints"]} == {"t1", "t2"}

    path = tmp_path / "export.json"
    assert main(["export-user", "a.b@x.com", "--threads"]) == 0
    path.write_text(capsys.readouterr().out)
    assert json.loads(path.read_text()) == json.loads(json.dumps(before, default=str))
    assert main(["forget-user", "a.b@x.com", "--threads"]) == 0
    capsys.readouterr()
    with open_agent(settings) as graph:
        assert export_user(graph.store.conn, "a.b@x.com", threads=True)["store"] == []
    assert main(["import-user", str(path), "--json"]) == 0
    added = json.loads(capsys.readouterr().out)["rows_added"]
    assert added["store"] == 3 and added["checkpoints"] > 0
    with open_agent(settings) as graph:
        after = export_user(graph.store.conn, "a.b@x.com", threads=True)
        assert json.dumps(after, sort_keys=True, default=str) == json.dumps(
            before, sort_keys=True, default=str
        )
        # The restored memory and thread work as before; bob was never touched.
        assert _ask(graph, "What is my city?", "t3", "a.b@x.com") == "Your city is Paris."
        assert graph.get_state({"configurable": {"thread_id": "t1"}}).values["messages"]
        assert _ask(graph, "What is my city?", "t4", "bob") == "Your city is Oslo."

    # A file that is not an export, or carries another user's rows, writes nothing.
    bad = dict(before, store=[{**before["store"][0], "prefix": "user_memories.bob"}])
    with open_agent(settings) as graph, pytest.raises(InvalidExport, match="another user"):
        import_user(graph.store.conn, bad)
    path.write_text("{not json")
    assert main(["import-user", str(path)]) == 2
    assert "is not JSON" in capsys.readouterr().err


def test_template_memories_are_rekeyed_and_collisions_reported(
    memory_store: MemoryStore,
) -> None:
    # Users the agent knows: two of them collide under the template's "." -> "-" mapping.
    for user in ("a.b@x.com", "a-b@x.com", "carol.d@x.com"):
        memories.record_thread(memory_store, user, f"thread-of-{user}")
    memories.save_memory(memory_store, "erin", "my city is Rome")  # ours: left as it is
    # What Databricks' template wrote: ("user_memories", user_id.replace(".", "-")).
    for user, key, value in (
        ("a.b@x.com", "favorite_color", {"favorite_color": "blue"}),
        ("carol.d@x.com", "favorite_color", {"favorite_color": "green"}),
        ("carol.d@x.com", "shoe_size", {"shoe_size": 42}),
        ("dave", "pet", {"pet": "a cat"}),
    ):
        memory_store.put(("user_memories", template_label(user)), key, value)

    dry = import_template_memories(memory_store, dry_run=True)
    assert dry.collisions == {"a-b@x-com": ["a-b@x.com", "a.b@x.com"]}
    assert sorted((label, key) for label, key, _ in dry.moved) == [
        ("carol-d@x-com", "favorite_color"),
        ("carol-d@x-com", "shoe_size"),
        ("dave", "pet"),
    ]
    assert memory_store.get(("user_memories", "carol-d@x-com"), "shoe_size") is not None

    done = import_template_memories(memory_store)
    assert done.as_dict() == dry.as_dict()
    assert memory_store.get(("user_memories", "carol-d@x-com"), "shoe_size") is None
    moved = memory_store.get(user_namespace("carol.d@x.com"), "favorite_color")
    assert moved is not None and moved.value["content"] == "my favorite color is green"
    assert moved.value["template_value"] == {"favorite_color": "green"}
    # Moved memories are ours now: searchable, with a new value updating them.
    found = memories.search_memories(memory_store, "carol.d@x.com", "favourite colour", 1)
    assert found[0].key == "favorite_color"
    updated = memories.save_memory(memory_store, "carol.d@x.com", "my favourite colour is red")
    assert updated.key == "favorite_color" and updated.action == "update"
    assert memory_store.get(user_namespace("dave"), "pet").value["content"] == "my pet is a cat"  # type: ignore[union-attr]
    # The merged namespace is left for a human; erin's own memory is untouched.
    assert memory_store.get(("user_memories", "a-b@x-com"), "favorite_color") is not None
    assert memories.list_memories(memory_store, "erin")[0].value["content"] == "my city is Rome"
    # Every move is in the history of both namespaces.
    assert [r.action for r in memories.memory_history(memory_store, "carol.d@x.com")] == [
        "create",
        "update",
        "create",
    ]
    assert import_template_memories(memory_store).moved == []


def test_export_forget_import_on_either_backend(
    database_url: str,
    memory_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same round trip through the CLI on both backends: the user's memories (keys and
    values) and threads come back; another user's stay. Times and, on the managed backend,
    vectors and revisions are the backend's own (the service keeps neither)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    with open_agent(Settings.from_env()) as graph:
        assert on_backend(graph, memory_backend)
        _ask(graph, "Remember that my city is Lyon", "t1", "a.b@x.com")
        _ask(graph, "Remember that my dog is Rex", "t2", "a.b@x.com")
        _ask(graph, "Remember that my city is Oslo", "other", "bob")

    def memory_rows(export: dict[str, Any]) -> list[tuple[str, str, Any]]:
        return sorted(
            (row["prefix"], row["key"], json.dumps(row["value"], sort_keys=True))
            for row in export["store"]
        )

    assert main(["export-user", "a.b@x.com", "--threads"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert len(memory_rows(before)) == 4  # two memories, two thread records
    path = tmp_path / "export.json"
    path.write_text(json.dumps(before))
    assert main(["forget-user", "a.b@x.com", "--threads", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memories_deleted"] == 2
    assert main(["import-user", str(path), "--json"]) == 0
    capsys.readouterr()
    assert main(["export-user", "a.b@x.com", "--threads"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert memory_rows(after) == memory_rows(before)
    assert after["threads"] == before["threads"]
    with open_agent(Settings.from_env()) as graph:
        assert _ask(graph, "What is my city?", "t3", "a.b@x.com") == "Your city is Lyon."
        assert _ask(graph, "What is my city?", "t4", "bob") == "Your city is Oslo."
