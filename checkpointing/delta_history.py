"""Rebuild a delta-stored channel in one round trip, without re-reading its snapshot.

A ``DeltaChannel`` (langgraph 1.2, beta) saves only each step's writes plus a
full snapshot every ``snapshot_frequency`` updates; reading a checkpoint walks
its ancestors back to the newest snapshot and replays the writes since.
LangGraph's ``PostgresSaver.get_delta_channel_history`` does that walk in two
statements, the first reading up to 1,024 checkpoint rows per page (every row
of a bounded thread, however few the walk needs), and re-reads and
deserializes the snapshot on every load: at turn 1,000 of a chat that is a
~0.8 MB blob of ~2,000 messages, the part of a turn that grows with the thread.

Here the walk is one recursive statement that follows ``parent_checkpoint_id``
and stops at the first ancestor that stores the channel, and the same
statement returns the writes along the chain and the snapshot blob, unless
this process already holds that snapshot: a snapshot is keyed by its channel
version, which LangGraph never reuses (a counter plus a random fraction) and
which ``put`` stores with ``ON CONFLICT DO NOTHING``, so a cached copy can
never be stale, in this process or after another one wrote to the thread.
The seed and write semantics are the stock ones (a blob that is not
``empty``, else a non-null inline value; writes oldest first); the rows are
handed to the stock ``_build_delta_channels_writes_history`` to assemble.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from langgraph.checkpoint.serde.types import _DeltaSnapshot

from checkpointing.message_reducer import copy_messages

# Every lookup is a LATERAL subquery fenced with LIMIT/OFFSET so Postgres
# cannot flatten it into a join: flattened, the planner (with a thread's
# rows estimated at one, as on a fresh or unanalyzed table, and in the
# generic plan of a prepared statement) scanned all of the thread's
# checkpoints for each step of the walk, and all of its writes for each
# chain row: 3 ms at turn 1,000 against 1 ms at turn 10 for the same chain
# length. Fenced, each step is one primary-key probe. The savers run it
# unprepared: psycopg's prepared copy, on Postgres's generic plan, took 6-7 ms
# at turn 1,000 where the same statement planned for its values takes 2 ms
# (planning is ~0.5 ms of that).
# One checkpoint of the walk, found by id: its parent, the channel's version and
# inline value, and whether a (non-empty) blob stores the channel at that version.
_CHECKPOINT_BY_ID = """
    CROSS JOIN LATERAL (
        SELECT c.checkpoint_id, c.parent_checkpoint_id, v.version,
               c.checkpoint -> 'channel_values' -> %(channel)s AS inline,
               EXISTS (
                   SELECT 1 FROM checkpoint_blobs b
                   WHERE b.thread_id = %(thread_id)s AND b.checkpoint_ns = %(checkpoint_ns)s
                     AND b.channel = %(channel)s AND b.version = v.version
                     AND b.type <> 'empty'
               ) AS has_blob
        FROM checkpoints c
        CROSS JOIN LATERAL (
            SELECT c.checkpoint -> 'channel_versions' ->> %(channel)s AS version
        ) AS v
        WHERE c.thread_id = %(thread_id)s AND c.checkpoint_ns = %(checkpoint_ns)s
          AND c.checkpoint_id = {id}
        LIMIT 1
    ) AS {alias}"""

DELTA_HISTORY_SQL = f"""
WITH RECURSIVE chain AS (
    SELECT h.checkpoint_id, h.parent_checkpoint_id, h.version, h.inline, h.has_blob
    FROM (
        SELECT t.parent_checkpoint_id AS id FROM checkpoints t
        WHERE t.thread_id = %(thread_id)s AND t.checkpoint_ns = %(checkpoint_ns)s
          AND t.checkpoint_id = %(checkpoint_id)s
    ) AS head{_CHECKPOINT_BY_ID.format(id="head.id", alias="h")}
    UNION ALL
    SELECT p.checkpoint_id, p.parent_checkpoint_id, p.version, p.inline, p.has_blob
    FROM chain{_CHECKPOINT_BY_ID.format(id="chain.parent_checkpoint_id", alias="p")}
    WHERE NOT chain.has_blob AND (chain.inline IS NULL OR chain.inline = 'null'::jsonb)
)
SELECT 'c'::text AS _kind, checkpoint_id, parent_checkpoint_id, version, inline, has_blob,
       %(channel)s::text AS channel, NULL::text AS type, NULL::bytea AS blob,
       NULL::text AS task_id, NULL::text AS task_path, NULL::int AS idx
