"""consolidate: lossless changes at once (as revisions), deletions wait for approval in
`pending` and run through the tool when approved."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from graph.agent import open_agent
from graph.approvals import decision, pending_approvals
from graph.settings import Settings
from store import memories
from store.namespace import user_namespace


def test_consolidate_plans_applies_and_waits_for_approval(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    settings = Settings.from_env()
    namespace = user_namespace("ann")
    with open_agent(settings) as graph:
        store = graph.store
        # What older versions or other writers leave behind: rivals without subjects,
        # a copy in other words, junk. Written with plain puts, oldest first.
        store.put(namespace, "old-city", {"content": "my city is Lyon"})
        store.put(namespace, "tea-1", {"content": "Prefers green tea."})
        store.put(namespace, "junk", {"content": " ... "})
        store.put(namespace, "tea-2", {"content": "prefers green tea"})
        store.put(namespace, "new-city", {"content": "my city is Paris"})
        store.put(namespace, "foreign", {"favorite_color": "blue"})  # not ours: left alone
        memories.save_memory(store, "bob", "my city is Oslo")

    assert main(["consolidate", "--user", "ann", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)["users"][0]
    assert {(d["key"], d["reason"]) for d in planned["deletions"]} == {
        ("junk", "junk"),
        ("tea-1", "duplicate of tea-2"),
        ("old-city", "superseded by new-city"),
    }
    assert planned["subjects"] == [{"key": "new-city", "subject": "city"}]
    assert planned["merges"] == [{"kept": "tea-2", "duplicates": ["tea-1"]}]
    with open_agent(settings) as graph:
        assert memories.memory_history(graph.store, "ann") == []  # the dry run wrote nothing

    assert main(["consolidate", "--user", "ann"]) == 0
    assert "waiting for approval in thread consolidate-ann-" in capsys.readouterr().out
    with open_agent(settings) as graph:
        store = graph.store
        history = memories.memory_history(store, "ann")
        assert {(r.key, r.action, r.source) for r in history} == {
            ("new-city", "update", "consolidate"),
            ("tea-2", "merge", "consolidate"),
        }
        assert store.get(namespace, "new-city").value["subject"] == "city"  # type: ignore[union-attr]
        # Nothing deleted yet: each deletion is an approval request.
        assert store.get(namespace, "old-city") is not None
        waiting = pending_approvals(graph)
        assert [(p.tool, p.user_id) for p in waiting] == [("delete_memory", "ann")]
        thread = waiting[0].thread_id
        config = {"configurable": {"thread_id": thread, "user_id": "ann"}}  # ann's thread
        decided = []
        while pending := pending_approvals(graph):
            key = pending[0].args["key"]
            action = "reject" if key == "tea-1" else "approve"
            decided.append((key, action))
            graph.invoke(decision(action), config)
        assert sorted(decided) == [
            ("junk", "approve"),
            ("old-city", "approve"),
            ("tea-1", "reject"),
        ]
        assert store.get(namespace, "old-city") is None and store.get(namespace, "junk") is None
        assert store.get(namespace, "tea-1") is not None
        assert store.get(namespace, "foreign") is not None
        deleted = [r for r in memories.memory_history(store, "ann") if r.action == "delete"]
        assert {(r.key, r.thread_id) for r in deleted} == {("old-city", thread), ("junk", thread)}
        assert memories.search_memories(store, "ann", "city", 1)[0].key == "new-city"
        assert memories.memory_history(store, "bob")[0].action == "create"  # bob untouched
