"""Run idempotent database work again, once, when the connection drops or the login is refused.

The pool already removes most dead connections before lending them (every
pool checks a connection before use, except a connection lent moments ago to
work run here: ``database.checks``), so after a server restart or failover
a request normally gets a fresh one; the replay here always borrows checked. What the pool cannot hide is a
connection that dies while a statement runs, or a session whose
authorization is withdrawn (SQLSTATE 28000/28P01) while it is open: the
statement fails, and only the caller can run it again. These helpers do
that, once, and only for work the caller declares idempotent (LangGraph's
checkpoint and store writes are upserts keyed by ids fixed before the first
attempt, so a replay writes the same rows).

On an authentication failure the pool is drained (every idle connection
closed, busy ones replaced when returned) and, for Lakebase, the cached token
is dropped so the replacement connections log in with a freshly minted one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg_pool import PoolTimeout

from database.checks import replayable_borrows
from database.errors import DatabaseUnavailable, is_auth_failure, is_connection_error

T = TypeVar("T")


@dataclass
class RetryStats:
    """Counters a caller can keep across calls (the soak test prints them)."""

    calls: int = 0
    retries: int = 0
    failures: int = 0


def is_retryable(exc: BaseException) -> bool:
    """A dropped link or a refused login: worth one more try on a fresh connection.

    A pool timeout is not: the caller has already waited the pool's whole
    timeout for a connection, and waiting again would double the stall.
    """
    if isinstance(exc, PoolTimeout | DatabaseUnavailable):
        return False
    return is_auth_failure(exc) or is_connection_error(exc)


def _refresh_credentials(pool: Any) -> None:
    lakebase = getattr(pool, "lakebase", None)
    if lakebase is not None:
        lakebase._forget_refused_token(time.time())
    pool.drain()


def run_with_retry(
    work: Callable[[], T], *, pool: Any = None, stats: RetryStats | None = None
) -> T:
    """Return ``work()``; if it fails retryably, recover ``pool`` and run it once more."""
    stats = stats if stats is not None else RetryStats()
    stats.calls += 1
    try:
        with replayable_borrows():  # the replay below borrows with the pool's check on
            return work()
    except Exception as exc:
        if not is_retryable(exc):
            stats.failures += 1
            raise
        if is_auth_failure(exc) and pool is not None:
            _refresh_credentials(pool)
    stats.retries += 1
    try:
        return work()
    except Exception:
        stats.failures += 1
        raise


async def arun_with_retry(
    work: Callable[[], Awaitable[T]], *, pool: Any = None, stats: RetryStats | None = None
) -> T:
    """Async twin of ``run_with_retry`` (``pool`` is an ``AsyncConnectionPool``)."""
    stats = stats if stats is not None else RetryStats()
    stats.calls += 1
    try:
        with replayable_borrows():
            return await work()
    except Exception as exc:
        if not is_retryable(exc):
            stats.failures += 1
            raise
        if is_auth_failure(exc) and pool is not None:
            lakebase = getattr(pool, "lakebase", None)
            if lakebase is not None:
                lakebase._forget_refused_token(time.time())
            await pool.drain()
    stats.retries += 1
    try:
        return await work()
    except Exception:
        stats.failures += 1
        raise


__all__ = ["RetryStats", "arun_with_retry", "is_retryable", "run_with_retry"]
