"""Open the connection pool a process shares (sync or async), and its lock pool.

The work pool serves every short operation: checkpoints, the store, the
ledger, health checks. A run also holds its thread's advisory lock on a
session for its whole duration (``checkpointing.thread_lock``); those
sessions come from a second, small pool (``lock_pool_size``) so a run never
waits for a work connection that only another waiting run could free: with
both on one pool of 10, ten concurrent runs held all ten connections as locks
and each waited for an eleventh (issue 9). Work connections are only ever
held for one operation, so the work pool always drains.

Every pooled connection is configured the way LangGraph's Postgres savers and
stores expect (autocommit, dict rows) and is checked before it is lent out, so
a connection that died with a server restart is replaced instead of failing
the request that borrowed it (work that replays itself on a checked
connection skips the check for a connection lent moments ago:
``database.checks``). Server-side prepared statements (psycopg
prepares a statement from its fifth run) are on where the connection goes
straight to Postgres: the embedded server and Lakebase. A ``DATABASE_URL``
may point at a transaction-mode pooler (PgBouncer before 1.21), which breaks
them, so there they stay off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from database.checks import PoolRef, async_draining_check, draining_check
from database.embedded import EmbeddedPostgres
from database.errors import DatabaseUnavailable
from database.targets import DatabaseTarget, EmbeddedTarget, LakebaseTarget, UrlTarget

CONNECT_TIMEOUT_SECONDS = 5
# Lakebase OAuth tokens live one hour; a connection never outlives 45 minutes,
# so no pooled connection is still using a token when it expires.
MAX_CONNECTION_LIFETIME_SECONDS = 45 * 60
MAX_IDLE_SECONDS = 10 * 60

CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": None,
    "row_factory": dict_row,
    "connect_timeout": CONNECT_TIMEOUT_SECONDS,
}
# psycopg's default: a statement run five times on a connection is prepared.
PREPARE_THRESHOLD = 5
# For connections that reach Postgres itself, never through a pooler.
DIRECT_CONNECTION_KWARGS: dict[str, Any] = {
    **CONNECTION_KWARGS,
    "prepare_threshold": PREPARE_THRESHOLD,
}


def connection_kwargs(target: DatabaseTarget) -> dict[str, Any]:
    """The pool's connection settings for ``target`` (prepared statements only when direct)."""
    return DIRECT_CONNECTION_KWARGS if isinstance(target, EmbeddedTarget) else CONNECTION_KWARGS


@dataclass
class Database:
    """An open pool on the configured target, plus what is needed to describe it."""

    target: DatabaseTarget
    pool: Any  # ConnectionPool | AsyncConnectionPool
    url: str | None = None
    """Connection string for URL and embedded targets (None for Lakebase)."""
    schema: str | None = None
    embedded: EmbeddedPostgres | None = field(default=None, repr=False)
    lock_pool: Any = None
    """Sessions for thread locks (``lock_pool_size`` > 0), apart from the work pool."""

    def describe(self) -> str:
        return self.target.describe()


def _search_path_configure(schema: str | None) -> Any:
    if not schema:
        return None
    statement = sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema))

    def configure(conn: psycopg.Connection[Any]) -> None:
        conn.execute(statement)

    return configure


def _async_search_path_configure(schema: str | None) -> Any:
    if not schema:
        return None
    statement = sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema))

    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(statement)

    return configure


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _resolve_url(target: DatabaseTarget) -> tuple[str, EmbeddedPostgres | None]:
    if isinstance(target, EmbeddedTarget):
        server = EmbeddedPostgres(target.home, target.database)
        try:
            return server.start(), server
        except Exception as exc:  # pgserver raises plain errors; surface one line
            server.stop()
            raise DatabaseUnavailable(
                f"could not start the {target.describe()}: {_first_line(exc)}"
            ) from exc
    assert isinstance(target, UrlTarget)
    return target.url, None


def _probe(url: str, target: DatabaseTarget) -> None:
    # One direct connection first: it fails fast with the server's own reason
    # (refused, unknown host, bad password), where a pool would retry silently
    # until its timeout and then only say that it timed out.
    try:
        psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {target.describe()}: {_first_line(exc)}"
        ) from exc


def _url_pool(
    url: str,
    schema: str | None,
    min_size: int,
    max_size: int,
    name: str,
    connection: dict[str, Any] = CONNECTION_KWARGS,
) -> Any:
    ref = PoolRef()
    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        kwargs=connection,
        min_size=min_size,
        max_size=max_size,
        max_lifetime=MAX_CONNECTION_LIFETIME_SECONDS,
        max_idle=MAX_IDLE_SECONDS,
        check=draining_check(ref),
        configure=_search_path_configure(schema),
        name=name,
        open=True,
    )
    ref.pool = pool
    return pool


