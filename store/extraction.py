"""Facts extracted after each turn: a durable queue of finished turns, and the facts in a text.

With ``MEMORY_EXTRACTION=1`` the graph's last step (``nodes.queue_extraction``)
records the finished turn in ``memory_extractions`` (thread, the id of the
user message that began the turn, user, run). The answer is already in the
thread by then; the extraction itself runs afterwards, off the answer's path
(``graph.extraction``), and saves what it finds through the same path as the
tools (``store.memories.save_memory``: subjects, dedup, revisions) with the
turn's thread and run as provenance.

Once per turn, whatever crashes: the row's key is (thread_id, turn_id), so a
replayed step cannot queue a turn twice; a worker claims a row with
``FOR UPDATE SKIP LOCKED`` and marks it done after saving. A process killed
after the answer and before the extraction leaves the row ``pending``: the next
process that opens the agent picks it up. A worker killed in the middle leaves
it ``running``; it is retried once the claim is ``STALE_CLAIM_SECONDS`` old, and
the retry changes nothing already saved (a fact saved again with the same
words is "unchanged": no write, no revision).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

EXTRACTIONS_TABLE = "memory_extractions"
STALE_CLAIM_SECONDS = 300

CREATE_EXTRACTIONS_SQL = """
CREATE TABLE IF NOT EXISTS memory_extractions (
    thread_id   text        NOT NULL,
    turn_id     text        NOT NULL,
    user_id     text        NOT NULL,
    run_id      text,
    state       text        NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done')),
    attempts    integer     NOT NULL DEFAULT 0,
    saved       integer,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    claimed_at  timestamptz,
    finished_at timestamptz,
    PRIMARY KEY (thread_id, turn_id)
)
"""

ENQUEUE_SQL = """
INSERT INTO memory_extractions (thread_id, turn_id, user_id, run_id)
VALUES (%s, %s, %s, %s)
ON CONFLICT (thread_id, turn_id) DO NOTHING
"""
CLAIM_SQL = f"""
UPDATE memory_extractions AS e
SET state = 'running', attempts = e.attempts + 1, claimed_at = now()
FROM (
    SELECT thread_id, turn_id FROM memory_extractions
    WHERE state = 'pending'
       OR (state = 'running' AND claimed_at < now() - make_interval(secs => {STALE_CLAIM_SECONDS}))
    ORDER BY queued_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS next
WHERE e.thread_id = next.thread_id AND e.turn_id = next.turn_id
RETURNING e.thread_id, e.turn_id, e.user_id, e.run_id, e.attempts
"""
FINISH_SQL = """
UPDATE memory_extractions SET state = 'done', saved = %s, finished_at = now()
WHERE thread_id = %s AND turn_id = %s
"""


@dataclass(frozen=True)
class Turn:
    """A finished turn waiting for extraction."""

    thread_id: str
    turn_id: str
    user_id: str
    run_id: str | None
    attempts: int = 1


class ExtractionQueue:
    """The ``memory_extractions`` table on a pool (sync or async); wakes a local worker."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.wake = threading.Event()

    def enqueue(self, thread_id: str, turn_id: str, user_id: str, run_id: str | None) -> None:
        with self.pool.connection() as conn:
            conn.execute(ENQUEUE_SQL, (thread_id, turn_id, user_id, run_id))
        self.wake.set()

    async def aenqueue(
        self, thread_id: str, turn_id: str, user_id: str, run_id: str | None
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(ENQUEUE_SQL, (thread_id, turn_id, user_id, run_id))
        self.wake.set()

    def claim(self) -> Turn | None:
        """The oldest turn waiting (or abandoned by a dead worker), now claimed; None if none."""
        with self.pool.connection() as conn:
            row = conn.execute(CLAIM_SQL).fetchone()
        return _turn(row)

    async def aclaim(self) -> Turn | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(CLAIM_SQL)).fetchone()
        return _turn(row)

    def finish(self, turn: Turn, saved: int) -> None:
        with self.pool.connection() as conn:
            conn.execute(FINISH_SQL, (saved, turn.thread_id, turn.turn_id))

    async def afinish(self, turn: Turn, saved: int) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(FINISH_SQL, (saved, turn.thread_id, turn.turn_id))


def _turn(row: Any) -> Turn | None:
    if row is None:
        return None
    return Turn(row["thread_id"], row["turn_id"], row["user_id"], row["run_id"], row["attempts"])


_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\s+and\s+(?=(?:my|i)\b)|\n+", re.I)


def facts_in(text: str) -> list[str]:
    """Durable first-person facts stated in ``text`` ("my X is Y", "I live in Y", ...), in one
    wording each (``store.subjects``); questions are not facts."""
    from store.subjects import canonical_fact

    found: list[str] = []
    for sentence in _SENTENCES.split(text):
        sentence = sentence.strip().rstrip(";,")
        if not sentence or sentence.endswith("?"):
            continue
        fact = canonical_fact(sentence)
        if fact and fact not in found:
            found.append(fact)
    return found
