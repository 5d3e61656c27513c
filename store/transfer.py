"""Everything held about one user, out to a file and back (exactly), and memories written by
Databricks' LangGraph template moved into our namespaces.

``export_user`` returns the user's rows as JSON-ready data: memories
(``store``, with their vectors from ``store_vectors``, so no re-embedding is
needed), the revision history, the record of the user's threads and, with
``threads=True``, those threads' checkpoints, writes, blobs and tool-call
ledger rows. ``import_user`` puts the same rows back in one transaction
(``database.rows``); an export taken after an import equals the one before.

``import_template_memories`` finds memories in the template's shape: namespace
``("user_memories", user_id.replace(".", "-"))`` with values such as
``{"favorite_color": "blue"}`` (no ``content``). Their labels have lost the
dots, so a label is matched against the user ids this database knows (and any
the caller names); when several known ids map to one label, the template had
already merged their memories and nobody can tell whose is whose: they are
reported and left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langgraph.store.base import BaseStore

from database.rows import export_rows, import_rows
from store import memories
from store.managed import ManagedMemoryStore
from store.namespace import NAMESPACE_ROOT, decode_user_label, encode_user_id, user_namespace
from store.revisions import Provenance

EXPORT_FORMAT = "memory-agent/user-export"
EXPORT_VERSION = 1
THREAD_TABLES = (
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
    "tool_call_ledger",
    "thread_owners",
)


class InvalidExport(ValueError):
    """The file is not an export this version can import; one line says why."""


def _prefixes(user_id: str) -> tuple[str, str]:
    label = encode_user_id(user_id)
    return f"{NAMESPACE_ROOT}.{label}", f"{memories.THREADS_ROOT}.{label}"


def _managed_rows(store: ManagedMemoryStore, user_id: str) -> list[dict[str, Any]]:
    # The memories as store rows (prefix, key, value, times), read from the managed store.
    memory_prefix, _ = _prefixes(user_id)
    return [
        {
            "prefix": memory_prefix,
            "key": item.key,
            "value": item.value,
            "created_at": item.created_at.isoformat(),
            "updated_at": item.updated_at.isoformat(),
        }
        for item in store.items(user_namespace(user_id))
    ]


def export_user(
    pool: Any, user_id: str, *, threads: bool = False, memory_store: BaseStore | None = None
) -> dict[str, Any]:
    """Every row held about ``user_id`` (and with ``threads``, their threads), as data.

    With a managed ``memory_store`` (store.managed) the memories are read from it (no
    vectors, no revisions: the service keeps neither); the rest comes from ``pool``.
    """
    memory_prefix, threads_prefix = _prefixes(user_id)
    managed = isinstance(memory_store, ManagedMemoryStore)
    with pool.connection() as conn, conn.transaction():  # one snapshot
        store_rows = export_rows(
            conn,
            "store",
            "t.prefix = ANY(%s)",
            ([threads_prefix] if managed else [memory_prefix, threads_prefix],),
        )
        if managed:
            store_rows += _managed_rows(cast(ManagedMemoryStore, memory_store), user_id)
        data: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "user_id": user_id,
            "store": sorted(store_rows, key=lambda row: (row["prefix"], row["key"])),
            "store_vectors": []
            if managed
            else sorted(
                export_rows(conn, "store_vectors", "t.prefix = %s", (memory_prefix,)),
                key=lambda row: (row["key"], row["field_name"]),
            ),
            "memory_revisions": []
            if managed
            else sorted(
                export_rows(conn, "memory_revisions", "t.prefix = %s", (memory_prefix,)),
                key=lambda row: (row["key"], row["revision"]),
            ),
        }
        if threads:
            ids = sorted(row["key"] for row in store_rows if row["prefix"] == threads_prefix)
            data["threads"] = {
                table: sorted(
                    export_rows(conn, table, "t.thread_id = ANY(%s)", (ids,)),
                    key=lambda row: sorted((k, str(v)) for k, v in row.items()),
                )
                for table in THREAD_TABLES
            }
    return data


def _check_export(data: Any) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise InvalidExport(f"not a memory-agent user export (expected format {EXPORT_FORMAT!r})")
    if data.get("version") != EXPORT_VERSION:
        raise InvalidExport(f"export version {data.get('version')!r} is not {EXPORT_VERSION}")
    user_id = data.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidExport("the export names no user_id")
    memory_prefix, threads_prefix = _prefixes(user_id)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in ("store", "store_vectors", "memory_revisions"):
        rows = data.get(table, [])
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise InvalidExport(f"{table!r} must be a list of rows")
        allowed = {memory_prefix, threads_prefix} if table == "store" else {memory_prefix}
        if any(row.get("prefix") not in allowed for row in rows):
            raise InvalidExport(f"{table!r} holds rows of another user than {user_id!r}")
        tables[table] = rows
    thread_ids = {row.get("key") for row in tables["store"] if row.get("prefix") == threads_prefix}
    threads = data.get("threads") or {}
    if not isinstance(threads, dict) or set(threads) - set(THREAD_TABLES):
        raise InvalidExport(f"'threads' must map {', '.join(THREAD_TABLES)} to rows")
    for table, rows in threads.items():
        if not isinstance(rows, list) or any(
            not isinstance(row, dict) or row.get("thread_id") not in thread_ids for row in rows
        ):
            raise InvalidExport(f"threads.{table} holds rows of a thread the user has no record of")
        if table == "thread_owners" and any(row.get("user_id") != user_id for row in rows):
            raise InvalidExport("threads.thread_owners gives a thread to another user")
        tables[table] = rows
    return user_id, tables


def import_user(pool: Any, data: Any, *, memory_store: BaseStore | None = None) -> dict[str, int]:
    """Put an ``export_user`` file's rows back (existing rows are kept); rows added per table.

    Raises ``InvalidExport`` before anything is written when the data is not a
    well-formed export of one user. With a managed ``memory_store`` the memories go
    there (a memory already at its key is kept); vectors and revisions, which it
    cannot hold, are not imported (counted 0).
    """
    user_id, tables = _check_export(data)
    counts: dict[str, int] = {}
    if isinstance(memory_store, ManagedMemoryStore):
        memory_prefix, _ = _prefixes(user_id)
        namespace = user_namespace(user_id)
        added = 0
        for row in tables["store"]:
            if row["prefix"] == memory_prefix and memory_store.get(namespace, row["key"]) is None:
                memory_store.put(namespace, row["key"], row["value"])
                added += 1
        tables["store"] = [row for row in tables["store"] if row["prefix"] != memory_prefix]
        tables["store_vectors"] = tables["memory_revisions"] = []
        counts["memories"] = added
    with pool.connection() as conn, conn.transaction():
        # store before store_vectors (foreign key); checkpoints before their writes.
        for table in ("store", "store_vectors", "memory_revisions", *THREAD_TABLES):
            if table in tables:
                counts[table] = import_rows(conn, table, tables[table])
    return counts


# -- the Databricks template's memories -----------------------------------------


def template_label(user_id: str) -> str:
    """The label Databricks' LangGraph template gives ``user_id`` (it merges "." and "-")."""
    return user_id.replace(".", "-")


