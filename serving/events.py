"""The background runs' tables: one row per response, and its event log.

``background_responses`` holds each background response: its status, the
request it answers (to plan it again after a takeover), its thread, where the
thread stood before it (``base_checkpoint_id``, ``base_messages``), which
attempt owns it, and whether a cancel was asked for. ``background_events``
holds every stream event, numbered from 1 per response, stored before any
client sees it (readers only ever read this table).

Ownership is a session-level advisory lock on ``lock_key`` held by the
connection that runs the response and writes its events (``RunConnection``).
Postgres releases the lock when that connection ends, which a ``kill -9`` of
its process does, so another process can then claim the run. Every event
insert is fenced on the owner's ``attempt_number`` (bumped by each claim) and
refused once a cancel was asked for, so a writer that lost the run can never
add an event after the new owner's numbering started.

This module takes connections and a pool; it never reads the environment.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BACKGROUND_TABLES = ("background_responses", "background_events")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})

CREATE_BACKGROUND_SQL = (
    """
CREATE TABLE IF NOT EXISTS background_responses (
    response_id        text        PRIMARY KEY,
    status             text        NOT NULL
        CHECK (status IN ('in_progress', 'completed', 'failed', 'cancelled')),
    thread_id          text        NOT NULL,
    user_id            text,
    request            text        NOT NULL,
    base_checkpoint_id text,
    base_messages      integer     NOT NULL DEFAULT 0,
    lock_key           bigint      NOT NULL,
    attempt_number     integer     NOT NULL DEFAULT 1,
    owner              text,
    cancel_requested   boolean     NOT NULL DEFAULT false,
    error              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
)""",
    """
CREATE INDEX IF NOT EXISTS background_responses_in_progress
    ON background_responses (created_at) WHERE status = 'in_progress'""",
    # text, not jsonb: jsonb refuses \\u0000 and reorders keys, and text is cheaper to write.
    """
CREATE TABLE IF NOT EXISTS background_events (
    response_id     text        NOT NULL
        REFERENCES background_responses (response_id) ON DELETE CASCADE,
    sequence_number integer     NOT NULL,
    attempt_number  integer     NOT NULL,
    event           text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (response_id, sequence_number)
)""",
)

INSERT_RESPONSE_SQL = """
INSERT INTO background_responses
    (response_id, status, thread_id, user_id, request, base_checkpoint_id, base_messages,
     lock_key, owner)
VALUES (%s, 'in_progress', %s, %s, %s, %s, %s, %s, %s)
"""
# The fence: the event goes in only while this attempt owns an unfinished, uncancelled run.
APPEND_EVENT_SQL = """
INSERT INTO background_events (response_id, sequence_number, attempt_number, event)
SELECT %(id)s, %(seq)s, %(attempt)s, %(event)s
WHERE EXISTS (
    SELECT 1 FROM background_responses
    WHERE response_id = %(id)s AND attempt_number = %(attempt)s
      AND status = 'in_progress' AND (%(closing)s OR NOT cancel_requested))
"""
FINISH_SQL = """
UPDATE background_responses SET status = %s, error = %s, updated_at = now()
WHERE response_id = %s AND attempt_number = %s AND status = 'in_progress'
"""
CLAIM_SQL = """
UPDATE background_responses
SET attempt_number = attempt_number + 1, owner = %s, updated_at = now()
WHERE response_id = %s AND status = 'in_progress'
RETURNING attempt_number,
    (SELECT coalesce(max(sequence_number), 0) FROM background_events e
     WHERE e.response_id = background_responses.response_id) AS last_sequence
"""
SELECT_RESPONSE_SQL = """
SELECT response_id, status, thread_id, user_id, request, base_checkpoint_id, base_messages,
       lock_key, attempt_number, owner, cancel_requested, error, created_at
