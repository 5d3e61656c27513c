"""The check a pool runs before lending a connection, and what it does when one is dead.

psycopg_pool checks a connection before lending it (``check=``) and, when the
check fails, discards it and tries the next, sleeping between attempts with
its reconnection backoff: 0, 1, 2, 4, 8 s. After a server restart or failover
every idle connection is dead, so a request that meets them one by one waits
the sum of those sleeps (15 s with six pooled connections, measured in the
Lakebase soak test) although fresh connections are ready long before.

A dead connection found at check almost always has dead siblings from the same
server, so the first failure drains the pool: every idle connection is closed
at once, replacements are opened, and the waiting request gets the first
fresh one instead of checking the stale ones with growing pauses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class PoolRef:
    """Filled in with the pool once it exists (the check is passed to its constructor)."""

    pool: Any = None


def draining_check(ref: PoolRef) -> Callable[[Any], None]:
    """A sync ``check=`` callback: psycopg_pool's own check, draining the pool on failure."""
    from psycopg_pool import ConnectionPool

    def check(conn: Any) -> None:
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            if ref.pool is not None:
                ref.pool.drain()
            raise

    return check


def async_draining_check(ref: PoolRef) -> Callable[[Any], Awaitable[None]]:
    """Async twin of ``draining_check`` for an ``AsyncConnectionPool``."""
    from psycopg_pool import AsyncConnectionPool

    async def check(conn: Any) -> None:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if ref.pool is not None:
                await ref.pool.drain()
            raise

    return check
