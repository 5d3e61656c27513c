"""open_agent / aopen_agent: backend from env, setup, and graceful degradation."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from database.targets import with_database
from graph import agent as agent_module
from graph.agent import MemoryUnavailableError, aopen_agent, open_agent
from graph.settings import Settings


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    agent_module._warned.clear()  # "once per process" must not leak between tests


def answer(graph: Any, text: str, thread_id: str = "t") -> str:
    result = graph.invoke(
        {"messages": [("user", text)]}, {"configurable": {"thread_id": thread_id}}
    )
    return str(result["messages"][-1].content)


def test_embedded_default_sets_itself_up_and_remembers(clean_env: Path) -> None:
    with open_agent() as graph:
        assert graph.memory_available
        assert "embedded PostgreSQL" in graph.memory_status
        answer(graph, "My name is Ada.")
    with open_agent() as graph:  # a second open sees the first one's thread
        assert answer(graph, "What is my name?") == "Your name is Ada."


def test_missing_tables_fall_back_with_one_warning(
    database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with caplog.at_level(logging.WARNING, logger="memory_agent"), open_agent() as graph:
        assert not graph.memory_available
        assert answer(graph, "hello").startswith("Hello!")  # still answers, statelessly
    with caplog.at_level(logging.WARNING, logger="memory_agent"), open_agent():
        pass
    warnings = [r.getMessage() for r in caplog.records if r.name == "memory_agent"]
    assert len(warnings) == 1  # once per process
    assert "tables checkpoint_migrations, checkpoints" in warnings[0]
    assert "Fix: run `python setup_lakebase.py`" in warnings[0]
    assert "\n" not in warnings[0]
    with psycopg.connect(
        database_url
    ) as conn:  # and nothing was created behind the operator's back
        assert conn.execute("SELECT to_regclass('checkpoints')").fetchone() == (None,)


def test_unreachable_database_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://agent@/db?host={tmp_path}&connect_timeout=2")
    with caplog.at_level(logging.WARNING, logger="memory_agent"), open_agent() as graph:
        assert not graph.memory_available
        assert "cannot connect" in graph.memory_status
        assert answer(graph, "My name is Ada.").startswith("Noted")
        assert answer(graph, "What is my name?").startswith("I don't know")  # stateless indeed
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "memory_agent"]
    assert "Fix: start that server or correct DATABASE_URL" in warning


@pytest.mark.parametrize("cause", ["missing tables", "unreachable"])
def test_memory_required_turns_the_warning_into_an_error(
    cause: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = database_url if cause == "missing tables" else f"postgresql://a@/b?host={tmp_path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("MEMORY_REQUIRED", "1")
    with pytest.raises(MemoryUnavailableError, match="Fix: ") as excinfo, open_agent():
        pass
    assert "\n" not in str(excinfo.value)


def test_auto_setup_creates_tables_on_a_url_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    with open_agent() as graph:
        assert graph.memory_available
        answer(graph, "My name is Ada.")
        assert answer(graph, "What is my name?") == "Your name is Ada."


async def test_async_entry_point(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("AUTO_SETUP", "1")
    async with aopen_agent() as graph:
        assert graph.memory_available
        config = {"configurable": {"thread_id": "async-t"}}
        await graph.ainvoke({"messages": [("user", "My name is Ada.")]}, config)
        result = await graph.ainvoke({"messages": [("user", "What is my name?")]}, config)
    assert result["messages"][-1].content == "Your name is Ada."


class StandInWorkspaceClient:
    """Answers the calls databricks-ai-bridge's LakebasePool makes, pointing at a local server."""

    def __init__(self, host: str, user: str) -> None:
        self.minted = 0
        instance = SimpleNamespace(read_write_dns=host, read_only_dns=None)
        self.database = SimpleNamespace(
            get_database_instance=lambda name: instance,
            generate_database_credential=self._mint,
        )
        self.current_user = SimpleNamespace(me=lambda: SimpleNamespace(user_name=user))

    def _mint(self, **_: Any) -> Any:
        self.minted += 1
        return SimpleNamespace(token=f"token-{self.minted}")


@pytest.fixture
def databricks_postgres(pg_server: Any) -> Any:
    """The embedded server's ``databricks_postgres`` database (Lakebase's default name), dropped after."""
    from psycopg import sql

    admin = pg_server.admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS databricks_postgres WITH (FORCE)")
        conn.execute("CREATE DATABASE databricks_postgres")
    yield with_database(admin, "databricks_postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS databricks_postgres WITH (FORCE)"))


def test_lakebase_from_env_goes_through_lakebase_pool(
    databricks_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = conninfo_to_dict(databricks_postgres)
    monkeypatch.setenv("LAKEBASE_INSTANCE_NAME", "agent-memory")
    monkeypatch.setenv("AUTO_SETUP", "1")
    monkeypatch.setenv("DATABASE_URL", "postgresql://ignored-because-lakebase-wins/x")
    settings = Settings.from_env()
    workspace = StandInWorkspaceClient(host=str(params["host"]), user=str(params["user"]))
    with open_agent(settings, workspace_client=workspace) as graph:
        assert graph.memory_available, graph.memory_status
        assert "Lakebase instance agent-memory" in graph.memory_status
        answer(graph, "My name is Ada.")
        assert answer(graph, "What is my name?") == "Your name is Ada."
    assert workspace.minted >= 1  # credentials came from the workspace, not from a URL


def test_auto_setup_with_a_dml_only_role_on_a_set_up_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from psycopg import sql

    from checkpointing import RUN_TABLES
    from setup_lakebase import main as setup_main

    monkeypatch.setenv("DATABASE_URL", database_url)
    assert setup_main([]) == 0  # the operator sets up as the owner
    role = f"app_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))
        for table in RUN_TABLES:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(table), sql.Identifier(role)
                )
            )
    try:
        params = conninfo_to_dict(database_url)
        params["user"] = role
        from psycopg.conninfo import make_conninfo

        monkeypatch.setenv("DATABASE_URL", make_conninfo("", **params))
        monkeypatch.setenv("AUTO_SETUP", "1")  # must not try DDL the role cannot run
        with open_agent() as graph:
            assert graph.memory_available, graph.memory_status
            answer(graph, "My name is Ada.")
            assert answer(graph, "What is my name?") == "Your name is Ada."
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
