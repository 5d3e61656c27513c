"""Shared fixtures: one embedded PostgreSQL per test session, a fresh database per test.

Nothing here mocks the database. Each test that asks for ``database_url`` gets
its own empty database (with pgvector) on the session's server, dropped after
the test; ``clean_env`` keeps the developer's own configuration out of tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from database.embedded import EmbeddedPostgres
from database.targets import with_database
from tests.managed_memory_harness import ALL_PRIVILEGES
from tests.processes import REPO

# Every variable the agent reads; tests start from none of them set.
AGENT_ENV_VARS = (
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSERVICE",
    "LAKEBASE_INSTANCE_NAME",
    "LAKEBASE_AUTOSCALING_ENDPOINT",
    "LAKEBASE_AUTOSCALING_PROJECT",
    "LAKEBASE_AUTOSCALING_BRANCH",
    "LAKEBASE_DATABASE_NAME",
    "LAKEBASE_AGENT_MEMORY_SCHEMA",
    "MEMORY_AGENT_HOME",
    "MEMORY_REQUIRED",
    "AUTO_SETUP",
    "TASK_TIMEOUT_SECONDS",
    "POLL_INTERVAL_SECONDS",
    "TAKEOVER_SCAN_SECONDS",
    "BACKGROUND_DRAIN_SECONDS",
    "AGENT_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "DATABRICKS_HOST",
    "DATABRICKS_TOKEN",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_CLIENT_SECRET",
    "DATABRICKS_CONFIG_PROFILE",
    "DATABRICKS_EMBEDDING_ENDPOINT",
    "EMBEDDINGS",
    "EMBEDDING_DIMS",
    "OPENAI_EMBEDDING_MODEL",
    "MEMORY_SEARCH_MODE",
    "MEMORY_DEDUP_THRESHOLD",
    "MEMORY_RECALL_LIMIT",
    "MEMORY_SHARED_SCOPE",
    "MEMORY_BACKEND",
    "DATABRICKS_MEMORY_STORE",
    "MEMORY_EXTRACTION",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_TRACKING_URI",
    "DATABRICKS_APP_NAME",
    "DATABRICKS_APP_PORT",
    "MEMORY_AGENT_TRUST_CLIENT_USER_ID",
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest keeps only the three newest /tmp/pytest-of-USER/pytest-N folders, so a
    # run started while another runs can delete the other's live embedded server.
    # A private base folder per run avoids that; it is removed when the run ends.
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="memory-agent-tests-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


_OWN_BASETEMP = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """The session's embedded server (started once, stopped at the end)."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"), database="agent_template")
    server.start()
    yield server
    server.stop()


@contextmanager
def fresh_database(server: EmbeddedPostgres, prefix: str = "test") -> Iterator[str]:
    """Create an empty database (pgvector installed) on ``server``; drop it on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = server.admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(admin, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


CHECKOUT_LITTER = ("mlruns", "mlflow.db")


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """URL of a fresh, empty database (vector extension installed), dropped after the test."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Unset every agent variable and point MEMORY_AGENT_HOME at a per-test folder.

    After the test, the checkout must hold no MLflow store (``mlruns/``,
    ``mlflow.db``): a test or a process it started wrote where a user's command would
    have littered the directory it ran in.
    """
    for name in AGENT_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "agent-home"
    monkeypatch.setenv("MEMORY_AGENT_HOME", str(home))
    before = {name for name in CHECKOUT_LITTER if (REPO / name).exists()}
    yield home
    left = {name for name in CHECKOUT_LITTER if (REPO / name).exists()} - before
    assert not left, f"the test left {sorted(left)} in the checkout"


@pytest.fixture
def subprocess_env(database_url: str) -> dict[str, str]:
    """Environment for child processes: this test's database, offline model."""
    env = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_VARS}
    env["DATABASE_URL"] = database_url
    env["AGENT_MODEL"] = "offline"
    env["MEMORY_AGENT_HOME"] = os.environ["MEMORY_AGENT_HOME"]
    return env


@pytest.fixture(scope="session")
def memory_service_session() -> Iterator[Any]:
    """The stand-in of Databricks' managed memory REST API (tests.managed_memory_harness)."""
    from tests.managed_memory_harness import memory_service

    with memory_service() as service:
        yield service


@pytest.fixture(params=["lakebase", "managed"])
def memory_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Long-term memory on each backend in turn (MEMORY_BACKEND); checkpoints stay in Postgres.

    ``managed``: a fresh store on the stand-in, reached by the real databricks-sdk client
    through DATABRICKS_HOST / DATABRICKS_TOKEN, as a deployment would reach the service.
    """
    if request.param == "managed":
        service = request.getfixturevalue("memory_service_session")
        with service.state.lock:
            service.state.privileges = set(ALL_PRIVILEGES)
            service.state.throttle = 0
        name = f"main.agent_tests.memory_{uuid.uuid4().hex[:12]}"
        service.add_store(name)
        for variable, value in service.environment().items():
            monkeypatch.setenv(variable, value)
        monkeypatch.setenv("MEMORY_BACKEND", "managed")
        monkeypatch.setenv("DATABRICKS_MEMORY_STORE", name)
    return str(request.param)
