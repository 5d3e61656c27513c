"""Moving memories between the two long-term backends (``memory-agent migrate-memories``).

``migrate`` moves every memory of the given namespaces from one store to the
other, key for key and value for value: a memory is written to the target
(unless the target already holds exactly that value), read back, and only then
deleted from the source. So a run that stops half-way loses nothing, and
running it again finishes the job: it is idempotent, and a second run reports
nothing left to move.

On the Lakebase side the writes and deletes go through ``memories.write``, so
they are recorded as revisions (``source`` = ``migration``) and what a memory
held before the move stays in its history; a managed store keeps no history.
The times a memory was created and updated are the target's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import BaseStore

from store import memories
from store.managed import ManagedMemoryStore
from store.revisions import Provenance
from store.transfer import _all_items


class MigrationError(RuntimeError):
    """A memory did not arrive as it left; nothing of it was deleted from the source."""


@dataclass
class NamespaceCount:
    namespace: tuple[str, ...]
    found: int = 0
    """Memories the source held."""
    copied: int = 0
    """Written to the target (new there, or holding another value)."""
    already_there: int = 0
    """The target already held exactly this value (an earlier, interrupted run)."""
    removed: int = 0
    """Deleted from the source after the target was checked."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": list(self.namespace),
            "found": self.found,
            "copied": self.copied,
            "already_there": self.already_there,
            "removed": self.removed,
        }


@dataclass
class MigrationReport:
    to: str
    dry_run: bool
    counts: list[NamespaceCount] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(count, name) for count in self.counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "dry_run": self.dry_run,
            "namespaces": [count.as_dict() for count in self.counts],
            **{name: self.total(name) for name in ("found", "copied", "already_there", "removed")},
        }


def _items(store: BaseStore, namespace: tuple[str, ...]) -> list[Any]:
    if isinstance(store, ManagedMemoryStore):
        return store.items(namespace)
    return _all_items(store, namespace)


def migrate(
    source: BaseStore,
    target: BaseStore,
    namespaces: Iterable[tuple[str, ...]],
    *,
    to: str,
    dry_run: bool = False,
) -> MigrationReport:
    """Move the memories of ``namespaces`` from ``source`` to ``target`` (module docstring)."""
    provenance = Provenance(source="migration")
    report = MigrationReport(to=to, dry_run=dry_run)
    for namespace in namespaces:
        count = NamespaceCount(namespace)
        report.counts.append(count)
        for item in _items(source, namespace):
            if tuple(item.namespace) != namespace:
                continue  # a descendant namespace: not a memory of this user or scope
            count.found += 1
            current = target.get(namespace, item.key)
            if current is not None and current.value == item.value:
                count.already_there += 1
            else:
                count.copied += 1
                if not dry_run:
                    memories.write(target, namespace, item.key, item.value, "update", provenance)
            if dry_run:
                continue
            arrived = target.get(namespace, item.key)
            if arrived is None or arrived.value != item.value:
                raise MigrationError(
                    f"memory {item.key!r} of {namespace!r} reads back differently from the "
                    "target; it was left in the source"
                )
            memories.write(source, namespace, item.key, None, "delete", provenance)
            count.removed += 1
    return report
