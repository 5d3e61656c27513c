"""Who owns a thread: recorded once, when the thread is first written, and checked on every run.

A thread holds one user's conversation, pending approvals and (through its
tool calls) effects on that user's memories, and thread ids travel in request
bodies. So every write to a thread (a run, a resume, crash recovery, an
``update_state`` or fork, a copy into a new thread) is checked against the
thread's owner by ``MemoryAgentGraph`` while it holds the thread's lock; the
HTTP layer reads the same record for its 403s. The owner lives in its own
small table (``thread_owners``), not in checkpoint metadata, because LangGraph
writes some checkpoints (``update_state`` forks, ``__copy__``) with metadata of
its own choosing, and a record that a fork could drop is no record.

The rules, one per case:

- a new thread belongs to the user of its first write;
- a thread first written without a user id is *ownerless* (recorded as ``""``)
  and stays so: it answers only callers without a user id, never "anyone";
- a thread with an owner answers only that user: a caller without a user id
  is refused as well (a resume never inherits the paused user's identity);
- a thread written before owners were recorded gets its owner from its latest
  checkpoint's ``user_id`` metadata (what HTTP runs recorded), else ownerless.

This module takes a pool and never reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OWNERS_TABLE = "thread_owners"
NO_OWNER = ""
"""The recorded owner of a thread first written without a user id."""

CREATE_OWNERS_SQL = """
CREATE TABLE IF NOT EXISTS thread_owners (
    thread_id  text        PRIMARY KEY,
    user_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
# The no-op update makes RETURNING answer with the row that wins: the existing
# owner when there is one, else the one just inserted.
CLAIM_SQL = """
INSERT INTO thread_owners (thread_id, user_id) VALUES (%s, %s)
ON CONFLICT (thread_id) DO UPDATE SET thread_id = EXCLUDED.thread_id
RETURNING user_id
"""
OWNER_SQL = "SELECT user_id FROM thread_owners WHERE thread_id = %s"
THREADS_OF_SQL = "SELECT thread_id FROM thread_owners WHERE user_id = %s ORDER BY thread_id"


class ThreadOfAnotherUser(PermissionError):
    """The thread is not the caller's; the message says so without naming its owner."""

    def __init__(self, thread_id: str, owner: str, caller: str | None) -> None:
        self.thread_id = thread_id
        if owner == NO_OWNER:
            text = (
                f"thread {thread_id!r} was started without a user id and continues only without "
                "one; start a new thread"
            )
        elif caller is None:
            text = f"thread {thread_id!r} belongs to a user; continue it as that user"
        else:
            text = f"thread {thread_id!r} belongs to another user"
        super().__init__(text)


def legacy_owner(head_metadata: Mapping[str, Any] | None) -> str:
    """The owner of a thread saved before owners were recorded (see the module doc)."""
    user_id = (head_metadata or {}).get("user_id")
    return user_id if isinstance(user_id, str) and user_id else NO_OWNER


def check_owner(thread_id: str, owner: str | None, caller: str | None) -> None:
    """Raise ``ThreadOfAnotherUser`` unless ``caller`` may use a thread owned by ``owner``.

    ``owner`` None: the thread has no history and no record, so it is the caller's.
    """
    if owner is None:
        return
    if owner != (caller or NO_OWNER):
        raise ThreadOfAnotherUser(thread_id, owner, caller)


class ThreadOwners:
    """The ``thread_owners`` table on ``pool`` (sync or async)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def owner(self, thread_id: str) -> str | None:
        """The recorded owner (``NO_OWNER`` for an ownerless thread), None if none is recorded."""
        with self.pool.connection() as conn:
            row = conn.execute(OWNER_SQL, (thread_id,)).fetchone()
        return None if row is None else str(row["user_id"])

    async def aowner(self, thread_id: str) -> str | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(OWNER_SQL, (thread_id,))).fetchone()
        return None if row is None else str(row["user_id"])

    def claim(self, thread_id: str, user_id: str | None) -> str:
        """Record ``user_id`` as the owner unless one is recorded; return the owner."""
        with self.pool.connection() as conn:
            row = conn.execute(CLAIM_SQL, (thread_id, user_id or NO_OWNER)).fetchone()
        return str(row["user_id"])

    async def aclaim(self, thread_id: str, user_id: str | None) -> str:
        async with self.pool.connection() as conn:
            cursor = await conn.execute(CLAIM_SQL, (thread_id, user_id or NO_OWNER))
            row = await cursor.fetchone()
        return str(row["user_id"])

    def threads_of(self, user_id: str) -> list[str]:
        """Every thread recorded as ``user_id``'s."""
        with self.pool.connection() as conn:
            rows = conn.execute(THREADS_OF_SQL, (user_id,)).fetchall()
        return [row["thread_id"] for row in rows]


def setup_thread_owners(pool: Any) -> None:
    """Create the ``thread_owners`` table if it is missing; safe to run twice and concurrently.

    Under the migrations' advisory lock, as the tool ledger's setup is.
    """
    from checkpointing.saver import setup_lock

    with setup_lock(pool) as conn:
        conn.execute(CREATE_OWNERS_SQL)


async def asetup_thread_owners(pool: Any) -> None:
    """Async twin of ``setup_thread_owners``."""
    from checkpointing.saver import asetup_lock

    async with asetup_lock(pool) as conn:
        await conn.execute(CREATE_OWNERS_SQL)
