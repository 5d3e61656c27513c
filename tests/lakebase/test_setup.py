"""setup_lakebase.py against a fake Lakebase, run as real OS processes.

The script talks to the REST stand-in through the real databricks-sdk (env:
DATABRICKS_HOST / DATABRICKS_TOKEN / LAKEBASE_INSTANCE_NAME), creates the
service principal's role with the databricks_auth stand-in, and grants it.
Then we connect *as that role* and check what it can and cannot do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from tests.conftest import AGENT_ENV_VARS
from tests.lakebase_harness import LAKEBASE_PORT, FakeLakebase

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "agent_memory"
DIMS = 8


def _new_database(fake: FakeLakebase) -> str:
    name = f"db_{uuid.uuid4().hex[:10]}"
    fake.postgres.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    fake.postgres.execute(
        sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
            sql.Identifier(name), sql.Identifier(fake.user_name)
        )
    )
    # pgvector is not a trusted extension: on Lakebase it is there for the app's identity.
    fake.postgres.execute("CREATE EXTENSION vector", database=name)
    return name


def _env(
    fake: FakeLakebase, database: str, home: Path, schema: str | None = SCHEMA
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_VARS}
    env.update(
        DATABRICKS_HOST=fake.stand_in.url,
        DATABRICKS_TOKEN=fake.stand_in.pat,
        DATABRICKS_CONFIG_FILE=str(home / "no-databrickscfg"),
        LAKEBASE_INSTANCE_NAME="agent-memory",
        LAKEBASE_DATABASE_NAME=database,
        MEMORY_AGENT_HOME=str(home),
        AGENT_MODEL="offline",
    )
    if schema:
        env["LAKEBASE_AGENT_MEMORY_SCHEMA"] = schema
    return env


def _setup(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup_lakebase.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _connect_as(fake: FakeLakebase, role: str, database: str) -> psycopg.Connection[Any]:
    token = f"sp-token-{uuid.uuid4().hex}"
    fake.postgres.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(token))
    )
    conninfo = make_conninfo(
        host=fake.host,
        port=LAKEBASE_PORT,
        user=role,
        password=token,
        dbname=database,
        sslmode="require",
    )
    conn = psycopg.connect(conninfo, autocommit=True, row_factory=dict_row)
    conn.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(SCHEMA)))
    return conn


def _snapshot(fake: FakeLakebase, database: str) -> dict[str, Any]:
    """Everything setup could change: objects, indexes, privileges, migrations, roles."""
    with psycopg.connect(fake.postgres.admin_url(database)) as conn:
        queries = {
            "relations": "SELECT n.nspname, c.relname, c.relkind, c.relacl::text, "
            "pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
            "'information_schema', 'pg_toast') ORDER BY 1, 2",
            "columns": "SELECT table_schema, table_name, column_name, data_type FROM "
            "information_schema.columns WHERE table_schema NOT IN ('pg_catalog', "
            "'information_schema') ORDER BY 1, 2, 3",
            "schemas": "SELECT nspname, nspacl::text FROM pg_namespace ORDER BY 1",
            "default_acl": "SELECT defaclrole, defaclnamespace, defaclobjtype, "
            "defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3",
            "extensions": "SELECT extname, extversion FROM pg_extension ORDER BY 1",
            "roles": "SELECT rolname FROM pg_roles ORDER BY 1",
            "database_acl": "SELECT datacl::text FROM pg_database WHERE datname = current_database()",
        }
        snapshot = {name: conn.execute(q).fetchall() for name, q in queries.items()}
        for table in ("checkpoint_migrations", "store_migrations", "vector_migrations"):
            found = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f"{SCHEMA}.{table}",)
            ).fetchone()
            if found and found[0]:
                snapshot[table] = conn.execute(
                    sql.SQL("SELECT v FROM {} ORDER BY v").format(sql.Identifier(SCHEMA, table))
                ).fetchall()
    return snapshot


def _embed(texts: list[str]) -> list[list[float]]:
    return [[float((len(text) + i) % 5) for i in range(DIMS)] for text in texts]


def test_grant_then_the_role_runs_the_agent_and_nothing_more(
    fake_lakebase: FakeLakebase, tmp_path: Path
) -> None:
    database = _new_database(fake_lakebase)
    env = _env(fake_lakebase, database, tmp_path)
    sp = str(uuid.uuid4())  # a service principal's application id, as Lakebase names it

    before = _setup(["--check", "--as", sp], env)
    assert before.returncode == 1
    assert f"[FAIL] role {sp} does not exist" in before.stdout
    assert f"fix: python setup_lakebase.py --grant {sp}" in before.stdout

    done = _setup(["--grant", sp, "--embedding-dims", str(DIMS)], env)
    assert done.returncode == 0, done.stderr
    assert "schema agent_memory" in done.stdout and "table store_vectors" in done.stdout
    assert "databricks_create_role" in done.stdout
    assert "plain Postgres" not in done.stdout

    report = _setup(["--check", "--as", sp], env)
    assert report.returncode == 0, report.stdout
    assert f"[ok  ] role {sp} can run the agent" in report.stdout
    assert "[note]" not in report.stdout  # nothing beyond need either

    # Another application's data in another schema, and a table added after the grant.
    with psycopg.connect(fake_lakebase.agent_url(database=database), autocommit=True) as owner:
        owner.execute("CREATE SCHEMA other_app")
        owner.execute("CREATE TABLE other_app.secrets (v text)")
        owner.execute("CREATE TABLE agent_memory.added_later (v text)")

    with _connect_as(fake_lakebase, sp, database) as conn:
        # The agent's work: checkpoints and long-term memories, read and written.
        saver = PostgresSaver(conn)
        checkpoint = empty_checkpoint()
        config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
        saved = saver.put(config, checkpoint, {"step": 1}, {})
        saver.put_writes(saved, [("messages", "hi")], task_id="task-1")
        assert saver.get_tuple(saved).checkpoint["id"] == checkpoint["id"]
        saver.delete_thread("t1")
        store = PostgresStore(conn, index={"dims": DIMS, "embed": _embed})
        store.put(("user_memories", "alice"), "k1", {"text": "likes tea"})
        assert store.get(("user_memories", "alice"), "k1").value == {"text": "likes tea"}
        assert store.search(("user_memories", "alice"), query="tea")[0].key == "k1"
        store.delete(("user_memories", "alice"), "k1")
        # Default privileges reached the table created after the grant.
        conn.execute("INSERT INTO agent_memory.added_later VALUES ('ok')")

        forbidden = [
            "DROP TABLE checkpoints",
            "ALTER TABLE store ADD COLUMN sneaky int",
            "TRUNCATE checkpoint_writes",
            "CREATE TABLE agent_memory.mine (v int)",
            "SELECT * FROM other_app.secrets",
            "DROP SCHEMA agent_memory CASCADE",
        ]
        for statement in forbidden:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_setup_twice_and_from_two_processes_at_once_changes_nothing_the_second_time(
    fake_lakebase: FakeLakebase, tmp_path: Path
) -> None:
    database = _new_database(fake_lakebase)
    env = _env(fake_lakebase, database, tmp_path)
    sp = str(uuid.uuid4())
    args = ["--grant", sp, "--embedding-dims", str(DIMS)]

    processes = [
        subprocess.Popen(
            [sys.executable, "setup_lakebase.py", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    # Exactly one of them did the work; the other found it done.
    outputs = [out for _, out, _ in outcomes]
    assert sum("databricks_create_role" in out for out in outputs) == 1, outputs
    first = _snapshot(fake_lakebase, database)

    again = [_setup(args, env), _setup(args, env)]
    for result in again:
        assert result.returncode == 0, result.stderr
        assert "nothing to do: every table already exists" in result.stdout
        assert f"granted {sp}: nothing to do" in result.stdout
    assert _snapshot(fake_lakebase, database) == first

    dry = _setup(["--dry-run", *args], env)
    assert dry.returncode == 0 and "nothing to do" in dry.stdout


def test_dry_run_prints_the_sql_and_changes_nothing(
    fake_lakebase: FakeLakebase, tmp_path: Path
) -> None:
    database = _new_database(fake_lakebase)
    env = _env(fake_lakebase, database, tmp_path)
    before = _snapshot(fake_lakebase, database)
    dry = _setup(["--dry-run", "--grant", "sp-dry-run", "--embedding-dims", str(DIMS)], env)
    assert dry.returncode == 0, dry.stderr
    assert _snapshot(fake_lakebase, database) == before
    text = dry.stdout
    assert 'CREATE SCHEMA IF NOT EXISTS "agent_memory";' in text
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS checkpoints_thread_id_idx" in text
    assert f"embedding vector({DIMS})" in text
    assert "SELECT databricks_create_role('sp-dry-run', 'SERVICE_PRINCIPAL');" in text
    assert (
        'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "agent_memory"."checkpoints" '
        'TO "sp-dry-run";' in text
    )
    assert "ALTER DEFAULT PRIVILEGES" in text


def test_plain_postgres_skips_lakebase_steps_and_says_so(
    subprocess_env: dict[str, str], database_url: str
) -> None:
    role = "memory_app"
    missing = _setup(["--grant", role], subprocess_env)
    assert missing.returncode == 1
    assert f"role {role} does not exist; on plain Postgres create it first" in missing.stderr
    assert "Traceback" not in missing.stderr and len(missing.stderr.strip().splitlines()) == 1

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        done = _setup(["--grant", role], subprocess_env)
        assert done.returncode == 0, done.stderr
        assert "note: plain Postgres: skipped creating the role with databricks_auth" in done.stdout
        assert "databricks_create_role" not in done.stdout
        assert _setup(["--check", "--as", role], subprocess_env).returncode == 0

        as_role = make_conninfo(database_url, user=role)
        with psycopg.connect(as_role, autocommit=True, row_factory=dict_row) as conn:
            saver = PostgresSaver(conn)
            saved = saver.put(
                {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}},
                empty_checkpoint(),
                {},
                {},
            )
            assert saver.get_tuple(saved) is not None
            for statement in ("DROP TABLE checkpoints", "ALTER TABLE store ADD COLUMN x int"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_status_command_on_lakebase_in_a_real_process(
    fake_lakebase: FakeLakebase, tmp_path: Path
) -> None:
    database = _new_database(fake_lakebase)
    env = _env(fake_lakebase, database, tmp_path)

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "status", "--json"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )

    before = status()
    assert before.returncode == 1, before.stderr
    assert json.loads(before.stdout)["backend"] == "lakebase"
    assert _setup(["--embedding-dims", str(DIMS)], env).returncode == 0
    after = status()
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["memory_available"] and report["connected"]
    assert report["credentials"]["minted"] >= 1
    assert report["optional_missing"] == []
