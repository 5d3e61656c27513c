"""Lakebase pools with rotating OAuth credentials, built on databricks-ai-bridge's LakebasePool.

What LakebasePool gives us, and we keep: host resolution (provisioned
instance, autoscaling endpoint, or project + branch), the Postgres user from
the workspace identity, a fresh OAuth token on every new connection (cached
15 minutes), TLS (``sslmode=require``, port 5432), ``search_path`` for a schema.

Where we go beyond it, and why:

- **A refused token is replaced at once.** LakebasePool caches a token for 15
  minutes and never forgets it early. When the token is refused (it expired,
  or was revoked), every reconnect in those 15 minutes reuses the refused
  token and fails, so requests wait for a connection until PoolTimeout. Our
  connection class sees the refusal (libpq reports that the server demanded
  a password and the attempt failed), drops the cached token if it is the
  one that was refused, mints a new one and tries once more.
- **A hostname for LAKEBASE_INSTANCE_NAME is resolved to the instance**
  (Databricks Apps can inject the host); credentials are minted per instance
  name, so the host alone is not enough.
- **The database name is honoured.** The sync LakebasePool takes no
  ``database`` argument (it always uses databricks_postgres); we build the
  connection string ourselves, with libpq quoting (user names are e-mail
  addresses or UUIDs, and a space or quote would break the bridge's f-string).
- **Connections are checked before use (the first dead one drains the pool:
  ``database.checks``), recycled before the token expires,
  and time out when connecting** (``connect_timeout``; libpq waits forever
  by default, which would pin a pool worker on a black-holed host), with
  server-side prepared statements: Lakebase connections go straight to
  Postgres, with no transaction-mode pooler in between (``database.connect``).
- **Counters** (tokens minted, tokens refused) for health and the soak test.

An auth failure on a live session (rare: Postgres checks the password at
login) and a connection dropped mid-statement are handled where the work can
be replayed: ``database.retry``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from database.errors import DatabaseUnavailable, is_credential_refused
from database.targets import LakebaseTarget


@dataclass
class CredentialStats:
    """What happened to OAuth credentials since the pool opened."""

    minted: int = 0
    """Tokens minted through the Databricks API."""
    refused: int = 0
    """Connection attempts refused because the token was no longer accepted."""


def _pool_kwargs(min_size: int, max_size: int, max_lifetime: float | None) -> dict[str, Any]:
    from database.connect import MAX_CONNECTION_LIFETIME_SECONDS, MAX_IDLE_SECONDS

    return {
        "min_size": min_size,
        "max_size": max_size,
        "max_lifetime": max_lifetime or MAX_CONNECTION_LIFETIME_SECONDS,
        "max_idle": MAX_IDLE_SECONDS,
        "name": "memory-agent-lakebase",
    }


def resolve_instance_name(workspace_client: Any, name: str) -> str:
    """Return the provisioned instance's name for ``name``, which may be its hostname.

    Databricks Apps can inject the database resource as a host
    (``instance-<uid>.database.cloud.databricks.com``); instance names cannot
    contain dots, so a dotted value is looked up among the workspace's instances.
    """
    if "." not in name:
        return name
    for instance in workspace_client.database.list_database_instances():
        if name in (instance.read_write_dns, instance.read_only_dns):
            return str(instance.name)
    raise DatabaseUnavailable(
        f"no Lakebase instance in this workspace has host {name}; "
        "set LAKEBASE_INSTANCE_NAME to the instance's name"
    )


def _target_kwargs(target: LakebaseTarget, workspace_client: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"schema": target.schema}
    if target.instance_name:
        kwargs["instance_name"] = resolve_instance_name(workspace_client, target.instance_name)
    elif target.autoscaling_endpoint:
        kwargs["autoscaling_endpoint"] = target.autoscaling_endpoint
    else:
        kwargs["project"] = target.project
        kwargs["branch"] = target.branch
    return kwargs


class _CredentialRefresh:
    """Behaviour shared by the sync and async pools (mixed in before the bridge's class)."""

    _database: str
    credential_stats: CredentialStats
    _cached_token: str | None
    _cache_ts: float | None

    def _prepare(self, database: str) -> None:
        # Called before the bridge's __init__, which builds the conninfo and mints.
        self._database = database
        self.credential_stats = CredentialStats()
        self._stats_lock = threading.Lock()

    def _conninfo(self) -> str:
        from databricks_ai_bridge.lakebase import DEFAULT_PORT, DEFAULT_SSLMODE
        from psycopg.conninfo import make_conninfo

        host: str = self.host  # type: ignore[attr-defined]
        user: str = self.username  # type: ignore[attr-defined]
        return make_conninfo(
            dbname=self._database, user=user, host=host, port=DEFAULT_PORT, sslmode=DEFAULT_SSLMODE
        )

    def _mint_token(self) -> str:
        token: str = super()._mint_token()  # type: ignore[misc]
        with self._stats_lock:
            self.credential_stats.minted += 1
        return token

    def _forget_refused_token(self, attempt_started: float) -> None:
        """Drop the cached token if it was minted before the refused attempt began.

        A token minted after that (by a concurrent connection that already saw
        the refusal) is newer than the refused one and is kept.
        """
        with self._stats_lock:
            self.credential_stats.refused += 1
            if self._cache_ts is not None and self._cache_ts <= attempt_started:
                self._cached_token = None
                self._cache_ts = None


def _connect_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    from database.connect import CONNECT_TIMEOUT_SECONDS, PREPARE_THRESHOLD

    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
    kwargs.setdefault("prepare_threshold", PREPARE_THRESHOLD)
    return kwargs


def _refreshing_sync(base: type, lakebase: Any) -> type:
    class RefreshingConnection(base):
        @classmethod
        def connect(cls, conninfo: str = "", **connect_kwargs: Any) -> Any:
            connect_kwargs = _connect_kwargs(connect_kwargs)
            started = time.time()
            try:
                return super().connect(conninfo, **connect_kwargs)
            except Exception as exc:
                if not is_credential_refused(exc):
                    raise
                lakebase._forget_refused_token(started)
            return super().connect(conninfo, **connect_kwargs)

    return RefreshingConnection


def _refreshing_async(base: type, lakebase: Any) -> type:
    class RefreshingConnection(base):
        @classmethod
        async def connect(cls, conninfo: str = "", **connect_kwargs: Any) -> Any:
            connect_kwargs = _connect_kwargs(connect_kwargs)
            started = time.time()
            try:
                return await super().connect(conninfo, **connect_kwargs)
            except Exception as exc:
                if not is_credential_refused(exc):
                    raise
                lakebase._forget_refused_token(started)
            return await super().connect(conninfo, **connect_kwargs)

    return RefreshingConnection


def _pool_class(asynchronous: bool) -> type:
    from databricks_ai_bridge.lakebase import AsyncLakebasePool, LakebasePool

    bridge = AsyncLakebasePool if asynchronous else LakebasePool
    refreshing = _refreshing_async if asynchronous else _refreshing_sync

    class AgentLakebasePool(_CredentialRefresh, bridge):  # type: ignore[valid-type, misc]
        """The bridge's pool, replacing a refused token at once and honouring the database."""

        def __init__(self, *, database: str, **kwargs: Any) -> None:
            self._prepare(database)
            super().__init__(**kwargs)
            # The bridge builds its psycopg pool inside __init__ with its own
            # connection class; wrapping that class affects every later connection.
            # (The sync pool is already open: its first min_size connects may be
            # under way with a token minted a moment ago, which is valid.)
            self._pool.connection_class = refreshing(self._pool.connection_class, self)

    return AgentLakebasePool


def _workspace_client(workspace_client: Any) -> Any:
    if workspace_client is not None:
        return workspace_client
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def _create(
    target: LakebaseTarget,
    asynchronous: bool,
    workspace_client: Any,
    min_size: int,
    max_size: int,
    max_lifetime: float | None,
) -> Any:
    from database.checks import PoolRef, async_draining_check, draining_check

    client = _workspace_client(workspace_client)
    ref = PoolRef()
    lakebase = _pool_class(asynchronous)(
        workspace_client=client,
        database=target.database,
        check=async_draining_check(ref) if asynchronous else draining_check(ref),
        **_target_kwargs(target, client),
        **_pool_kwargs(min_size, max_size, max_lifetime),
    )
    ref.pool = lakebase.pool
    return lakebase


def create_lakebase_pool(
    target: LakebaseTarget,
    *,
    workspace_client: Any = None,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float | None = None,
) -> Any:
    """Build the sync Lakebase pool object (``.pool`` is the psycopg pool, already open)."""
    return _create(target, False, workspace_client, min_size, max_size, max_lifetime)


def create_async_lakebase_pool(
    target: LakebaseTarget,
    *,
    workspace_client: Any = None,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float | None = None,
) -> Any:
    """Build the async Lakebase pool object (not open yet: ``await lakebase.open()``)."""
    return _create(target, True, workspace_client, min_size, max_size, max_lifetime)


def _unavailable(target: LakebaseTarget, exc: BaseException) -> DatabaseUnavailable:
    if isinstance(exc, DatabaseUnavailable):
        return exc
    reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return DatabaseUnavailable(f"cannot open {target.describe()}: {reason}")


def _probe(lakebase: Any) -> None:
    # One direct connection first, as for every target in database.connect: it
    # fails fast with the server's own reason (refused token, unknown database)
    # where the pool would retry quietly until its timeout. It goes through the
    # same token path as the pool's connections.
    import psycopg

    if hasattr(lakebase, "_get_token"):
        token = lakebase._get_token()
    else:  # the async pool's getter is a coroutine; mint here and seed its cache
        token = lakebase._mint_token()
        lakebase._cached_token, lakebase._cache_ts = token, time.time()
    try:
        psycopg.connect(lakebase._conninfo(), password=token, **_connect_kwargs({})).close()
    except psycopg.Error as exc:
        if not is_credential_refused(exc):
            raise
        # A cached token that has just been refused: one fresh token, as the pool does.
        lakebase._forget_refused_token(time.time())
        psycopg.connect(
            lakebase._conninfo(), password=lakebase._mint_token(), **_connect_kwargs({})
        ).close()


def open_lakebase_pool(
    target: LakebaseTarget,
    *,
    workspace_client: Any = None,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float | None = None,
) -> Any:
    """Open a sync psycopg pool on Lakebase; raises ``DatabaseUnavailable`` on failure.

    The returned pool carries the Lakebase object as ``pool.lakebase`` (for its
    credential counters) and is closed with ``pool.close()``.
    """
    lakebase = None
    try:
        lakebase = create_lakebase_pool(
            target,
            workspace_client=workspace_client,
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime,
        )
        _probe(lakebase)
    except Exception as exc:  # SDK and resolution errors come in many types
        if lakebase is not None:
            lakebase.close()
        raise _unavailable(target, exc) from exc
    lakebase.pool.lakebase = lakebase
    return lakebase.pool


async def aopen_lakebase_pool(
    target: LakebaseTarget,
    *,
    workspace_client: Any = None,
    min_size: int = 1,
    max_size: int = 10,
    max_lifetime: float | None = None,
) -> Any:
    """Open an async psycopg pool on Lakebase; raises ``DatabaseUnavailable`` on failure."""
    import asyncio

    lakebase = None
    try:
        # Resolving the host and inferring the user are blocking SDK calls.
        lakebase = await asyncio.to_thread(
            create_async_lakebase_pool,
            target,
            workspace_client=workspace_client,
            min_size=min_size,
            max_size=max_size,
            max_lifetime=max_lifetime,
        )
        await asyncio.to_thread(_probe, lakebase)
        await lakebase.open()
    except Exception as exc:
        if lakebase is not None:
            await lakebase.close()
        raise _unavailable(target, exc) from exc
    lakebase.pool.lakebase = lakebase
    return lakebase.pool
