"""A memory's revision history: every create, update, merge, delete and restore, kept apart.

The memories themselves stay in LangGraph's ``store`` table (shared with
PostgresStore and DatabricksStore, which know nothing of revisions); the history
lives in a table of our own, ``memory_revisions``, created by setup_lakebase.py
and the agent's auto-setup. Each row is one change: what the memory holds after
it (NULL after a delete), what it held before (NULL before a create), when, and
where from: the thread and run, and the path that made it (a tool, extraction,
consolidation, the CLI, an import).

Only current content is in ``store``, so a search can never return a superseded
value as current: old values exist only here. ``MemoryStore.write_memory``
writes the memory and its revision in one transaction, so there is never a
change without its revision (or a revision without its change).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

REVISIONS_TABLE = "memory_revisions"
RUN_ID_KEY = "agent_run_id"
"""Where a run's id travels in ``config["configurable"]`` (set by the compiled graph)."""

Action = Literal["create", "update", "merge", "delete", "restore"]
ACTIONS: tuple[str, ...] = ("create", "update", "merge", "delete", "restore")

CREATE_REVISIONS_SQL = """
CREATE TABLE IF NOT EXISTS memory_revisions (
    prefix     text        NOT NULL,
    key        text        NOT NULL,
    revision   integer     NOT NULL,
    action     text        NOT NULL
               CHECK (action IN ('create', 'update', 'merge', 'delete', 'restore')),
    value      jsonb,
    previous   jsonb,
    thread_id  text,
    run_id     text,
    source     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (prefix, key, revision)
)
"""

# Serialises writers of one memory, including its first create (there is no row
# to lock yet); transaction-scoped, so it goes with the commit.
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))"
CURRENT_SQL = "SELECT value FROM store WHERE prefix = %s AND key = %s"
INSERT_SQL = """
INSERT INTO memory_revisions
    (prefix, key, revision, action, value, previous, thread_id, run_id, source)
SELECT %s, %s, coalesce(max(revision), 0) + 1, %s, %s::jsonb, %s::jsonb, %s, %s, %s
FROM memory_revisions WHERE prefix = %s AND key = %s
RETURNING revision, created_at
"""
HISTORY_SQL = """
SELECT prefix, key, revision, action, value, previous, thread_id, run_id, source, created_at
FROM memory_revisions WHERE prefix = %s AND key = %s ORDER BY revision
"""
NAMESPACE_HISTORY_SQL = """
SELECT prefix, key, revision, action, value, previous, thread_id, run_id, source, created_at
FROM memory_revisions WHERE prefix = %s ORDER BY key, revision
"""
RESTORE_SQL = """
INSERT INTO memory_revisions
    (prefix, key, revision, action, value, previous, thread_id, run_id, source, created_at)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s)
ON CONFLICT (prefix, key, revision) DO NOTHING
"""


@dataclass(frozen=True)
class Provenance:
    """Where a change comes from: the run's thread and run ids and the path that made it."""

    source: str = "api"
    """``tool``, ``extraction``, ``consolidate``, ``cli``, ``import``, ``admin`` or ``api``."""
    thread_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Revision:
    """One recorded change to one memory."""

    key: str
    revision: int
    action: str
    value: dict[str, Any] | None
    """The memory after the change (None after a delete)."""
    previous: dict[str, Any] | None
    """The memory before the change (None before a create)."""
    thread_id: str | None
    run_id: str | None
    source: str
    created_at: datetime
    prefix: str = ""

    @property
    def content(self) -> str | None:
        return _content(self.value)

    @property
    def previous_content(self) -> str | None:
        return _content(self.previous)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "revision": self.revision,
            "action": self.action,
            "value": self.value,
            "previous": self.previous,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }


def _content(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    return str(value.get("content", json.dumps(value, ensure_ascii=False)))


def revision_from_row(row: dict[str, Any]) -> Revision:
    return Revision(
        key=row["key"],
        revision=int(row["revision"]),
        action=row["action"],
        value=row["value"],
        previous=row["previous"],
        thread_id=row["thread_id"],
        run_id=row["run_id"],
        source=row["source"],
        created_at=row["created_at"],
        prefix=row["prefix"],
    )


def insert_params(
    prefix: str,
    key: str,
    action: str,
    value: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    provenance: Provenance,
) -> tuple[Any, ...]:
    """Parameters of ``INSERT_SQL`` for one change."""
    return (
        prefix,
        key,
        action,
        None if value is None else json.dumps(value),
        None if previous is None else json.dumps(previous),
        provenance.thread_id,
        provenance.run_id,
        provenance.source,
        prefix,
        key,
    )


def lock_key(prefix: str, key: str) -> str:
    return f"{prefix}\x1f{key}"


def restore_params(revision: Revision) -> tuple[Any, ...]:
    """Parameters of ``RESTORE_SQL``: one revision written back as it was exported."""
    return (
        revision.prefix,
        revision.key,
        revision.revision,
        revision.action,
        None if revision.value is None else json.dumps(revision.value),
        None if revision.previous is None else json.dumps(revision.previous),
        revision.thread_id,
        revision.run_id,
        revision.source,
        revision.created_at,
    )


def written_revision(
    prefix: str,
    key: str,
    action: str,
    value: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    provenance: Provenance,
    written: dict[str, Any],
) -> Revision:
    """The revision ``INSERT_SQL`` just wrote (``written``: its RETURNING row)."""
    return Revision(
        key=key,
        revision=int(written["revision"]),
        action=action,
        value=value,
        previous=previous,
        thread_id=provenance.thread_id,
        run_id=provenance.run_id,
        source=provenance.source,
        created_at=written["created_at"],
        prefix=prefix,
    )