@dataclass
class TemplateImport:
    """What ``import_template_memories`` did (or, in a dry run, would do)."""

    moved: list[tuple[str, str, str]] = field(default_factory=list)
    """(template label, key, our user id) per memory re-keyed into our namespace."""
    collisions: dict[str, list[str]] = field(default_factory=dict)
    """Template label -> the known user ids it merged; left alone."""
    assumed: list[str] = field(default_factory=list)
    """Labels no known user maps to, imported as that user id."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved": [
                {"template_label": label, "key": key, "user_id": user}
                for label, key, user in self.moved
            ],
            "collisions": self.collisions,
            "assumed_user_ids": self.assumed,
        }


def template_content(value: dict[str, Any]) -> str:
    """A template value such as ``{"favorite_color": "blue"}`` as one fact we can search."""
    parts = []
    for name, item in value.items():
        words = " ".join(str(name).replace("_", " ").split())
        parts.append(
            f"my {words} is {item}" if not isinstance(item, dict | list) else f"{words}: {item}"
        )
    return "; ".join(parts) or "(empty)"


def _is_template_value(value: Any) -> bool:
    return isinstance(value, dict) and "content" not in value


def known_user_ids(store: BaseStore) -> set[str]:
    """User ids this database knows: users who talked to the agent, or hold memories of ours
    (a namespace holding only template-shaped memories names no user: it is what we re-key)."""
    known: set[str] = set()
    for root in (NAMESPACE_ROOT, memories.THREADS_ROOT):
        for namespace in store.list_namespaces(prefix=(root,), max_depth=2, limit=100000):
            if len(namespace) != 2 or (user := decode_user_label(namespace[1])) is None:
                continue
            if root == NAMESPACE_ROOT and all(
                _is_template_value(item.value) for item in _all_items(store, namespace)
            ):
                continue
            known.add(user)
    return known


def import_template_memories(
    store: BaseStore, *, users: Iterable[str] = (), dry_run: bool = False
) -> TemplateImport:
    """Re-key template-shaped memories into our namespaces; report collisions (see module doc)."""
    known = known_user_ids(store) | set(users)
    by_label: dict[str, set[str]] = {}
    for user in known:
        by_label.setdefault(template_label(user), set()).add(user)
    report = TemplateImport()
    for namespace in store.list_namespaces(prefix=(NAMESPACE_ROOT,), max_depth=2, limit=100000):
        if len(namespace) != 2:
            continue
        label = namespace[1]
        items = [item for item in _all_items(store, namespace) if _is_template_value(item.value)]
        if not items:
            continue
        owners = sorted(by_label.get(label, set()))
        # Two users whose ids differ only in "." and "-": the template's one label holds both.
        if len(owners) > 1:
            report.collisions[label] = owners
            continue
        if owners:
            owner = owners[0]
        else:
            owner = decode_user_label(label) or label
            report.assumed.append(label)
        for item in items:
            report.moved.append((label, item.key, owner))
            if dry_run:
                continue
            _move(store, tuple(namespace), item, owner)
    return report


def _all_items(store: BaseStore, namespace: Sequence[str]) -> list[Any]:
    found: list[Any] = []
    while batch := store.search(tuple(namespace), limit=500, offset=len(found)):
        found.extend(item for item in batch if tuple(item.namespace) == tuple(namespace))
        if len(batch) < 500:
            break
    return found


def _move(store: BaseStore, namespace: tuple[str, ...], item: Any, owner: str) -> None:
    provenance = Provenance(source="import")
    target = user_namespace(owner)
    value = {**memories.memory_value(template_content(item.value)), "template_value": item.value}
    # Same key, so the template's get_user_memory(key) and ours name the same fact; in the
    # same namespace (ids without dots) this is an update whose revision keeps the original.
    memories.write(store, target, item.key, value, "update", provenance)
    if target != namespace:
        memories.write(store, namespace, item.key, None, "delete", provenance)
