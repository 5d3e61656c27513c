"""One call that says whether memory works: backend, server, tables, pool and credentials.

``check_health(database, required=..., optional=...)`` inspects an open
``Database``; ``target_health(target, ...)`` opens the target first and turns
"cannot connect" into a report instead of an exception, which is what a
status command or a readiness probe wants. Table names come from the caller
(checkpointing and store own them); nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from database.connect import Database, aopen_database, open_database
from database.errors import DatabaseUnavailable
from database.targets import DatabaseTarget, EmbeddedTarget, LakebaseTarget

# serving.events' tables (background runs), reported apart from long-term memory's.
BACKGROUND_PREFIX = "background_"
TABLES_SQL = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NOT NULL"


@dataclass
class Health:
    """A snapshot of the memory backend; ``memory_available`` is the one-word answer."""

    backend: str
    """lakebase, postgres or embedded."""
    target: str
    connected: bool = False
    server_version: str | None = None
    tables_present: list[str] = field(default_factory=list)
    tables_missing: list[str] = field(default_factory=list)
    optional_missing: list[str] = field(default_factory=list)
    pool: dict[str, int] = field(default_factory=dict)
    """psycopg_pool ``get_stats()``: pool_size, pool_available, requests_waiting, ..."""
    credentials: dict[str, int] | None = None
    """Lakebase only: OAuth tokens minted and refused since the pool opened."""
    problem: str | None = None

    @property
    def memory_available(self) -> bool:
        return self.connected and not self.tables_missing

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "memory_available": self.memory_available}

    def lines(self) -> list[str]:
        out = [f"backend:   {self.backend} ({self.target})"]
        if not self.connected:
            out.append(f"connected: no: {self.problem}")
        else:
            out.append(f"server:    PostgreSQL {self.server_version}")
            out.append(
                f"tables:    {len(self.tables_present)} present"
                + (f", missing: {', '.join(self.tables_missing)}" if self.tables_missing else "")
            )
            background = [t for t in self.optional_missing if t.startswith(BACKGROUND_PREFIX)]
            long_term = [t for t in self.optional_missing if t not in background]
            if long_term:
                out.append(f"long-term: missing {', '.join(long_term)}")
            if background:
                out.append(
                    f"background runs: missing {', '.join(background)} "
                    "(the server creates them on an embedded database; else setup_lakebase.py)"
                )
            stats = self.pool
            out.append(
                f"pool:      {stats.get('pool_size', 0)} open, "
                f"{stats.get('pool_available', 0)} idle, "
                f"{stats.get('requests_waiting', 0)} waiting, max {stats.get('pool_max', '?')}"
            )
            if self.credentials is not None:
                out.append(
                    f"tokens:    {self.credentials['minted']} minted, "
                    f"{self.credentials['refused']} refused"
                )
        out.append(f"memory:    {'available' if self.memory_available else 'unavailable'}")
        if self.memory_available is False and self.connected and self.tables_missing:
            if self.backend == "embedded":  # it creates its tables on its first run
                out.append(
                    "fix:       none needed: the first `memory-agent ask` or `chat` creates them"
                )
            else:
                out.append("fix:       run `python setup_lakebase.py`")
        return out


def backend_name(target: DatabaseTarget) -> str:
    if isinstance(target, LakebaseTarget):
        return "lakebase"
    if isinstance(target, EmbeddedTarget):
        return "embedded"
    return "postgres"


def _base(database: Database) -> Health:
    return Health(backend=backend_name(database.target), target=database.describe())


def _observe(health: Health, database: Database) -> Health:
    # Taken after the queries, so the figures include the connection they used.
    health.pool = dict(database.pool.get_stats())
    lakebase = getattr(database.pool, "lakebase", None)
    if lakebase is not None:
        health.credentials = asdict(lakebase.credential_stats)
    return health


def _fill(
    health: Health,
    version: str,
    present: set[str],
    required: Sequence[str],
    optional: Sequence[str],
) -> Health:
    health.connected = True
    health.server_version = version
    health.tables_present = [t for t in (*required, *optional) if t in present]
    health.tables_missing = [t for t in required if t not in present]
    health.optional_missing = [t for t in optional if t not in present]
    return health


def check_health(
    database: Database, *, required: Sequence[str], optional: Sequence[str] = ()
) -> Health:
    """Inspect an open sync ``database``; ``required`` tables decide memory availability."""
    health = _base(database)
    try:
        with database.pool.connection() as conn:
            version = conn.execute("SHOW server_version").fetchone()["server_version"]
            rows = conn.execute(TABLES_SQL, (list((*required, *optional)),)).fetchall()
    except Exception as exc:  # any failure to query is the answer, not a crash
        health.problem = _first_line(exc)
        return _observe(health, database)
    health = _fill(health, version, {r["name"] for r in rows}, required, optional)
    return _observe(health, database)


async def acheck_health(
    database: Database, *, required: Sequence[str], optional: Sequence[str] = ()
) -> Health:
    """Async twin of ``check_health`` for a ``Database`` with an async pool."""
    health = _base(database)
    try:
        async with database.pool.connection() as conn:
            version = (await (await conn.execute("SHOW server_version")).fetchone())[
                "server_version"
            ]
            cursor = await conn.execute(TABLES_SQL, (list((*required, *optional)),))
            rows = await cursor.fetchall()
    except Exception as exc:
        health.problem = _first_line(exc)
        return _observe(health, database)
    health = _fill(health, version, {r["name"] for r in rows}, required, optional)
    return _observe(health, database)


def target_health(
    target: DatabaseTarget,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    workspace_client: Any = None,
) -> Health:
    """Open ``target``, report on it, close it; an unreachable target is a report too."""
    try:
        with open_database(target, workspace_client=workspace_client, min_size=1) as database:
            return check_health(database, required=required, optional=optional)
    except DatabaseUnavailable as exc:
        return Health(backend=backend_name(target), target=target.describe(), problem=str(exc))


async def atarget_health(
    target: DatabaseTarget,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    workspace_client: Any = None,
) -> Health:
    """Async twin of ``target_health``."""
    try:
        async with aopen_database(target, workspace_client=workspace_client) as database:
            return await acheck_health(database, required=required, optional=optional)
    except DatabaseUnavailable as exc:
        return Health(backend=backend_name(target), target=target.describe(), problem=str(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