@contextmanager
def open_database(
    target: DatabaseTarget,
    *,
    min_size: int = 1,
    max_size: int = 10,
    lock_pool_size: int = 0,
    workspace_client: Any = None,
) -> Iterator[Database]:
    """Open ``target`` and yield a ``Database`` with a sync pool; close it all on exit.

    ``lock_pool_size`` > 0 also opens ``Database.lock_pool`` with that many sessions.
    Raises ``DatabaseUnavailable`` (one line, with the reason) when the target
    cannot be reached.
    """
    with ExitStack() as stack:
        if isinstance(target, LakebaseTarget):
            from database.lakebase import open_lakebase_pool

            def lakebase_pool(low: int, high: int) -> Any:
                pool = open_lakebase_pool(
                    target, workspace_client=workspace_client, min_size=low, max_size=high
                )
                stack.callback(pool.close)
                return pool

            database = Database(
                target=target, pool=lakebase_pool(min_size, max_size), schema=target.schema
            )
            if lock_pool_size:
                database.lock_pool = lakebase_pool(1, lock_pool_size)
            yield database
            return

        url, embedded = _resolve_url(target)
        if embedded is not None:
            stack.callback(embedded.stop)
        _probe(url, target)
        schema = target.schema if isinstance(target, UrlTarget) else None
        pool = _url_pool(url, schema, min_size, max_size, "memory-agent", connection_kwargs(target))
        stack.callback(pool.close)
        database = Database(target=target, pool=pool, url=url, schema=schema, embedded=embedded)
        if lock_pool_size:
            database.lock_pool = _url_pool(
                url, schema, 1, lock_pool_size, "memory-agent-locks", connection_kwargs(target)
            )
            stack.callback(database.lock_pool.close)
        yield database


async def _aurl_pool(
    url: str,
    schema: str | None,
    min_size: int,
    max_size: int,
    name: str,
    connection: dict[str, Any] = CONNECTION_KWARGS,
) -> Any:
    aref = PoolRef()
    apool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        kwargs=connection,
        min_size=min_size,
        max_size=max_size,
        max_lifetime=MAX_CONNECTION_LIFETIME_SECONDS,
        max_idle=MAX_IDLE_SECONDS,
        check=async_draining_check(aref),
        configure=_async_search_path_configure(schema),
        name=name,
        open=False,
    )
    aref.pool = apool
    await apool.open()
    return apool


@asynccontextmanager
async def aopen_database(
    target: DatabaseTarget,
    *,
    min_size: int = 1,
    max_size: int = 10,
    lock_pool_size: int = 0,
    workspace_client: Any = None,
) -> AsyncIterator[Database]:
    """Async twin of ``open_database``: yields a ``Database`` with async pools."""
    import asyncio

    async with AsyncExitStack() as stack:
        if isinstance(target, LakebaseTarget):
            from database.lakebase import aopen_lakebase_pool

            async def lakebase_pool(low: int, high: int) -> Any:
                pool = await aopen_lakebase_pool(
                    target, workspace_client=workspace_client, min_size=low, max_size=high
                )
                stack.push_async_callback(pool.close)
                return pool

            database = Database(
                target=target, pool=await lakebase_pool(min_size, max_size), schema=target.schema
            )
            if lock_pool_size:
                database.lock_pool = await lakebase_pool(1, lock_pool_size)
            yield database
            return

        # Starting the embedded server and the probe block; keep them off the event loop.
        url, embedded = await asyncio.to_thread(_resolve_url, target)
        if embedded is not None:
            stack.push_async_callback(asyncio.to_thread, embedded.stop)
        await asyncio.to_thread(_probe, url, target)
        schema = target.schema if isinstance(target, UrlTarget) else None
        pool = await _aurl_pool(
            url, schema, min_size, max_size, "memory-agent", connection_kwargs(target)
        )
        stack.push_async_callback(pool.close)
        database = Database(target=target, pool=pool, url=url, schema=schema, embedded=embedded)
        if lock_pool_size:
            database.lock_pool = await _aurl_pool(
                url, schema, 1, lock_pool_size, "memory-agent-locks", connection_kwargs(target)
            )
            stack.push_async_callback(database.lock_pool.close)
        yield database
