"""delete-thread and sweep remove exactly the threads they report, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from cli.main import main
from graph.agent import open_agent
from graph.cleanup import delete_thread, sweep_threads
from graph.context import Context
from graph.settings import Settings
from store import memories


@pytest.fixture
def settings(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    return Settings.from_env()


def _talk(graph: Any, thread: str, user: str = "ann") -> None:
    graph.invoke(
        {"messages": [("user", "what time is it?")]},
        {"configurable": {"thread_id": thread}},
        context=Context(user_id=user),
    )


def _age(database_url: str, thread: str, days: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{ts}', "
            "to_jsonb((now() - make_interval(days => %s))::text)) WHERE thread_id = %s",
            (days, thread),
        )


def _threads(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}


def test_sweep_and_delete_thread(
    settings: Settings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_agent(settings) as graph:
        for thread in ("old-1", "old-2", "recent", "keep"):
            _talk(graph, thread)
        _age(database_url, "old-1", 40)
        _age(database_url, "old-2", 31)
        _age(database_url, "recent", 5)

        dry = sweep_threads(graph, 30, dry_run=True)
        assert sorted(dry.thread_ids) == ["old-1", "old-2"]
        assert dry.rows["checkpoints"] > 0
        assert _threads(database_url) == {"old-1", "old-2", "recent", "keep"}

        swept = sweep_threads(graph, 30)
        assert sorted(swept.thread_ids) == ["old-1", "old-2"]
        assert swept.rows == {**dry.rows, "thread records": 2}
        assert _threads(database_url) == {"recent", "keep"}
        assert sorted(memories.user_threads(graph.store, "ann")) == ["keep", "recent"]

        deleted = delete_thread(graph, "recent")
        assert deleted.thread_ids == ["recent"] and deleted.rows["checkpoints"] > 0
        assert _threads(database_url) == {"keep"}
        assert delete_thread(graph, "recent").threads == 0

    # The CLI says the same, in JSON, and fails plainly on a thread that is not there.
    assert main(["sweep", "--threads-older-than", "0", "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["thread_ids"] == ["keep"] and report["dry_run"] is True
    assert main(["delete-thread", "nope"]) == 1
    assert "there is no thread 'nope'" in capsys.readouterr().err
    assert main(["sweep", "--threads-older-than", "-3"]) == 2
    assert main(["delete-thread", "keep"]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 thread(s):")
    assert _threads(database_url) == set()
