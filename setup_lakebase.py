"""Create, verify and diagnose the agent's database wherever Postgres is configured.

    python setup_lakebase.py                  create schema, vector extension, every table
    python setup_lakebase.py --grant ROLE     ... and grant ROLE exactly what the agent needs
    python setup_lakebase.py --check          report what is there; exit 1 if anything is missing
    python setup_lakebase.py --check --as ROLE   ... and whether ROLE can run the agent
    python setup_lakebase.py --dry-run [--grant ROLE]   print the SQL that would run; change nothing
    python setup_lakebase.py --memory-store [--grant SP]   create the managed memory store
                                              (DATABRICKS_MEMORY_STORE) and print the GRANTs to run

The target comes from the same environment variables as the agent (Lakebase,
DATABASE_URL / PG*, or the embedded default); LAKEBASE_AGENT_MEMORY_SCHEMA puts
every table in that schema. Run it as the identity that should own the tables
(on Lakebase: a member of databricks_superuser, or the instance's creator).

Every step looks before it acts, so a second run changes nothing; the whole
run holds the agent's setup advisory lock, so two processes at once do the
work once. Table DDL comes from LangGraph's own migrations (PostgresSaver,
PostgresStore), run on an autocommit connection because some of them are
``CREATE INDEX CONCURRENTLY``, which Postgres refuses inside a transaction.
On plain Postgres the Lakebase-only step (creating a Databricks identity's
role with databricks_auth) is skipped, and the output says so.

With MEMORY_BACKEND=managed, long-term memory lives in a Databricks managed
memory store (store.managed): ``--memory-store`` creates it through the
Databricks SDK (CREATE MEMORY STORE on the schema) unless it exists and prints
the Unity Catalog GRANTs the app's service principal needs; ``--check`` also
reports whether the store exists and can be read, and what that backend does
not do. Checkpoints stay in Postgres either way, so the tables are still needed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

STORE_TABLES = ("store_migrations", "store", "vector_migrations", "store_vectors")
# LangGraph's store tables (shared with DatabricksStore), our revision history and the
# queue of turns waiting for fact extraction.
MEMORY_TABLES = (*STORE_TABLES, "memory_revisions", "memory_extractions")
IDENTITY_TYPES = ("SERVICE_PRINCIPAL", "USER", "GROUP")


class SetupError(RuntimeError):
    """A step cannot be done as asked; ``str()`` is one line naming the fix."""


@dataclass
class CheckReport:
    """What ``--check`` found; ``ok`` is True only when nothing blocking is missing."""

    target: str
    connected: bool = False
    server_version: str | None = None
    vector_version: str | None = None
    vector_available: bool = False
    schema: str | None = None
    tables_present: list[str] = field(default_factory=list)
    tables_missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    role: str | None = None
    role_gaps: list[Any] = field(default_factory=list)  # database.grants.Gap

    @property
    def ok(self) -> bool:
        return (
            self.connected and not self.problems and not any(gap.blocking for gap in self.role_gaps)
        )

    def lines(self) -> list[str]:
        mark = {True: "ok  ", False: "FAIL"}
        out = [f"target:     {self.target}", f"[{mark[self.connected]}] connect"]
        if self.connected:
            out.append(f"[ok  ] server: {self.server_version}")
            if self.schema:
                out.append(f"[ok  ] schema {self.schema}")
            if self.vector_version:
                out.append(f"[ok  ] pgvector {self.vector_version}")
            for table in self.tables_present:
                out.append(f"[ok  ] table {table}")
            for table in self.tables_missing:
                out.append(f"[FAIL] table {table} is missing")
        out.extend(f"  fix: {problem}" for problem in self.problems)
        if self.role and self.connected:
            if not any(gap.blocking for gap in self.role_gaps):
                out.append(f"[ok  ] role {self.role} can run the agent")
            for gap in self.role_gaps:
                out.append(f"[{'FAIL' if gap.blocking else 'note'}] {gap.problem}")
                out.append(f"  fix: {gap.fix}")
        out.append("all good" if self.ok else "NOT READY: see the fixes above")
        return out


def required_tables() -> list[str]:
    """Every table the agent uses: the checkpointer's, the tool-call ledger, the store's,
    the memory revision history and extraction queue, and the server's background runs'."""
    from checkpointing import RUN_TABLES
    from serving.events import BACKGROUND_TABLES

    return [*RUN_TABLES, *MEMORY_TABLES, *BACKGROUND_TABLES]


def _store_for_setup(conn: Any, dims: int) -> Any:
    """The agent's MemoryStore, configured only to create its tables (it never embeds here)."""
    from langchain_core.embeddings import Embeddings

    from store.postgres import MemoryStore

    class SetupOnly(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise RuntimeError("setup does not embed")

        def embed_query(self, text: str) -> list[float]:
            raise RuntimeError("setup does not embed")

    return MemoryStore(conn, embeddings=SetupOnly(), dims=dims)


def _current_schema(conn: Any, schema: str | None) -> str:
    if schema:
        return schema
    return str(conn.execute("SELECT current_schema() AS s").fetchone()["s"] or "public")


def _migration_versions(conn: Any) -> dict[str, int]:
    versions = {}
    for table in ("checkpoint_migrations", "store_migrations", "vector_migrations"):
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS e", (table,)).fetchone()
        if exists["e"]:
            row = conn.execute(f"SELECT coalesce(max(v), -1) AS v FROM {table}").fetchone()
            versions[table] = row["v"]
    return versions


@contextmanager
def _locked(pool: Any) -> Iterator[Any]:
    from checkpointing.saver import setup_lock

    with setup_lock(pool) as conn:
        if not conn.autocommit:  # CREATE INDEX CONCURRENTLY cannot run in a transaction
            conn.autocommit = True
        yield conn


def _create_tables(conn: Any, schema: str | None, dims: int) -> list[str]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import sql

    from checkpointing import missing_tables
    from checkpointing.ownership import CREATE_OWNERS_SQL
    from checkpointing.tool_ledger import CREATE_LEDGER_SQL
    from serving.events import setup_background_tables

    done: list[str] = []
    if (
        schema
        and not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    ):
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        done.append(f"schema {schema}")
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        done.append("extension vector")
    tables_before = set(missing_tables(_SingleConnection(conn), required_tables()))
    versions_before = _migration_versions(conn)
    PostgresSaver(conn).setup()
    conn.execute(CREATE_LEDGER_SQL)
    conn.execute(CREATE_OWNERS_SQL)
    setup_background_tables(conn)
    # The memory store's setup: a table made for another embedding dimension is an
    # error before anything changes; then LangGraph's migrations and our additions.
    _store_for_setup(conn, dims).setup()
    versions_after = _migration_versions(conn)
    tables_after = set(missing_tables(_SingleConnection(conn), required_tables()))
    done.extend(
        f"table {name}" for name in required_tables() if name in tables_before - tables_after
    )
    applied = sum(v - versions_before.get(t, -1) for t, v in versions_after.items())
    if applied:
        done.append(f"{applied} migration(s)")
    return done


class _SingleConnection:
    """A pool-shaped wrapper so pool helpers run on the connection holding the lock."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        yield self._conn


def setup_all(pool: Any, *, schema: str | None = None, dims: int | None = None) -> list[str]:
    """Create schema, extension and all tables on ``pool``; returns what was created."""
    with _locked(pool) as conn:
        return _create_tables(conn, schema, dims or _dims(None, None))


def grant(
    pool: Any,
    role: str,
    *,
    schema: str | None = None,
    identity_type: str = "SERVICE_PRINCIPAL",
) -> tuple[list[str], list[str]]:
    """Create ``role`` on Lakebase if needed and grant it what the agent needs.

    Returns (statements run, notes). Raises ``SetupError`` when the role does
    not exist on plain Postgres (where we cannot create a Databricks identity).
    """
    import psycopg

    from database.grants import is_lakebase, plan_grants, plan_lakebase_role, role_exists

    ran: list[str] = []
    notes: list[str] = []
    with _locked(pool) as conn:
        if is_lakebase(conn):
            for step in plan_lakebase_role(conn, role, identity_type):
                # Someone outside our lock may have created the role since we looked.
                with suppress(psycopg.errors.DuplicateObject):
                    conn.execute(step.statement)
                ran.append(step.render(conn))
        else:
            notes.append(
                "plain Postgres: skipped creating the role with databricks_auth (Lakebase only)"
            )
            if not role_exists(conn, role):
                raise SetupError(
                    f"role {role} does not exist; on plain Postgres create it first "
                    f'(CREATE ROLE "{role}" LOGIN PASSWORD ...), then run --grant again'
                )
        effective_schema = _current_schema(conn, schema)
        for step in plan_grants(conn, role, effective_schema, required_tables()):
            conn.execute(step.statement)
            ran.append(step.render(conn))
    return ran, notes


def check(
    pool: Any, target: str, *, role: str | None = None, schema: str | None = None
) -> CheckReport:
    """Inspect the database behind ``pool`` (and ``role``'s privileges) without changing anything."""
    from checkpointing import missing_tables
    from database.grants import find_gaps

    report = CheckReport(target=target, connected=True, role=role, schema=schema)
    with pool.connection() as conn:
        report.server_version = conn.execute("SHOW server_version").fetchone()["server_version"]
        installed = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        available = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
        schema_exists = (
            not schema
            or conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        )
    if not schema_exists:
        report.problems.append(f"schema {schema} does not exist: run `python setup_lakebase.py`")
        report.schema = None
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
    if role:
        with pool.connection() as conn:
            report.role_gaps = find_gaps(
                conn, role, _current_schema(conn, schema), required_tables()
            )
    return report


class _Recorder:
    """Stands in for a cursor: answers the migration-version queries from the real
    database and records every other statement, so LangGraph's own setup code
    tells us exactly what it would run."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statements: list[str] = []
        self._row: Any = None

    def execute(self, query: Any, params: Any = None) -> _Recorder:
        import psycopg

        text = query if isinstance(query, str) else query.as_string(self.conn)
        words = text.split()
        if words[:3] == ["SELECT", "v", "FROM"]:
            table = words[3]
            exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL AS e", (table,))
            self._row = self.conn.execute(text).fetchone() if exists.fetchone()["e"] else None
            return self
        if words[:5] == ["CREATE", "TABLE", "IF", "NOT", "EXISTS"] and len(words) > 5:
            # The version table itself: only worth printing when it does not exist yet.
            name = words[5].rstrip("(")
            exists = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL AS e", (name,))
            if name.endswith("_migrations") and exists.fetchone()["e"]:
                return self
        if params is not None:
            text = psycopg.ClientCursor(self.conn).mogrify(text, params)
        self.statements.append(text.strip().rstrip(";"))
        return self

    def fetchone(self) -> Any:
        return self._row


def plan_sql(
    pool: Any,
    *,
    schema: str | None = None,
    dims: int | None = None,
    role: str | None = None,
    identity_type: str = "SERVICE_PRINCIPAL",
) -> list[str]:
    """The SQL a real run would execute now, in order (nothing is changed)."""
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg import sql

    from database.grants import is_lakebase, plan_grants, plan_lakebase_role

    out: list[str] = []
    with pool.connection() as conn:
        if (
            schema
            and not conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
        ):
            out.append(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                .format(sql.Identifier(schema))
                .as_string(conn)
            )
        if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            out.append("CREATE EXTENSION IF NOT EXISTS vector")
        recorder = _Recorder(conn)

        @contextmanager
        def recording_cursor(*_: Any, **__: Any) -> Iterator[_Recorder]:
            yield recorder

        saver = PostgresSaver(conn)
        saver._cursor = recording_cursor  # type: ignore[method-assign, assignment]
        saver.setup()
        out.extend(recorder.statements)
        recorder.statements.clear()
        from checkpointing.tool_ledger import CREATE_LEDGER_SQL, LEDGER_TABLE

        if not conn.execute("SELECT to_regclass(%s) AS t", (LEDGER_TABLE,)).fetchone()["t"]:
            out.append(CREATE_LEDGER_SQL.strip().rstrip(";"))
        from checkpointing.ownership import CREATE_OWNERS_SQL, OWNERS_TABLE

        if not conn.execute("SELECT to_regclass(%s) AS t", (OWNERS_TABLE,)).fetchone()["t"]:
            out.append(CREATE_OWNERS_SQL.strip().rstrip(";"))
        from serving.events import BACKGROUND_TABLES, CREATE_BACKGROUND_SQL

        if not all(
            conn.execute("SELECT to_regclass(%s) AS t", (name,)).fetchone()["t"]
            for name in BACKGROUND_TABLES
        ):
            out.extend(" ".join(statement.split()) for statement in CREATE_BACKGROUND_SQL)
        # The store's setup is LangGraph's migrations (recorded, with the store's own
        # index configuration) followed by the store's additions, of which we print
        # the ones whose objects do not exist yet.
        from langgraph.store.postgres import PostgresStore

        store = _store_for_setup(conn, dims or _dims(None, None))
        stock = PostgresStore(conn, index=store.index_config)
        stock._cursor = recording_cursor  # type: ignore[method-assign, assignment]
        stock.setup()
        out.extend(recorder.statements)
        out.extend(_pending_store_additions(conn, store))
        if role:
            if is_lakebase(conn):
                out.extend(
                    step.render(conn) for step in plan_lakebase_role(conn, role, identity_type)
                )
            else:
                out.append("-- plain Postgres: creating the role with databricks_auth is skipped")
            out.extend(
                step.render(conn)
                for step in plan_grants(
                    conn, role, _current_schema(conn, schema), required_tables()
                )
            )
    return out


def _pending_store_additions(conn: Any, store: Any) -> list[str]:
    type_row = conn.execute(store._embedding_type_sql()).fetchone()
    embedding_type = type_row["type"] if type_row else f"vector({store.dims})"
    pending = []
    for statement in store._additions_ddl(embedding_type):
        words = statement.split()
        if words[:2] == ["ALTER", "TABLE"]:  # ALTER TABLE t ADD COLUMN IF NOT EXISTS c ...
            table, column = words[2], words[8]
            exists = conn.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
                "AND NOT attisdropped",
                (table, column),
            ).fetchone()
        else:  # CREATE INDEX IF NOT EXISTS name ...
            exists = conn.execute(
                "SELECT 1 WHERE to_regclass(%s) IS NOT NULL", (words[5],)
            ).fetchone()
        if not exists:
            pending.append(" ".join(words))
    return pending


def _schema_of(target: Any) -> str | None:
    return getattr(target, "schema", None)


def _dims(settings: Any, requested: int | None) -> int:
    """Vector size for store_vectors: asked for, else the configured embeddings', else the
    store's default embeddings'."""
    if requested:
        return requested
    from store.config import MemorySettings

    memory = getattr(settings, "memory", None) or MemorySettings()
    return int(memory.embeddings.resolved_dims)


def _check_managed(settings: Any) -> bool:
    """With MEMORY_BACKEND=managed, report the managed memory store; True when usable."""
    if settings.memory.backend != "managed":
        return True
    from store.managed import managed_health

    health = managed_health(settings.memory.managed_store)
    print("\n".join(health.lines()))
    return health.ok


def _memory_store(principal: str | None) -> int:
    """--memory-store: create the managed store unless it exists; print the grants."""
    from graph.settings import Settings, SettingsError
    from store.config import InvalidStoreName, parse_store_name
    from store.managed import ManagedMemoryError, ensure_store, grant_statements

    try:
        name = Settings.from_env().memory.managed_store
        store = parse_store_name(name)
    except (SettingsError, InvalidStoreName) as exc:
        print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        created = ensure_store(name)
    except ManagedMemoryError as exc:
        print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # no workspace configured, unreachable host: one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"setup_lakebase.py: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1
    print(f"memory store {store.full_name}: {'created' if created else 'already exists'}")
    print("-- run as the store's owner (SQL editor or notebook) so the agent can use it:")
    print("\n".join(grant_statements(store, principal or "<principal>")))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 all good, 1 not ready or failed, 2 bad usage)."""
    from graph.settings import load_env_file

    load_env_file()
    parser = argparse.ArgumentParser(prog="setup_lakebase.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="report what is there and what is missing; change nothing",
    )
    parser.add_argument(
        "--as",
        dest="as_role",
        metavar="ROLE",
        help="with --check: also verify ROLE's privileges (e.g. the app's service principal)",
    )
    parser.add_argument(
        "--grant",
        metavar="SP_CLIENT_ID",
        help="create this identity's Postgres role (Lakebase) and grant what the agent needs",
    )
    parser.add_argument(
        "--identity-type",
        choices=IDENTITY_TYPES,
        default="SERVICE_PRINCIPAL",
        help="what --grant names on Lakebase (default SERVICE_PRINCIPAL)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the SQL; change nothing")
    parser.add_argument(
        "--embedding-dims",
        type=int,
        metavar="N",
        help="vector size of store_vectors (default: the configured embeddings')",
    )
    parser.add_argument(
        "--memory-store",
        action="store_true",
        help="create the managed memory store DATABRICKS_MEMORY_STORE (if missing) and print "
        "the GRANTs for --grant (or <principal>); touches no database",
    )
    args = parser.parse_args(argv)
    if args.memory_store:
        return _memory_store(args.grant)
    if args.as_role and not args.check:
        parser.error("--as goes with --check")
    if args.check and (args.grant or args.dry_run):
        parser.error("--check changes nothing; use it without --grant / --dry-run")

    from database import DatabaseUnavailable, open_database
    from graph.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 2
    target = settings.database.describe()
    schema = _schema_of(settings.database)
    dims = _dims(settings, args.embedding_dims)
    try:
        with open_database(settings.database) as database:
            if args.check:
                report = check(database.pool, target, role=args.as_role, schema=schema)
                print("\n".join(report.lines()))
                managed_ok = _check_managed(settings)
                return 0 if report.ok and managed_ok else 1
            if args.dry_run:
                statements = plan_sql(
                    database.pool,
                    schema=schema,
                    dims=dims,
                    role=args.grant,
                    identity_type=args.identity_type,
                )
                print(f"-- target: {target}")
                print(
                    "\n".join(f"{s};" if not s.startswith("--") else s for s in statements)
                    if statements
                    else "-- nothing to do: everything is in place"
                )
                return 0
            created = setup_all(database.pool, schema=schema, dims=dims)
            print(f"target: {target}")
            print(
                "created: " + ", ".join(created)
                if created
                else "nothing to do: every table already exists"
            )
            if args.grant:
                ran, notes = grant(
                    database.pool, args.grant, schema=schema, identity_type=args.identity_type
                )
                for note in notes:
                    print(f"note: {note}")
                print(f"granted {args.grant}: " + ("; ".join(ran) if ran else "nothing to do"))
            return 0
    except DatabaseUnavailable as exc:
        if args.check:
            print("\n".join(CheckReport(target=target, problems=[f"{exc}"]).lines()))
        else:
            print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 1
    except SetupError as exc:
        print(f"setup_lakebase.py: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line for the operator; the type names the failure
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"setup_lakebase.py: error: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
