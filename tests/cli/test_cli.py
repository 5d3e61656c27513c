"""The memory-agent CLI and setup_lakebase.py, each run as a real OS process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def cli(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(["-m", "cli.main", *args], env, stdin)


def setup_script(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["setup_lakebase.py", *args], env)


@pytest.fixture
def ready_env(subprocess_env: dict[str, str]) -> dict[str, str]:
    """A child-process environment whose database has every table."""
    assert setup_script([], subprocess_env).returncode == 0
    return subprocess_env


def test_setup_then_check_reports_all_good(subprocess_env: dict[str, str]) -> None:
    empty = setup_script(["--check"], subprocess_env)
    assert empty.returncode == 1
    assert "[FAIL] table checkpoints is missing" in empty.stdout
    assert "table(s) missing: run `python setup_lakebase.py`" in empty.stdout

    first = setup_script([], subprocess_env)
    assert first.returncode == 0, first.stderr
    assert "table checkpoints" in first.stdout
    second = setup_script([], subprocess_env)
    assert "nothing to do" in second.stdout

    report = setup_script(["--check"], subprocess_env)
    assert report.returncode == 0, report.stdout
    assert "[ok  ] pgvector 0.8" in report.stdout
    assert report.stdout.rstrip().endswith("all good")


def test_check_on_unreachable_database_exits_non_zero(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**subprocess_env, "DATABASE_URL": f"postgresql://a@/b?host={tmp_path}"}
    result = setup_script(["--check"], env)
    assert result.returncode == 1
    assert "[FAIL] connect" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_setup_from_three_processes_at_once(
    subprocess_env: dict[str, str], database_url: str
) -> None:
    start_at = time.time() + 4  # all three begin setup at the same moment, after their imports
    script = (
        "import sys, time; import setup_lakebase; "
        "time.sleep(max(0, float(sys.argv[1]) - time.time())); sys.exit(setup_lakebase.main([]))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start_at)],
            env=subprocess_env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outcomes] == [0, 0, 0], outcomes
    created = [out for _, out, _ in outcomes if "table checkpoints" in out]
    assert len(created) == 1, outcomes  # exactly one of them did the work
    from langgraph.checkpoint.postgres.base import MIGRATIONS

    with psycopg.connect(database_url) as conn:
        applied = conn.execute("SELECT count(*) FROM checkpoint_migrations").fetchone()
    assert applied == (len(MIGRATIONS),)


def test_thread_continues_across_processes_and_threads_stay_apart(
    ready_env: dict[str, str],
) -> None:
    first = cli(
        ["ask", "My name is Ada and my favourite colour is teal.", "--thread", "t-1"], ready_env
    )
    assert first.returncode == 0, first.stderr
    second = cli(["ask", "What is my favourite colour?", "--thread", "t-1", "--json"], ready_env)
    payload = json.loads(second.stdout)
    assert payload == {
        "thread_id": "t-1",
        "user_id": None,
        "answer": "Your favourite colour is teal.",
        "pending": [],  # approval requests the run paused on
        "memory_available": True,
        "model": payload["model"],
    }
    assert payload["model"].startswith("offline")
    other = cli(["ask", "What is my favourite colour?", "--thread", "t-2"], ready_env)
    assert other.stdout.startswith("I don't know your favourite colour")


def test_ask_without_thread_prints_the_new_thread_id(ready_env: dict[str, str]) -> None:
    result = cli(["ask", "hello"], ready_env)
    assert result.returncode == 0
    assert "continue with --thread " in result.stderr


def test_threads_and_history(ready_env: dict[str, str]) -> None:
    cli(["ask", "My name is Ada.", "--thread", "older"], ready_env)
    cli(["ask", "What time is it?", "--thread", "newer"], ready_env)
    listing = cli(["threads", "--json"], ready_env)
    threads = json.loads(listing.stdout)
    assert [t["thread_id"] for t in threads] == ["newer", "older"]
    # the empty start, input, recall, model, review (approval gate), tools, model
    assert threads[0]["checkpoints"] == 7

    history = cli(["history", "newer", "--json"], ready_env)
    rows = json.loads(history.stdout)
    assert [row["step"] for row in rows] == [5, 4, 3, 2, 1, 0, -1]  # newest first
    assert rows[0]["last"].startswith("AIMessage: It is ")
    assert rows[1]["last"].startswith("ToolMessage: ")
    assert rows[2]["last"].startswith("AIMessage: ")  # the tool call itself

    text = cli(["history", "newer"], ready_env)
    assert text.returncode == 0 and "step   5" in text.stdout
    missing = cli(["history", "no-such-thread"], ready_env)
    assert missing.returncode == 1
    assert (
        missing.stderr.strip() == "memory-agent: error: thread 'no-such-thread' has no checkpoints"
    )


def test_chat_reads_lines_until_eof_and_prints_how_to_continue(ready_env: dict[str, str]) -> None:
    result = cli(
        ["chat", "--thread", "c1"], ready_env, stdin="My name is Ada.\n\nWhat is my name?\n"
    )
    assert result.returncode == 0, result.stderr
    assert "model:  offline" in result.stdout
    assert "agent> Your name is Ada." in result.stdout
    assert "memory-agent chat --thread c1" in result.stdout
    again = cli(["chat", "--thread", "c1"], ready_env, stdin="What is my name?\n/exit\n")
    assert "agent> Your name is Ada." in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "message 1 is empty; send some text"),
        (
            ["ask", "hi", "--thread", "x" * 10_000],
            "thread_id is 10000 characters long; the limit is 256",
        ),
        (
            ["ask", "hi", "--thread", "tab\there"],
            "thread_id contains a control character (U+0009) at position 3",
        ),
        (["history", "\x7f"], "thread_id contains a control character (U+007F) at position 0"),
        (["threads", "--limit", "0"], "--limit must be at least 1"),
        (["ask", "hi", "--thread", ""], "thread_id must not be empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    ready_env: dict[str, str], args: list[str], message: str
) -> None:
    result = cli(args, ready_env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"memory-agent: error: {message}"


def test_bad_settings_are_one_line(ready_env: dict[str, str]) -> None:
    result = cli(["ask", "hi"], {**ready_env, "LAKEBASE_AUTOSCALING_PROJECT": "p"})
    assert result.returncode == 2
    assert "set LAKEBASE_AUTOSCALING_BRANCH" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_memory_required_without_tables_is_one_line_exit_1(subprocess_env: dict[str, str]) -> None:
    result = cli(["ask", "hi"], {**subprocess_env, "MEMORY_REQUIRED": "1"})
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("memory-agent: error: memory unavailable: tables checkpoint_migrations")
    assert "Fix: run `python setup_lakebase.py`" in line


def test_missing_tables_still_answers_with_a_warning(subprocess_env: dict[str, str]) -> None:
    result = cli(["ask", "hello", "--thread", "w"], subprocess_env)
    assert result.returncode == 0
    assert result.stdout.startswith("Hello!")
    assert "memory unavailable" in result.stderr and "Traceback" not in result.stderr
    threads = cli(["threads"], subprocess_env)
    assert threads.returncode == 1 and "memory unavailable" in threads.stderr


def test_ask_never_imports_databricks_or_mlflow_on_the_default_path(
    ready_env: dict[str, str],
) -> None:
    # These imports cost seconds each; the offline/embedded path must not pay for them.
    probe = (
        "import sys; from cli.main import main; code = main(['ask', 'hello', '--thread', 'imports']); "
        "heavy = sorted(m for m in ('mlflow', 'databricks_langchain', 'databricks.sdk', 'langchain_openai', 'openai') "
        "if m in sys.modules); print(code, heavy)"
    )
    result = run(["-c", probe], ready_env)
    assert result.stdout.strip().splitlines()[-1] == "0 []", result.stdout + result.stderr


def test_browsing_threads_needs_no_working_model(ready_env: dict[str, str]) -> None:
    cli(["ask", "My name is Ada.", "--thread", "kept"], ready_env)
    broken_model = {**ready_env, "AGENT_MODEL": "openai:gpt-4o-mini", "OPENAI_API_KEY": ""}
    assert cli(["ask", "hi"], broken_model).returncode == 1  # a run does need the model
    listing = cli(["threads", "--json"], broken_model)
    assert listing.returncode == 0, listing.stderr
    assert [t["thread_id"] for t in json.loads(listing.stdout)] == ["kept"]
    assert cli(["history", "kept"], broken_model).returncode == 0


def test_no_continue_hint_when_nothing_is_saved(subprocess_env: dict[str, str]) -> None:
    result = cli(["ask", "hello"], subprocess_env)  # no tables: stateless
    assert result.returncode == 0
    assert "continue with" not in result.stderr
    chat = cli(["chat"], subprocess_env, stdin="hello\n")
    assert "was not saved" in chat.stdout and "continue" not in chat.stdout
