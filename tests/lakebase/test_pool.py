"""Lakebase pools: host resolution, TLS, database and schema, refused tokens, restarts."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql

from database import DatabaseUnavailable, LakebaseTarget, aopen_database, open_database
from database.lakebase import open_lakebase_pool, resolve_instance_name
from database.retry import RetryStats, run_with_retry
from tests.lakebase_harness import FakeLakebase

WHO_AM_I = (
    "SELECT current_user AS who, current_database() AS db, current_schema() AS schema, "
    "(SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl"
)


def _whoami(pool: Any) -> dict[str, Any]:
    with pool.connection() as conn:
        return conn.execute(WHO_AM_I).fetchone()


@pytest.mark.parametrize(
    "target",
    [
        LakebaseTarget(instance_name="agent-memory"),
        LakebaseTarget(
            autoscaling_endpoint="projects/agent-project/branches/production/endpoints/primary"
        ),
        LakebaseTarget(project="agent-project", branch="production"),
    ],
    ids=["provisioned", "autoscaling-endpoint", "autoscaling-project-branch"],
)
def test_every_lakebase_mode_connects_as_the_workspace_identity(
    fake_lakebase: FakeLakebase, workspace_client: Any, target: LakebaseTarget
) -> None:
    with open_database(target, workspace_client=workspace_client) as db:
        row = _whoami(db.pool)
    assert row["who"] == fake_lakebase.user_name
    assert row["db"] == "databricks_postgres"
    # Postgres behind the front door sees a local socket; the client's side is TLS,
    # which the front door enforces (a plaintext startup is refused).
    assert fake_lakebase.front_door.plaintext_refused == 0


def test_connection_is_tls_and_plaintext_is_refused(fake_lakebase: FakeLakebase) -> None:
    with psycopg.connect(fake_lakebase.agent_url()) as conn:
        assert conn.pgconn.ssl_in_use
    plain = fake_lakebase.agent_url().replace("sslmode=require", "sslmode=disable")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(plain, connect_timeout=5)


def test_instance_hostname_is_resolved_to_the_instance(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    # The stand-in lists instances over two pages; ours is on the second.
    assert resolve_instance_name(workspace_client, fake_lakebase.host) == "agent-memory"
    with open_database(
        LakebaseTarget(instance_name=fake_lakebase.host), workspace_client=workspace_client
    ) as db:
        assert _whoami(db.pool)["who"] == fake_lakebase.user_name


def test_unknown_instance_or_host_is_one_line_error(workspace_client: Any) -> None:
    for name in ("no-such-instance", "instance-123.database.example.com"):
        with (
            pytest.raises(DatabaseUnavailable) as excinfo,
            open_database(LakebaseTarget(instance_name=name), workspace_client=workspace_client),
        ):
            pass
        assert "\n" not in str(excinfo.value)
    assert "set LAKEBASE_INSTANCE_NAME" in str(excinfo.value)


def test_database_name_and_schema_are_honoured(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    fake_lakebase.postgres.execute("CREATE DATABASE agent_memory_db")
    fake_lakebase.postgres.execute(
        sql.SQL("GRANT CREATE ON DATABASE agent_memory_db TO {}").format(
            sql.Identifier(fake_lakebase.user_name)
        )
    )
    with psycopg.connect(fake_lakebase.agent_url(database="agent_memory_db"), autocommit=True) as c:
        c.execute("CREATE SCHEMA agent_schema")
    target = LakebaseTarget(
        instance_name="agent-memory", database="agent_memory_db", schema="agent_schema"
    )
    with open_database(target, workspace_client=workspace_client) as db:
        row = _whoami(db.pool)
    assert (row["db"], row["schema"]) == ("agent_memory_db", "agent_schema")


def test_refused_token_is_replaced_without_failing_a_request(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    pool = open_lakebase_pool(
        LakebaseTarget(instance_name="agent-memory"),
        workspace_client=workspace_client,
        min_size=1,
        max_size=2,
    )
    try:
        stats = pool.lakebase.credential_stats
        minted_before = stats.minted
        fake_lakebase.rotate_token()  # the token the pool cached is now refused
        pool.drain()  # every connection must log in again, as after max_lifetime
        retry = RetryStats()
        row = run_with_retry(lambda: _whoami(pool), pool=pool, stats=retry)
        assert row["who"] == fake_lakebase.user_name
        assert retry.retries == 0
        assert stats.refused >= 1
        assert stats.minted == minted_before + 1
    finally:
        pool.close()


def test_bridge_pool_alone_keeps_the_refused_token(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    """Why we extend LakebasePool: on its own it reuses a refused token for 15 minutes."""
    from databricks_ai_bridge.lakebase import LakebasePool
    from psycopg_pool import PoolTimeout

    bridge = LakebasePool(
        instance_name="agent-memory",
        workspace_client=workspace_client,
        min_size=1,
        max_size=1,
        timeout=3,
    )
    try:
        bridge.pool.wait(timeout=10)
        fake_lakebase.rotate_token()
        bridge.pool.drain()
        with pytest.raises(PoolTimeout), bridge.pool.connection() as conn:
            conn.execute("SELECT 1")
    finally:
        bridge.close()


async def test_async_pool_replaces_refused_token(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    target = LakebaseTarget(autoscaling_endpoint=fake_lakebase.state.endpoint)
    async with aopen_database(target, workspace_client=workspace_client, max_size=2) as db:
        fake_lakebase.rotate_token()
        await db.pool.drain()
        async with db.pool.connection() as conn:
            row = await (await conn.execute(WHO_AM_I)).fetchone()
        assert row["who"] == fake_lakebase.user_name
        assert db.pool.lakebase.credential_stats.refused >= 1
        # The event loop stayed free while tokens were minted (run in a thread).
        await asyncio.sleep(0)


def test_pool_survives_a_postgres_restart(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    with open_database(
        LakebaseTarget(instance_name="agent-memory"),
        workspace_client=workspace_client,
        min_size=2,
        max_size=2,
    ) as db:
        assert _whoami(db.pool)["who"] == fake_lakebase.user_name
        fake_lakebase.restart_postgres(down_seconds=0.5)
        # Dead pooled connections are checked and replaced before being lent out.
        retry = RetryStats()
        for _ in range(4):
            assert run_with_retry(lambda: _whoami(db.pool), pool=db.pool, stats=retry)["who"]
        assert retry.failures == 0


def test_statement_on_a_dropped_connection_is_retried_once(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    with open_database(
        LakebaseTarget(instance_name="agent-memory"),
        workspace_client=workspace_client,
        min_size=1,
        max_size=1,
    ) as db:
        attempts = []

        def work() -> Any:
            with db.pool.connection() as conn:
                attempts.append(conn.info.backend_pid)
                if len(attempts) == 1:
                    # The server ends this session while we hold it (a failover, a restart).
                    fake_lakebase.postgres.execute(
                        "SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,)
                    )
                return conn.execute("SELECT 1 AS one").fetchone()

        retry = RetryStats()
        assert run_with_retry(work, pool=db.pool, stats=retry) == {"one": 1}
        assert retry.retries == 1 and retry.failures == 0
        assert attempts[0] != attempts[1]  # the replay ran on a new connection

        def not_a_connection_problem() -> Any:
            with db.pool.connection() as conn:
                return conn.execute("SELECT 1/0").fetchone()

        with pytest.raises(psycopg.errors.DivisionByZero):
            run_with_retry(not_a_connection_problem, pool=db.pool, stats=retry)
        assert retry.retries == 1 and retry.failures == 1


def test_session_auth_failure_drains_pool_and_mints_a_new_token(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    """A 28P01 on a live session (a pooler re-authenticating) replays on fresh logins.

    Postgres itself only checks passwords at login, so the first failure here is
    raised by the work function; the recovery (drain, forget the token, mint,
    log in again, replay) runs against the real pool and server.
    """
    pool = open_lakebase_pool(
        LakebaseTarget(instance_name="agent-memory"),
        workspace_client=workspace_client,
        min_size=1,
        max_size=1,
    )
    try:
        stats = pool.lakebase.credential_stats
        first_backend = _whoami_pid(pool)
        minted_before = stats.minted
        attempts = []

        def work() -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                raise psycopg.errors.InvalidPassword("password authentication failed")
            return _whoami_pid(pool)

        retry = RetryStats()
        second_backend = run_with_retry(work, pool=pool, stats=retry)
        assert retry.retries == 1 and retry.failures == 0
        assert second_backend != first_backend  # the pool was drained: a new session
        assert stats.minted == minted_before + 1  # which logged in with a new token
    finally:
        pool.close()


def _whoami_pid(pool: Any) -> int:
    with pool.connection() as conn:
        return int(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