FROM background_responses WHERE response_id = %s
"""
SELECT_EVENTS_SQL = """
SELECT sequence_number, event FROM background_events
WHERE response_id = %s AND sequence_number > %s ORDER BY sequence_number
"""
CANCEL_SQL = """
UPDATE background_responses SET cancel_requested = true, updated_at = now()
WHERE response_id = %s AND status = 'in_progress'
"""
# Runs whose owner is gone: their lock is free. The scanner's connection takes each free
# lock for an instant (and gives it back) only to learn that; the claim itself happens
# on the run's own connection.
ORPHANS_SQL = """
SELECT response_id, lock_key FROM background_responses
WHERE status = 'in_progress' AND NOT (response_id = ANY(%s))
ORDER BY created_at LIMIT %s
"""
TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%s) AS locked"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%s)"


def response_lock_key(response_id: str) -> int:
    """The signed 64-bit advisory-lock key owning ``response_id`` (apart from thread locks)."""
    digest = hashlib.blake2b(
        response_id.encode(), digest_size=8, person=b"mem-agent-respo"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class StoredResponse:
    """One row of ``background_responses``."""

    response_id: str
    status: str
    thread_id: str
    user_id: str | None
    request: dict[str, Any]
    base_checkpoint_id: str | None
    base_messages: int
    lock_key: int
    attempt_number: int
    owner: str | None
    cancel_requested: bool
    error: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredResponse:
        return cls(
            **{
                **row,
                "request": json.loads(row["request"]),
                "error": json.loads(row["error"]) if row["error"] else None,
            }
        )

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


async def asetup_background_tables(pool: Any) -> None:
    """Create the tables; idempotent, under the same lock as the other migrations."""
    from checkpointing.saver import asetup_lock

    async with asetup_lock(pool) as conn:
        for statement in CREATE_BACKGROUND_SQL:
            await conn.execute(statement)


def setup_background_tables(conn: Any) -> None:
    """Sync twin of ``asetup_background_tables`` on a connection that holds the setup lock."""
    for statement in CREATE_BACKGROUND_SQL:
        conn.execute(statement)


async def open_run_connection(pool: Any) -> Any:
    """A connection made like ``pool``'s (same target, credentials, search_path), not lent by it.

    A run holds it for its whole life: taking it from the pool would let a few
    long runs starve the pool, and the lock must die with the run's process,
    not return to a pool where another task would hold it.
    """
    conn = await pool.connection_class.connect(pool.conninfo, **pool.kwargs)
    # psycopg_pool keeps its configure callback (the target's search_path) private.
    configure = getattr(pool, "_configure", None)
    if configure is not None:
        await configure(conn)
    return conn


class RunConnection:
    """The owner's connection of one response: holds its lock, writes its events in order."""

    def __init__(self, conn: Any, response_id: str, attempt: int, last_sequence: int) -> None:
        self.conn = conn
        self.response_id = response_id
        self.attempt = attempt
        self.last_sequence = last_sequence

    async def append(self, event: dict[str, Any], *, closing: bool = False) -> bool:
        """Store ``event`` as the next sequence number; False if the run is no longer ours to write.

        Once a cancel is asked for only ``closing`` events (the run's last ones) go in.
        """
        sequence = self.last_sequence + 1
        stored = {**event, "sequence_number": sequence}
        cursor = await self.conn.execute(
            APPEND_EVENT_SQL,
            {
                "id": self.response_id,
                "seq": sequence,
                "attempt": self.attempt,
                "event": json.dumps(stored, ensure_ascii=False, default=str),
                "closing": closing,
            },
        )
        if cursor.rowcount != 1:
            return False
        self.last_sequence = sequence
        return True

    async def finish(self, status: str, error: dict[str, Any] | None = None) -> bool:
        cursor = await self.conn.execute(
            FINISH_SQL,
            (status, json.dumps(error) if error else None, self.response_id, self.attempt),
        )
        return bool(cursor.rowcount == 1)

    async def close(self) -> None:
        await self.conn.close()


async def create_response(
    conn: Any,
    *,
    response_id: str,
    thread_id: str,
    user_id: str | None,
    request: dict[str, Any],
    base_checkpoint_id: str | None,
    base_messages: int,
    owner: str,
) -> RunConnection:
    """Lock and insert a new response on ``conn``, which then owns it as attempt 1.

    The lock is taken before the row exists, so no scanner can ever see the row unowned.
    """
    key = response_lock_key(response_id)
    await conn.execute(TRY_LOCK_SQL, (key,))
    await conn.execute(
        INSERT_RESPONSE_SQL,
        (
            response_id,
            thread_id,
            user_id,
            json.dumps(request, ensure_ascii=False, default=str),
            base_checkpoint_id,
            base_messages,
            key,
            owner,
        ),
    )
    return RunConnection(conn, response_id, attempt=1, last_sequence=0)


async def claim_response(conn: Any, response_id: str, owner: str) -> RunConnection | None:
    """Take over an orphaned response on ``conn``: its lock, then a new attempt number.

    None when another process holds it (or just claimed it) or it has finished.
    """
    key = response_lock_key(response_id)
    row = await (await conn.execute(TRY_LOCK_SQL, (key,))).fetchone()
    if not row["locked"]:
        return None
    claimed = await (await conn.execute(CLAIM_SQL, (owner, response_id))).fetchone()
    if claimed is None:
        await conn.execute(UNLOCK_SQL, (key,))
        return None
    return RunConnection(conn, response_id, claimed["attempt_number"], claimed["last_sequence"])


async def find_orphans(conn: Any, owned_here: Sequence[str], limit: int = 20) -> list[str]:
    """Unfinished responses whose owner is gone (their lock is free), oldest first."""
    rows = await (await conn.execute(ORPHANS_SQL, (list(owned_here), limit))).fetchall()
    orphans = []
    for row in rows:
        locked = await (await conn.execute(TRY_LOCK_SQL, (row["lock_key"],))).fetchone()
        if locked["locked"]:
            await conn.execute(UNLOCK_SQL, (row["lock_key"],))
            orphans.append(row["response_id"])
    return orphans


async def load_response(pool: Any, response_id: str) -> StoredResponse | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(SELECT_RESPONSE_SQL, (response_id,))).fetchone()
    return StoredResponse.from_row(row) if row else None


async def load_events(
    pool: Any, response_id: str, after: int = 0
) -> list[tuple[int, dict[str, Any]]]:
    """Stored events with a sequence number above ``after``, in order."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(SELECT_EVENTS_SQL, (response_id, after))).fetchall()
    return [(row["sequence_number"], json.loads(row["event"])) for row in rows]


async def request_cancel(pool: Any, response_id: str) -> bool:
    """Ask the owner to stop; True if the response was still running."""
    async with pool.connection() as conn:
        cursor = await conn.execute(CANCEL_SQL, (response_id,))
        return bool(cursor.rowcount == 1)
