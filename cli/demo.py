"""`make demo`: the agent's memory, shown with real processes on the embedded database.

Each turn runs as its own `memory-agent` process, as a user would type it, so
what carries over between turns is only what Postgres kept. Nothing here needs
a network, keys or Docker: the embedded PostgreSQL and the offline model.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import psycopg
from psycopg import sql

from database import open_database
from database.targets import with_database
from graph.settings import Settings


def _say(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m", flush=True)


def _run(args: list[str], env: dict[str, str] | None = None) -> None:
    """Run ``memory-agent ARGS`` in a new process and echo the command and its output."""
    print(f"$ memory-agent {' '.join(shlex.quote(a) for a in args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env or os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in result.stdout.splitlines():
        print(f"  {line}")
    for line in result.stderr.splitlines():
        print(f"  [stderr] {line}")
    if result.returncode != 0:
        raise SystemExit(f"demo step failed (exit {result.returncode})")


def show_thread_memory(run_id: str) -> None:
    thread = f"demo-{run_id}"
    _say("1. Short-term memory: two turns of one thread, each in its own process")
    _run(["ask", "My name is Ada and my favourite colour is teal.", "--thread", thread])
    _run(["ask", "What is my favourite colour?", "--thread", thread])
    _say("2. Another thread sees none of it")
    _run(["ask", "What is my favourite colour?", "--thread", f"{thread}-other"])
    _say("3. The model calls a tool; the call and its result are checkpointed")
    _run(["ask", "What time is it?", "--thread", thread])
    _run(["history", thread])


def show_fallback(admin_url: str, run_id: str) -> None:
    _say("7. Without tables the agent still answers, statelessly, and says how to fix it")
    scratch = f"demo_scratch_{run_id.replace('-', '_')}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    try:
        env = {**os.environ, "DATABASE_URL": with_database(admin_url, scratch)}
        _run(["ask", "Hello!", "--thread", "scratch"], env)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch))
            )


def show_long_term_memory(run_id: str) -> None:
    user, other = f"ada-{run_id}", f"bob-{run_id}"
    _say("5. Long-term memory: saved in one thread, recalled in another, only for that user")
    _run(
        [
            "ask",
            "Remember that my favourite tea is oolong.",
            "--thread",
            f"lt-{run_id}-1",
            "--user",
            user,
        ]
    )
    _run(["ask", "What do you know about me?", "--thread", f"lt-{run_id}-2", "--user", user])
    _run(["ask", "What do you know about me?", "--thread", f"lt-{run_id}-3", "--user", other])
    _run(["memories", "list", "--user", user])
    # A new value replaces the old one (no rival memory); the old one stays in the history.
    _run(["ask", "My favourite tea is now sencha.", "--thread", f"lt-{run_id}-4", "--user", user])
    _run(["memories", "history", "--user", user])


def show_approval(run_id: str) -> None:
    user, thread = f"ada-{run_id}", f"approve-{run_id}"
    _say("6. Deleting a memory pauses for approval; another process resumes it")
    _run(["ask", "Forget my favourite tea.", "--thread", thread, "--user", user])
    _run(["pending"])
    _run(["resume", thread, "--approve"])
    _run(["memories", "list", "--user", user])


STEPS: list[Callable[..., None]] = [show_thread_memory, show_long_term_memory, show_approval]


def main() -> int:
    """Run the demo; returns the exit code."""
    started = time.perf_counter()
    settings = Settings.from_env()
    if not settings.is_embedded:
        print(
            f"note: the demo uses {settings.database.describe()} as configured in the environment"
        )
    print("Lakebase Memory Agent demo")
    print(f"model:  {settings.model.describe()}")
    print(f"memory: {settings.database.describe()}")
    run_id = uuid.uuid4().hex[:8]
    # Holding the database open keeps the embedded server up between the child
    # processes (each joins it in ~0.2 s instead of starting it).
    with open_database(settings.database) as database:
        from setup_lakebase import setup_all

        setup_all(database.pool, dims=settings.memory.embeddings.resolved_dims)
        for step in STEPS:
            step(run_id)
        if database.embedded is not None:
            show_fallback(database.embedded.admin_url(), run_id)
    _say(f"Done in {time.perf_counter() - started:.1f} s.")
    print("Explore: memory-agent threads | memory-agent history THREAD | memory-agent chat")
    return 0


if __name__ == "__main__":
    sys.exit(main())