FROM chain
UNION ALL
SELECT 'w', w.checkpoint_id, NULL, NULL, NULL, NULL, w.channel, w.type, w.blob,
       w.task_id, w.task_path, w.idx
FROM chain
CROSS JOIN LATERAL (
    SELECT w.checkpoint_id, w.channel, w.type, w.blob, w.task_id, w.task_path, w.idx
    FROM checkpoint_writes w
    WHERE w.thread_id = %(thread_id)s AND w.checkpoint_ns = %(checkpoint_ns)s
      AND w.checkpoint_id = chain.checkpoint_id AND w.channel = %(channel)s
    OFFSET 0
) AS w
UNION ALL
SELECT 'b', NULL, NULL, b.version, NULL, NULL, b.channel, b.type, b.blob, NULL, NULL, NULL
FROM chain
CROSS JOIN LATERAL (
    SELECT b.version, b.channel, b.type, b.blob FROM checkpoint_blobs b
    WHERE b.thread_id = %(thread_id)s AND b.checkpoint_ns = %(checkpoint_ns)s
      AND b.channel = %(channel)s AND b.version = chain.version
      AND b.version <> ALL(%(cached_versions)s)
    LIMIT 1
) AS b
WHERE chain.has_blob
"""

DEFAULT_SNAPSHOT_CACHE_SIZE = 32


class SnapshotCache:
    """Deserialized delta snapshots, newest-used first, keyed by (thread, ns, channel, version).

    Bounded by entry count: a snapshot of a 1,000-turn chat is a few MB of
    Python objects, so the default keeps the hot threads of a busy process.
    """

    def __init__(self, size: int = DEFAULT_SNAPSHOT_CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # the async saver's loop and a sync saver may share one

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def versions(self, thread_id: str, checkpoint_ns: str, channel: str) -> list[str]:
        with self._lock:
            return [
                key[3]
                for key in self._entries
                if isinstance(key, tuple) and key[:3] == (thread_id, checkpoint_ns, channel)
            ]

    def forget_thread(self, thread_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if isinstance(k, tuple) and k[0] == thread_id]:
                del self._entries[key]


def fresh_copy(seed: Any) -> Any:
    """A copy the channel may own: the reducer never mutates its input, but a node could.

    A message list's copy shares the original's id index (``message_reducer``),
    so replaying writes onto a cached snapshot does not re-index it.
    """
    if isinstance(seed, _DeltaSnapshot) and isinstance(seed.value, list):
        return _DeltaSnapshot(copy_messages(seed.value))
    if isinstance(seed, list):
        return copy_messages(seed)
    return seed


def history_params(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str, channel: str, cached: list[str]
) -> dict[str, Any]:
    return {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "channel": channel,
        "cached_versions": cached,
    }


def split_rows(
    rows: list[dict[str, Any]],
) -> tuple[list[str], str | None, Any, bool, list[dict[str, Any]]]:
    """(chain newest first, seed version, inline seed, seed in a blob, write and blob rows)."""
    nodes = {row["checkpoint_id"]: row for row in rows if row["_kind"] == "c"}
    parents = {row["parent_checkpoint_id"] for row in nodes.values()}
    # The walk's first row is the only one no other chain row names as its parent.
    starts = [cid for cid in nodes if cid not in parents]
    chain: list[str] = []
    seed_version: str | None = None
    seed_inline: Any = None
    seed_in_blob = False
    cursor = starts[0] if starts else None
    while cursor is not None and cursor in nodes:
        node = nodes[cursor]
        chain.append(cursor)
        if node["has_blob"] or node["inline"] is not None:
            seed_version = node["version"]
            seed_in_blob = bool(node["has_blob"])
            seed_inline = None if seed_in_blob else node["inline"]
            break
        cursor = node["parent_checkpoint_id"]
    return chain, seed_version, seed_inline, seed_in_blob, [r for r in rows if r["_kind"] != "c"]
