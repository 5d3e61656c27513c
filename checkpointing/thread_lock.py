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

A caller that must answer "busy" before it starts the run (the HTTP server,
whose status line goes out before the run) takes the lock itself with
``acquire``/``aacquire`` and keeps it for the run: the graph's own ``hold``
inside that context joins the held lock instead of taking it again, and the
lock is released when the caller and every run that joined have let go.

Keys: 64 bits of BLAKE2b over the thread id, so two different thread ids share
a lock with probability ~2^-64 (and then merely serialize).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from psycopg import errors as pg_errors

TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS locked"
LOCK_SQL = "SELECT pg_advisory_lock(%s)"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"
SET_TIMEOUT_SQL = "SELECT set_config('lock_timeout', %s, false)"
RESET_TIMEOUT_SQL = "RESET lock_timeout"


class HeldLock:
    """A thread's lock taken for a context (``acquire``), shared with the runs started in it.

    A run started where the lock is held (the same context, or a task copied
    from it, e.g. a background run spawned by a request) joins it instead of
    taking it again, and the lock is released only when the one who took it
    *and* every run that joined have let go: a run never continues unlocked
    because the request that started it ended first.
    """

    def __init__(self, stack: ExitStack | AsyncExitStack) -> None:
        self._stack = stack
        self._users = 1
        self.open = True

    def join(self) -> None:
        self._users += 1

    def leave(self) -> None:
        """Let go (sync holder); the last one out releases the lock."""
        self._users -= 1
        if self._users == 0 and self.open:
            self.open = False
            assert isinstance(self._stack, ExitStack)
            self._stack.close()

    async def aleave(self) -> None:
        """Let go (async holder); the last one out releases the lock."""
        self._users -= 1
        if self._users == 0 and self.open:
            self.open = False
            assert isinstance(self._stack, AsyncExitStack)
            await self._stack.aclose()

    close = leave
    aclose = aleave


# The locks this context holds through ``acquire``/``aacquire``, by thread id.
_held_here: ContextVar[dict[str, HeldLock]] = ContextVar("memory_agent_threads_held")


def _held(thread_id: str, sync: bool) -> HeldLock | None:
    held = _held_here.get({}).get(thread_id)
    if held is None or not held.open or isinstance(held._stack, ExitStack) != sync:
        return None
    return held


def _mark_held(held: HeldLock, thread_id: str) -> None:
    _held_here.set({**_held_here.get({}), thread_id: held})


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

    def acquire(self, thread_id: str, wait_seconds: float | None = None) -> HeldLock:
        """Take ``thread_id``'s lock for this context until ``close()`` (and joined runs end).

        Runs started in this context (and in tasks copied from it) join it.
        """
        stack = ExitStack()
        stack.enter_context(self.hold(thread_id, wait_seconds))
        held = HeldLock(stack)
        _mark_held(held, thread_id)
        return held

    async def aacquire(self, thread_id: str, wait_seconds: float | None = None) -> HeldLock:
        """Async twin of ``acquire``: ``await held.aclose()`` lets go."""
        stack = AsyncExitStack()
        await stack.enter_async_context(self.ahold(thread_id, wait_seconds))
        held = HeldLock(stack)
        _mark_held(held, thread_id)
        return held

    @contextmanager
    def hold(self, thread_id: str, wait_seconds: float | None = None) -> Iterator[None]:
        """Hold ``thread_id``'s lock for the block; raise ``ThreadBusyError`` if it is taken."""
        if (held := _held(thread_id, sync=True)) is not None:
            held.join()  # acquired for this context already (see ``acquire``)
            try:
                yield
            finally:
                held.leave()
            return
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
        if (held := _held(thread_id, sync=False)) is not None:
            held.join()
            try:
                yield
            finally:
                await held.aleave()
            return
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
