"""`memory-agent pending | resume | history --at | fork`, each command in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.processes import REPO, Worker
from tests.workers.kit import SIDE_EFFECTS_SQL


@pytest.fixture(autouse=True)
def side_effects_table(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SIDE_EFFECTS_SQL)


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.workers.cli", *args],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO), "AUTO_SETUP": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("memory-agent: error: ")
    assert text in result.stderr


def _deleted(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT payload FROM test_side_effects WHERE tool = 'delete_thing' ORDER BY id"
        ).fetchall()
    return [row[0] for row in rows]


def test_ask_pauses_pending_lists_it_resume_approves(
    subprocess_env: dict[str, str], database_url: str
) -> None:
    asked = cli(["ask", "delete k1", "--thread", "t1", "--user", "ann"], subprocess_env)
    assert asked.returncode == 0, asked.stderr
    assert (
        'Waiting for approval: The agent wants to run delete_thing with {"key": "k1"}'
        in asked.stdout
    )
    assert "memory-agent resume t1 --approve" in asked.stdout

    listed = cli(["pending", "--json"], subprocess_env)
    assert listed.returncode == 0, listed.stderr
    (item,) = json.loads(listed.stdout)
    assert (item["thread_id"], item["tool"], item["args"], item["user_id"]) == (
        "t1",
        "delete_thing",
        {"key": "k1"},
        "ann",
    )
    assert "t1" in cli(["pending"], subprocess_env).stdout

    resumed = cli(["resume", "t1", "--approve"], subprocess_env)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "deleted k1 for ann"
    assert _deleted(database_url) == ["k1"]
    assert cli(["pending"], subprocess_env).stdout.strip() == "nothing is waiting for approval"
    _one_line_error(
        cli(["resume", "t1", "--approve"], subprocess_env), 2, "not waiting for approval"
    )


def test_resume_reject_and_edit(subprocess_env: dict[str, str], database_url: str) -> None:
    cli(["ask", "delete k1", "--thread", "r"], subprocess_env)
    rejected = cli(["resume", "r", "--reject", "--reason", "keep it"], subprocess_env)
    assert "rejected" in rejected.stdout and "Reason: keep it." in rejected.stdout
    cli(["ask", "delete k2", "--thread", "e"], subprocess_env)
    _one_line_error(cli(["resume", "e", "--edit", "{bad"], subprocess_env), 2, "not valid JSON")
    _one_line_error(cli(["resume", "e", "--edit", "[1]"], subprocess_env), 2, "JSON object")
    _one_line_error(
        cli(["resume", "e", "--approve", "--reason", "x"], subprocess_env), 2, "--reason goes with"
    )
    edited = cli(["resume", "e", "--edit", '{"key": "k3"}'], subprocess_env)
    assert edited.stdout.strip() == "deleted k3"
    assert _deleted(database_url) == ["k3"]


def test_history_at_and_fork(subprocess_env: dict[str, str]) -> None:
    cli(["ask", "hello", "--thread", "h"], subprocess_env)
    cli(["ask", "again", "--thread", "h"], subprocess_env)
    rows: list[dict[str, Any]] = json.loads(cli(["history", "h", "--json"], subprocess_env).stdout)
    first_turn_done = next(r for r in rows if r["messages"] == 2 and r["next"] == [])
    shown = cli(["history", "h", "--at", first_turn_done["checkpoint_id"]], subprocess_env)
    assert "human: hello" in shown.stdout and "ai: echo: hello" in shown.stdout
    assert "again" not in shown.stdout

    forked = cli(
        ["fork", "h", first_turn_done["checkpoint_id"], "--to", "h2", "--json"], subprocess_env
    )
    assert json.loads(forked.stdout)["thread_id"] == "h2"
    assert cli(["ask", "other", "--thread", "h2"], subprocess_env).stdout.strip() == "echo: other"
    after: list[dict[str, Any]] = json.loads(cli(["history", "h", "--json"], subprocess_env).stdout)
    assert after == rows  # the original thread is unchanged
    _one_line_error(cli(["fork", "h", "nope"], subprocess_env), 2, "has no checkpoint nope")
    _one_line_error(
        cli(["fork", "h", first_turn_done["checkpoint_id"], "--to", "h2"], subprocess_env),
        2,
        "already has history",
    )
    _one_line_error(cli(["history", "h", "--at", "nope"], subprocess_env), 2, "no checkpoint")


def test_ask_on_a_busy_thread_fails_fast_with_exit_3(
    subprocess_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "release-the-tool"
    env = {**subprocess_env, "TOOL_GATE": str(gate), "TOOL_SLEEP": "0.5:0.5"}
    running = Worker("run_once", [database_url, "b", "append 1 slow"], env)
    assert running.wait_for("tool-enter"), running.finish()[1]
    busy = cli(["ask", "hello", "--thread", "b"], subprocess_env)
    gate.touch()
    _one_line_error(busy, 3, "thread 'b' is busy: another run is in progress")
    waited = cli(["ask", "hello", "--thread", "b", "--wait", "60"], subprocess_env)
    assert waited.returncode == 0 and waited.stdout.strip() == "echo: hello"
    assert running.finish()[0] == 0


def test_without_saved_memory_a_sensitive_call_is_refused_not_paused(
    subprocess_env: dict[str, str], database_url: str
) -> None:
    env = {**subprocess_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    asked = cli(["ask", "delete k1", "--thread", "x"], env)
    assert asked.returncode == 0, asked.stderr
    assert "needs a human's approval" in asked.stdout and "cannot pause" in asked.stdout


def test_chat_asks_at_the_terminal_when_a_run_pauses(
    subprocess_env: dict[str, str], database_url: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.workers.cli", "chat", "--thread", "c"],
        cwd=REPO,
        env={**subprocess_env, "PYTHONPATH": str(REPO), "AUTO_SETUP": "1"},
        input='delete k1\ne {"key": "bad json\ne {"key": "k2"}\n/exit\n',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "approval> The agent wants to run delete_thing" in result.stdout
    assert "agent> deleted k2" in result.stdout
    assert "memory-agent: " in result.stderr  # the bad JSON was reported, then asked again
    assert _deleted(database_url) == ["k2"]
