"""What the benchmarks share: a throw-away database on the embedded server, timing, reports."""

from __future__ import annotations

import json
import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from database.targets import with_database

RESULTS_DIRECTORY = Path(__file__).resolve().parent / "results"


def bench_home() -> Path:
    """Where the benchmark's embedded server keeps its data (BENCH_HOME, else under results/)."""
    return Path(os.environ.get("BENCH_HOME") or RESULTS_DIRECTORY / "pg").resolve()


@contextmanager
def bench_database(url: str | None = None) -> Iterator[str]:
    """Yield the URL of a fresh database (vector extension installed), dropped afterwards.

    ``url`` (or DATABASE_URL) points at a server to use; by default the embedded
    server under ``bench_home()`` is started and stopped.
    """
    from database.embedded import EmbeddedPostgres

    url = url or os.environ.get("DATABASE_URL")
    server = None
    if url is None:
        server = EmbeddedPostgres(bench_home(), database="bench_admin")
        url = server.start()
    name = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        database_url = with_database(url, name)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        try:
            yield database_url
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    finally:
        if server is not None:
            server.stop()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (0 < fraction <= 1) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def write_report(name: str, markdown: str, data: dict[str, Any]) -> Path:
    """Write results/<name>.md and results/<name>.json; return the markdown path."""
    RESULTS_DIRECTORY.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIRECTORY / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    path = RESULTS_DIRECTORY / f"{name}.md"
    path.write_text(markdown)
    return path
