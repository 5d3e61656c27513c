"""Revisions: every change to a memory is recorded, superseded values never come back as
current, and a memory can be restored to any earlier revision (real Postgres)."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from graph.tool_markers import needs_approval
from store import memories
from store.namespace import user_namespace
from store.postgres import AsyncMemoryStore, MemoryStore
from store.revisions import Provenance
from store.tools import make_memory_tools


def _contents(items: list[Any]) -> list[str]:
    return [item.value["content"] for item in items]


def test_set_change_change_back_delete_restore(memory_store: MemoryStore) -> None:
    turn = Provenance(source="tool", thread_id="t-1", run_id="run-1")
    first = memories.save_memory(
        memory_store, "ann", "my favourite colour is blue", provenance=turn
    )
    assert (first.action, first.revision) == ("create", 1)
    memories.save_memory(memory_store, "ann", "prefers green tea")
    # A new value for the same subject (another spelling) updates the memory: no rival.
    changed = memories.save_memory(
        memory_store,
        "ann",
        "my favorite color is now green",
        provenance=Provenance(source="tool", thread_id="t-2", run_id="run-2"),
    )
    assert (changed.key, changed.action, changed.revision) == (first.key, "update", 2)
    assert changed.previous == "my favourite colour is blue"
    found = memories.search_memories(memory_store, "ann", "favourite colour", 5)
    assert _contents(found)[0] == "my favorite color is now green"
    assert not any("blue" in text for text in _contents(found))
    assert memory_store.count(user_namespace("ann")) == 2
    memories.save_memory(memory_store, "ann", "my favourite colour is blue")
    assert memories.delete_memory(memory_store, "ann", first.key)
    assert not memories.delete_memory(memory_store, "ann", first.key)  # nothing, no revision
    assert memories.search_memories(memory_store, "ann", "favourite colour blue green", 5)[
        0
    ].value == {"content": "prefers green tea"}

    history = memories.memory_history(memory_store, "ann", first.key)
    assert [(r.revision, r.action) for r in history] == [
        (1, "create"),
        (2, "update"),
        (3, "update"),
        (4, "delete"),
    ]
    assert (history[0].thread_id, history[0].run_id, history[0].source) == ("t-1", "run-1", "tool")
    assert history[1].previous_content == "my favourite colour is blue"
    assert history[1].content == "my favorite color is now green"
    assert history[3].value is None and history[3].previous_content == "my favourite colour is blue"

    restored = memories.restore_memory(memory_store, "ann", first.key, 2)
    assert (restored.action, restored.revision) == ("restore", 5)
    item = memory_store.get(user_namespace("ann"), first.key)
    assert item is not None and item.value["content"] == "my favorite color is now green"
    assert memories.search_memories(memory_store, "ann", "favourite colour", 1)[0].key == first.key
    with pytest.raises(memories.NoSuchRevision, match="no revision 9"):
        memories.restore_memory(memory_store, "ann", first.key, 9)
    # Another user sees neither the memory nor its history.
    assert memories.memory_history(memory_store, "bob", first.key) == []

    # Forgetting the user forgets the history too.
    memories.forget_user(memory_store, "ann")
    assert memories.memory_history(memory_store, "ann") == []


def test_setup_twice_and_other_stores_still_work(memory_store: MemoryStore) -> None:
    memory_store.setup()
    memory_store.setup()
    plain = InMemoryStore()
    saved = memories.save_memory(plain, "ann", "my city is Lyon")
    again = memories.save_memory(plain, "ann", "my city is now Paris")
    assert (again.key, again.updated, again.revision) == (saved.key, True, None)
    # A memory holding two facts has no single subject: a new value for one of them is
    # saved beside it, never over it (the other fact would be lost).
    both = memories.save_memory(plain, "bob", "my city is Oslo and my dog is Rex")
    assert memories.save_memory(plain, "bob", "my city is now Bergen").key != both.key
    assert plain.get(user_namespace("ann"), saved.key).value["content"] == "my city is now Paris"  # type: ignore[union-attr]


async def test_async_writes_record_revisions(amemory_store: AsyncMemoryStore) -> None:
    first = await memories.asave_memory(amemory_store, "zoë", "my dog is Rex")
    second = await memories.asave_memory(amemory_store, "zoë", "my dog is now Fido")
    updated = await memories.aupdate_memory(amemory_store, "zoë", first.key, "my dog is Max")
    assert await memories.aupdate_memory(amemory_store, "zoë", "nope", "x") is None
    assert await memories.adelete_memory(amemory_store, "zoë", first.key)
    assert second.key == first.key and updated is not None and updated.revision == 3
    history = await amemory_store.ahistory(user_namespace("zoë"), first.key)
    assert [r.action for r in history] == ["create", "update", "update", "delete"]
    assert [r.previous_content for r in history] == [
        None,
        "my dog is Rex",
        "my dog is now Fido",
        "my dog is Max",
    ]


def test_overwriting_needs_approval_adding_does_not() -> None:
    tools = {tool.name: tool for tool in make_memory_tools()}
    assert needs_approval("update_memory", tools, {"key": "k", "content": "x"})
    assert needs_approval("delete_memory", tools, {"key": "k"})
    assert needs_approval("save_memory", tools, {"content": "x", "key": "k"})
    assert not needs_approval("save_memory", tools, {"content": "x"})
    assert not needs_approval("save_memory", tools, {"content": "x", "key": ""})
    assert not needs_approval("list_memories", tools, {})
    # By name too, even without the metadata.
    assert needs_approval("update_memory", {}, {})
    assert needs_approval("save_memory", {}, {"key": "k"})


async def test_a_sync_store_under_async_calls_still_records_revisions(
    memory_store: MemoryStore,
) -> None:
    saved = await memories.asave_memory(memory_store, "ann", "my city is Lyon")
    await memories.asave_memory(memory_store, "ann", "my city is now Paris")
    assert await memories.adelete_memory(memory_store, "ann", saved.key)
    history = memories.memory_history(memory_store, "ann", saved.key)
    assert [r.action for r in history] == ["create", "update", "delete"]


def test_history_and_restore_from_the_cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from cli.main import main
    from graph.agent import open_agent

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    with open_agent() as graph:
        saved = memories.save_memory(graph.store, "ann", "my city is Lyon")
        memories.save_memory(graph.store, "ann", "my city is now Paris")
    assert main(["memories", "history", saved.key, "--user", "ann"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "r1 create" in lines[0] and "r2 update" in lines[1] and "(was: my city is Lyon)" in lines[1]
    )
    assert main(["memories", "restore", saved.key, "1", "--user", "ann", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["revision"] == 3
    assert main(["memories", "search", "city", "--user", "ann"]) == 0
    assert capsys.readouterr().out.strip() == f"[{saved.key}] my city is Lyon"
    assert main(["memories", "restore", saved.key, "7", "--user", "ann"]) == 2
    assert "has no revision 7" in capsys.readouterr().err
    assert main(["memories", "history", "--user", "nobody"]) == 1
