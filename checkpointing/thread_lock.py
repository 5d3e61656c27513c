"""One run at a time per thread, across processes and machines: a Postgres advisory lock.

Two concurrent runs on one thread both read the same last checkpoint and both
write a child of it: the thread silently forks and one run's turn disappears
from the history (langgraph#8796). LangGraph has no guard for this, so every
run (and every state update) holds a session-level advisory lock keyed on the
thread id, on a dedicated pooled connection, for its whole duration. Give it a
pool of its own (``database.connect``'s lock pool): sessions held for a whole
run must never be the connections the run's own writes wait for.

- A second run on a busy thread fails at once with ``ThreadBusyError``, or
  waits up to ``wait_seconds`` for the lock (Postgres ``lock_timeout``).
- The lock lives as long as the connection: a process killed with -9 loses its
  connection and Postgres releases the lock, so a crash never wedges a thread.
- Session-level locks need a session: behind a transaction-mode pooler
  (PgBouncer ``pool_mode=transaction``) they do not hold; Lakebase and direct
  Postgres connections are session-mode.

Keys: 64 bits of BLAKE2b over the thread id, so two different thread ids share
a lock with probability ~2^-64 (and then merely serialize).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from psycopg import errors as pg_errors

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS locked"
LOCK_SQL = "SELECT pg_advisory_lock(%s)"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
SET_TIMEOUT_SQL = "SELECT set_config('lock_timeout', %s, false)"
RESET_TIMEOUT_SQL = "RESET lock_timeout"


class ThreadBusyError(RuntimeError):
    """Another run holds the thread; the message names it in one line."""

    def __init__(self, thread_id: str, waited: float | None = None) -> None:
        self.thread_id = thread_id
        detail = f" (waited {waited:g} s)" if waited else ""
        super().__init__(f"thread {thread_id!r} is busy: another run is in progress{detail}")


def thread_lock_key(thread_id: str) -> int:
    """The signed 64-bit advisory-lock key of ``thread_id``."""
    digest = hashlib.blake2b(thread_id.encode(), digest_size=8, person=b"mem-agent-thread").digest()
    return int.from_bytes(digest, "big", signed=True)


def _timeout_text(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


class ThreadLock:
    """Advisory locks per thread id on ``pool`` (a sync or an async pool)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @contextmanager
    def hold(self, thread_id: str, wait_seconds: float | None = None) -> Iterator[None]:
        """Hold ``thread_id``'s lock for the block; raise ``ThreadBusyError`` if it is taken."""
        key = thread_lock_key(thread_id)
        with self.pool.connection() as conn:
            if not wait_seconds:
                if not conn.execute(TRY_LOCK_SQL, (key,)).fetchone()["locked"]:
                    raise ThreadBusyError(thread_id)
            else:
                conn.execute(SET_TIMEOUT_SQL, (_timeout_text(wait_seconds),))
                try:
                    conn.execute(LOCK_SQL, (key,))
                except pg_errors.LockNotAvailable:
                    raise ThreadBusyError(thread_id, wait_seconds) from None
                finally:
                    conn.execute(RESET_TIMEOUT_SQL)
            try:
                yield
            finally:
                try:
                    conn.execute(UNLOCK_SQL, (key,))
                except BaseException:
                    # Back in the pool still holding the lock, this session would
                    # keep the thread locked for as long as it lives: drop it.
                    conn.close()
                    raise

    @asynccontextmanager
    async def ahold(self, thread_id: str, wait_seconds: float | None = None) -> AsyncIterator[None]:
        """Async twin of ``hold``."""
        key = thread_lock_key(thread_id)
        async with self.pool.connection() as conn:
            if not wait_seconds:
                row = await (await conn.execute(TRY_LOCK_SQL, (key,))).fetchone()
                if not row["locked"]:
                    raise ThreadBusyError(thread_id)
            else:
                await conn.execute(SET_TIMEOUT_SQL, (_timeout_text(wait_seconds),))
                try:
                    await conn.execute(LOCK_SQL, (key,))
                except pg_errors.LockNotAvailable:
                    raise ThreadBusyError(thread_id, wait_seconds) from None
                finally:
                    await conn.execute(RESET_TIMEOUT_SQL)
            try:
                yield
            finally:
                try:
                    await conn.execute(UNLOCK_SQL, (key,))
                except BaseException:  # cancelled mid-unlock, or the session broke
                    await conn.close()
                    raise
