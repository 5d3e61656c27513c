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

The check is a round trip to the server, which on a busy process doubled the
round trips of a short checkpoint read or write. Work that replays itself
once on a fresh connection when its connection drops (``database.retry``:
the savers, the store) skips it for a connection lent within the last
``RECENTLY_USED_SECONDS`` whose socket is still open: if that connection
died in between (a restart, a failover), the work's first statement fails,
and the replay borrows with the check on, so the first dead connection it
meets drains the pool and the replay runs on a fresh one. Everything else
(locks, the ledger, health checks) is checked on every borrow as before.
Skipping it without that second, checked attempt was tried and let the
Lakebase soak test see errors after restarts: the replay met another dead
connection lent moments before the restart.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import pq

RECENTLY_USED_SECONDS = 10.0

_replayable: ContextVar[bool] = ContextVar("memory_agent_replayable_borrow", default=False)


@contextmanager
def replayable_borrows() -> Iterator[None]:
    """Borrows in this context come from work that replays itself on a checked connection."""
    token = _replayable.set(True)
    try:
        yield
    finally:
        _replayable.reset(token)


class PoolRef:
    """Filled in with the pool once it exists (the check is passed to its constructor)."""

    pool: Any = None

    def __init__(self) -> None:
        self._lent_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def may_skip_check(self, conn: Any) -> bool:
        """True if the borrower replays on failure and ``conn`` was lent moments ago, still open.

        Notes this lending either way.
        """
        now = time.monotonic()
        with self._lock:
            last = self._lent_at.get(conn)
            self._lent_at[conn] = now
        return (
            _replayable.get()
            and last is not None
            and now - last < RECENTLY_USED_SECONDS
            and conn.pgconn.status == pq.ConnStatus.OK
        )


def draining_check(ref: PoolRef) -> Callable[[Any], None]:
    """A sync ``check=`` callback: psycopg_pool's own check, draining the pool on failure."""
    from psycopg_pool import ConnectionPool

    def check(conn: Any) -> None:
        if ref.may_skip_check(conn):
            return
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
        if ref.may_skip_check(conn):
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            if ref.pool is not None:
                await ref.pool.drain()
            raise

    return check
