"""Create, verify and diagnose the agent's tables wherever Postgres is configured.

    python setup_lakebase.py           create the vector extension and every table (idempotent)
    python setup_lakebase.py --check   report connectivity, versions and tables; exit 1 if anything is missing

The target comes from the same environment variables as the agent (Lakebase,
DATABASE_URL / PG*, or the embedded default). Every step is safe to run twice
and from two processes at once (migrations run under an advisory lock).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CheckReport:
    """What ``--check`` found; ``ok`` is True only when nothing is missing."""

    target: str
    connected: bool = False
    server_version: str | None = None
    vector_version: str | None = None
    vector_available: bool = False
    tables_present: list[str] = field(default_factory=list)
    tables_missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.connected and not self.problems

    def lines(self) -> list[str]:
        mark = {True: "ok  ", False: "FAIL"}
        out = [f"target:     {self.target}", f"[{mark[self.connected]}] connect"]
        if self.connected:
            out.append(f"[ok  ] server: {self.server_version}")
            if self.vector_version:
                out.append(f"[ok  ] pgvector {self.vector_version}")
            for table in self.tables_present:
                out.append(f"[ok  ] table {table}")
            for table in self.tables_missing:
                out.append(f"[FAIL] table {table} is missing")
        out.extend(f"  fix: {problem}" for problem in self.problems)
        out.append("all good" if self.ok else "NOT READY: see the fixes above")
        return out


def required_tables() -> list[str]:
    """Every table the agent uses."""
    from checkpointing import CHECKPOINT_TABLES
    from store.postgres import STORE_TABLES

    return [*CHECKPOINT_TABLES, *STORE_TABLES]


def setup_all(pool: Any, memory: Any = None) -> list[str]:
    """Create the extension and all tables on ``pool``; returns what was created.

    ``memory`` (MemorySettings) fixes the vector dimension of the memory store;
    by default the offline embedder's.
    """
    from checkpointing import missing_tables, setup_checkpoint_tables
    from checkpointing.saver import setup_lock
    from store.config import MemorySettings
    from store.postgres import make_memory_store

    before = set(missing_tables(pool, required_tables()))
    created = []
    with setup_lock(pool) as conn:  # one process at a time creates the extension
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            created.append("extension vector")
    setup_checkpoint_tables(pool)
    make_memory_store(pool, memory or MemorySettings()).setup()
    created.extend(
        f"table {name}" for name in sorted(before - set(missing_tables(pool, required_tables())))
    )
    return created


def check(pool: Any, target: str) -> CheckReport:
    """Inspect the database behind ``pool`` without changing anything."""
    from checkpointing import missing_tables

    report = CheckReport(target=target, connected=True)
    with pool.connection() as conn:
        report.server_version = conn.execute("SHOW server_version").fetchone()["server_version"]
        installed = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    report.vector_version = installed["extversion"] if installed else None
    report.vector_available = bool(available)
    if not installed:
        report.problems.append(
            "the vector extension is not installed: run `python setup_lakebase.py` "
            "(on managed Postgres it needs a role allowed to CREATE EXTENSION)"
            if available
            else "this server has no pgvector; install pgvector 0.8+ on it"
        )
    missing = missing_tables(pool, required_tables())
    report.tables_missing = missing
    report.tables_present = [name for name in required_tables() if name not in missing]
    if missing:
        report.problems.append(
            f"{len(missing)} table(s) missing: run `python setup_lakebase.py` to create them"
        )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 all good, 1 not ready or failed, 2 bad usage)."""
    parser = argparse.ArgumentParser(prog="setup_lakebase.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="report what is there and what is missing; change nothing",
    )
    args = parser.parse_args(argv)

    from database import DatabaseUnavailable, open_database
    from graph.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 2
    target = settings.database.describe()
    try:
        with open_database(settings.database) as database:
            if args.check:
                report = check(database.pool, target)
                print("\n".join(report.lines()))
                return 0 if report.ok else 1
            created = setup_all(database.pool, settings.memory)
            print(f"target: {target}")
            print(
                "created: " + ", ".join(created)
                if created
                else "nothing to do: every table already exists"
            )
            return 0
    except DatabaseUnavailable as exc:
        if args.check:
            print("\n".join(CheckReport(target=target, problems=[f"{exc}"]).lines()))
        else:
            print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line for the operator; the type names the failure
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"setup_lakebase.py: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
