"""A user's memories on any LangGraph store: save (subjects, dedup), update, search, list,
delete, restore, forget.

These functions are what the tools, the recall node and the CLI call; they
take the user id from the caller (trusted code), never from the model, and
build the namespace with ``store.namespace.user_namespace`` only. They work on
any ``BaseStore`` with an index (our ``MemoryStore``, the stock PostgresStore,
InMemoryStore); with a ``MemoryStore`` the duplicate check uses its vector mode
(a hybrid score is not a similarity) and forgetting is one DELETE.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore, SearchItem

from store.config import DEFAULT_DEDUP_THRESHOLD
from store.namespace import encode_user_id, is_shared, shared_namespace, user_namespace
from store.postgres import AsyncMemoryStore, MemoryStore
from store.revisions import Provenance, Revision
from store.subjects import subject_of

MAX_CONTENT_CHARACTERS = 4000


@dataclass(frozen=True)
class SavedMemory:
    key: str
    updated: bool
    """True when an existing memory (same key, same subject, or a near-duplicate) was overwritten."""
    action: str = "create"
    """What the write was: create, update (same key or subject), merge (near-duplicate), restore."""
    previous: str | None = None
    """The content it replaced, if any."""
    revision: int | None = None
    """The revision number recorded (None on a store without a revision history)."""
    unchanged: bool = False
    """True when the memory already said exactly this: nothing was written."""


def _clean(content: str) -> str:
    text = " ".join(str(content).split())
    if not text:
        raise ValueError("memory content is empty")
    if len(text) > MAX_CONTENT_CHARACTERS:
        raise ValueError(
            f"memory content is {len(text)} characters; "
            f"keep one fact under {MAX_CONTENT_CHARACTERS}"
        )
    return text


def _similar_kwargs(store: BaseStore) -> dict[str, Any]:
    # A cosine similarity to compare with the threshold: our stores' vector mode (sync
    # search on MemoryStore, asearch on AsyncMemoryStore; a hybrid score is not one).
    return {"mode": "vector"} if isinstance(store, MemoryStore) else {}


def _asimilar_kwargs(store: BaseStore) -> dict[str, Any]:
    return {"mode": "vector"} if isinstance(store, AsyncMemoryStore) else {}


def _duplicate_key(hits: list[SearchItem], threshold: float) -> str | None:
    for hit in hits:
        if hit.score is not None and hit.score >= threshold:
            return hit.key
    return None


def memory_value(content: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stored value of a memory: ``{"content": ...}``, plus its ``subject`` when it has
    one and its ``source`` (where it was saved from) when given."""
    value: dict[str, Any] = {"content": content}
    if subject := subject_of(content):
        value["subject"] = subject
    if source:
        value["source"] = source
    return value


def _says(value: Any) -> tuple[Any, Any]:
    # What a memory states, whatever its source: saving the same fact again changes nothing.
    return (
        (value.get("content"), value.get("subject")) if isinstance(value, dict) else (value, None)
    )


def content_of(value: Any) -> str:
    """A stored value as one line of text (ours hold ``content``; others are shown as JSON)."""
    if isinstance(value, dict) and "content" in value:
        return " ".join(str(value["content"]).split())
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _saved(key: str, action: str, previous: Any, revision: Revision | None) -> SavedMemory:
    return SavedMemory(
        key=key,
        updated=previous is not None,
        action=action if previous is not None or action == "restore" else "create",
        previous=content_of(previous) if previous is not None else None,
        revision=revision.revision if revision else None,
    )


def write(
    store: BaseStore,
    namespace: tuple[str, ...],
    key: str,
    value: dict[str, Any] | None,
    action: str,
    provenance: Provenance | None = None,
) -> tuple[Any, Revision | None]:
    """Put (or delete, with ``value`` None) one memory with its revision; return (previous, revision).

    On our Postgres store the write and its revision are one transaction; on any
    other store (no revision table) it is a plain put or delete.
    """
    if isinstance(store, MemoryStore):
        revision = store.write_memory(namespace, key, value, action, provenance or Provenance())
        if revision is None:
            return None, None
        return revision.previous, revision
    item = store.get(namespace, key)
    if value is None:
        if item is not None:
            store.delete(namespace, key)
    else:
        store.put(namespace, key, value)
    return (item.value if item else None), None


async def awrite(
    store: BaseStore,
    namespace: tuple[str, ...],
    key: str,
    value: dict[str, Any] | None,
    action: str,
    provenance: Provenance | None = None,
) -> tuple[Any, Revision | None]:
    """Async twin of ``write``."""
    if isinstance(store, AsyncMemoryStore):
        revision = await store.awrite_memory(
            namespace, key, value, action, provenance or Provenance()
        )
        return (revision.previous, revision) if revision else (None, None)
    if isinstance(store, MemoryStore):  # a sync store under ainvoke: same write, in a thread
        return await asyncio.to_thread(write, store, namespace, key, value, action, provenance)
    item = await store.aget(namespace, key)
    if value is None:
        if item is not None:
            await store.adelete(namespace, key)
    else:
        await store.aput(namespace, key, value)
    return (item.value if item else None), None


def _same_subject(items: list[Any]) -> str | None:
    return items[0].key if items else None


def save_to(
    store: BaseStore,
    namespace: tuple[str, ...],
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Save ``content`` in ``namespace``: a fact about a known subject updates that memory,
    a near-identical one is merged into it, anything else is a new memory."""
    text = _clean(content)
    value = memory_value(text, source)
    action = "update"
    if key is None and (subject := value.get("subject")):
        key = _same_subject(store.search(namespace, filter={"subject": subject}, limit=1))
    if key is None:
        hits = store.search(namespace, query=text, limit=1, **_similar_kwargs(store))
        key = _duplicate_key(hits, dedup_threshold)
        action = "merge"
    current = store.get(namespace, key) if key is not None else None
    if current is not None and _says(current.value) == _says(value):
        return SavedMemory(key=current.key, updated=False, action="none", unchanged=True)
    key = key or str(uuid.uuid4())
    previous, revision = write(store, namespace, key, value, action, provenance)
    return _saved(key, action, previous, revision)


async def asave_to(
    store: BaseStore,
    namespace: tuple[str, ...],
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Async twin of ``save_to``."""
    text = _clean(content)
    value = memory_value(text, source)
    action = "update"
    if key is None and (subject := value.get("subject")):
        key = _same_subject(await store.asearch(namespace, filter={"subject": subject}, limit=1))
    if key is None:
        hits = await store.asearch(namespace, query=text, limit=1, **_asimilar_kwargs(store))
        key = _duplicate_key(hits, dedup_threshold)
        action = "merge"
    current = await store.aget(namespace, key) if key is not None else None
    if current is not None and _says(current.value) == _says(value):
        return SavedMemory(key=current.key, updated=False, action="none", unchanged=True)
    key = key or str(uuid.uuid4())
    previous, revision = await awrite(store, namespace, key, value, action, provenance)
    return _saved(key, action, previous, revision)


def save_memory(
    store: BaseStore,
    user_id: str,
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Store ``content`` for ``user_id``; a memory of the same subject, or a near-identical
    one, is updated instead (the old content stays in its revisions).

    ``source`` says where the memory came from (``{"thread_id": ..., "tool_call_id": ...}``
    when the agent saved it); it is kept beside the content and never embedded.
    """
    return save_to(
        store,
        user_namespace(user_id),
        content,
        key,
        dedup_threshold=dedup_threshold,
        provenance=provenance,
        source=source,
    )


async def asave_memory(
    store: BaseStore,
    user_id: str,
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Async twin of ``save_memory``."""
    return await asave_to(
        store,
        user_namespace(user_id),
        content,
        key,
        dedup_threshold=dedup_threshold,
        provenance=provenance,
        source=source,
    )


def update_memory(
    store: BaseStore,
    user_id: str,
    key: str,
    content: str,
    *,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory | None:
    """Replace the content of the user's memory ``key``; None when there is no such memory."""
    namespace = user_namespace(user_id)
    text = _clean(content)
    if store.get(namespace, key) is None:
        return None
    value = memory_value(text, source)
    previous, revision = write(store, namespace, key, value, "update", provenance)
    return _saved(key, "update", previous, revision)


async def aupdate_memory(
    store: BaseStore,
    user_id: str,
    key: str,
    content: str,
    *,
    provenance: Provenance | None = None,
    source: dict[str, Any] | None = None,
) -> SavedMemory | None:
    """Async twin of ``update_memory``."""
    namespace = user_namespace(user_id)
    text = _clean(content)
    if await store.aget(namespace, key) is None:
        return None
    value = memory_value(text, source)
    previous, revision = await awrite(store, namespace, key, value, "update", provenance)
    return _saved(key, "update", previous, revision)


def save_shared(
    store: BaseStore, scope_id: str, content: str, *, provenance: Provenance | None = None
) -> SavedMemory:
    """Add (or update, by subject or near-duplicate) a memory of a shared scope: the admin path.

    No tool calls this: the model can read shared memories, never write them.
    """
    return save_to(store, shared_namespace(scope_id), content, provenance=provenance)


def delete_shared(
    store: BaseStore, scope_id: str, key: str, *, provenance: Provenance | None = None
) -> bool:
    """Delete one memory of a shared scope (admin path); False when there is no such key."""
    previous, _ = write(store, shared_namespace(scope_id), key, None, "delete", provenance)
    return previous is not None


def list_shared(store: BaseStore, scope_id: str, limit: int = 100) -> list[SearchItem]:
    """A shared scope's memories, most recently updated first."""
    return store.search(shared_namespace(scope_id), limit=limit)


class NoSuchRevision(LookupError):
    """The memory has no revision with that number (or no history at all)."""


def memory_history(store: BaseStore, user_id: str, key: str | None = None) -> list[Revision]:
    """The revisions of one of the user's memories (all of them without ``key``), oldest first."""
    if not isinstance(store, MemoryStore):
        raise TypeError(
            "this long-term memory backend keeps no revision history (a Databricks managed "
            "memory store keeps only the current value); MEMORY_BACKEND=lakebase keeps it"
        )
    return store.history(user_namespace(user_id), key)


def restore_memory(
    store: BaseStore,
    user_id: str,
    key: str,
    revision: int,
    *,
    provenance: Provenance | None = None,
) -> SavedMemory:
    """Make memory ``key`` hold what it held at ``revision`` (a new revision, ``restore``).

    Restoring a revision that was a delete deletes the memory.
    """
    namespace = user_namespace(user_id)
    history = memory_history(store, user_id, key)
    chosen = next((r for r in history if r.revision == revision), None)
    if chosen is None:
        numbers = ", ".join(str(r.revision) for r in history) or "none"
        raise NoSuchRevision(
            f"memory {key!r} of user {user_id!r} has no revision {revision} (revisions: {numbers})"
        )
    previous, written = write(store, namespace, key, chosen.value, "restore", provenance)
    return _saved(key, "restore", previous, written)


def _with_shared(own: list[SearchItem], shared: list[SearchItem], limit: int) -> list[SearchItem]:
    # Scores of two namespaces are not on one scale (BM25 is normalised per
    # namespace), so the user's own memories come first and shared ones fill in,
    # up to half of the list when both have enough.
    if not shared:
        return own[:limit]
    room = max(limit - len(own), limit // 2)
    return [*own[: limit - min(room, len(shared))], *shared[:room]][:limit]


def search_memories(
    store: BaseStore,
    user_id: str,
    query: str,
    limit: int = 5,
    *,
    shared: tuple[str, ...] | None = None,
) -> list[SearchItem]:
    """The user's memories most relevant to ``query``, best first (then a shared scope's)."""
    own = store.search(user_namespace(user_id), query=query, limit=limit)
    found = store.search(shared, query=query, limit=limit) if shared else []
    return _with_shared(own, found, limit)


async def asearch_memories(
    store: BaseStore,
    user_id: str,
    query: str,
    limit: int = 5,
    *,
    shared: tuple[str, ...] | None = None,
) -> list[SearchItem]:
    """Async twin of ``search_memories``."""
    own = await store.asearch(user_namespace(user_id), query=query, limit=limit)
    found = await store.asearch(shared, query=query, limit=limit) if shared else []
    return _with_shared(own, found, limit)


def list_memories(
    store: BaseStore, user_id: str, limit: int = 100, *, shared: tuple[str, ...] | None = None
) -> list[SearchItem]:
    """The user's memories, most recently updated first (then a shared scope's)."""
    own = store.search(user_namespace(user_id), limit=limit)
    found = store.search(shared, limit=limit) if shared else []
    return _with_shared(own, found, limit)


async def alist_memories(
    store: BaseStore, user_id: str, limit: int = 100, *, shared: tuple[str, ...] | None = None
) -> list[SearchItem]:
    """Async twin of ``list_memories``."""
    own = await store.asearch(user_namespace(user_id), limit=limit)
    found = await store.asearch(shared, limit=limit) if shared else []
    return _with_shared(own, found, limit)


def delete_memory(
    store: BaseStore, user_id: str, key: str, *, provenance: Provenance | None = None
) -> bool:
    """Delete one memory (its content stays in its revisions); False when there is no such key."""
    previous, _ = write(store, user_namespace(user_id), key, None, "delete", provenance)
    return previous is not None


async def adelete_memory(
    store: BaseStore, user_id: str, key: str, *, provenance: Provenance | None = None
) -> bool:
    """Async twin of ``delete_memory``."""
    previous, _ = await awrite(store, user_namespace(user_id), key, None, "delete", provenance)
    return previous is not None


def forget_user(store: BaseStore, user_id: str) -> int:
    """Delete every memory of ``user_id``; return how many were deleted."""
    namespace = user_namespace(user_id)
    if isinstance(store, MemoryStore):
        return store.forget_namespace(namespace)
    deleted = 0
    while batch := store.search(namespace, limit=500):
        for item in batch:
            store.delete(tuple(item.namespace), item.key)
        deleted += len(batch)
    return deleted


async def aforget_user(store: BaseStore, user_id: str) -> int:
    """Async twin of ``forget_user``."""
    namespace = user_namespace(user_id)
    if isinstance(store, AsyncMemoryStore):
        return await store.aforget_namespace(namespace)
    deleted = 0
    while batch := await store.asearch(namespace, limit=500):
        for item in batch:
            await store.adelete(tuple(item.namespace), item.key)
        deleted += len(batch)
    return deleted


THREADS_ROOT = "user_threads"


def _threads_namespace(user_id: str) -> tuple[str, str]:
    # Kept apart from the memories so that searching memories never returns a thread.
    return (THREADS_ROOT, encode_user_id(user_id))


def record_thread(store: BaseStore, user_id: str, thread_id: str) -> None:
    """Remember that ``user_id`` talked in ``thread_id`` (for ``forget-user --threads``)."""
    namespace = _threads_namespace(user_id)
    if store.get(namespace, thread_id) is None:
        store.put(namespace, thread_id, {"thread_id": thread_id}, index=False)


async def arecord_thread(store: BaseStore, user_id: str, thread_id: str) -> None:
    """Async twin of ``record_thread``."""
    namespace = _threads_namespace(user_id)
    if await store.aget(namespace, thread_id) is None:
        await store.aput(namespace, thread_id, {"thread_id": thread_id}, index=False)


def user_threads(store: BaseStore, user_id: str) -> list[str]:
    """Thread ids ``user_id`` has talked in (as recorded by ``record_thread``)."""
    namespace = _threads_namespace(user_id)
    threads: list[str] = []
    while batch := store.search(namespace, limit=500, offset=len(threads)):
        threads.extend(item.key for item in batch)
    return threads


def forget_threads_record(store: BaseStore, user_id: str) -> int:
    """Delete the record of ``user_id``'s threads; return how many were listed."""
    namespace = _threads_namespace(user_id)
    if isinstance(store, MemoryStore):
        return store.forget_namespace(namespace)
    threads = user_threads(store, user_id)
    for thread_id in threads:
        store.delete(namespace, thread_id)
    return len(threads)


def forget_thread_records(store: BaseStore, thread_ids: list[str]) -> int:
    """Remove ``thread_ids`` from every user's record of threads (after deleting the threads)."""
    if isinstance(store, MemoryStore):
        return store.delete_keys((THREADS_ROOT,), thread_ids)
    removed = 0
    for namespace in store.list_namespaces(prefix=(THREADS_ROOT,)):
        for thread_id in thread_ids:
            if store.get(namespace, thread_id) is not None:
                store.delete(namespace, thread_id)
                removed += 1
    return removed


def memory_lines(items: list[SearchItem]) -> list[str]:
    """One ``[key] content`` line per memory (content flattened to one line); a shared
    scope's memories show as ``[shared:key]``."""
    return [
        f"[{'shared:' if is_shared(tuple(item.namespace)) else ''}{item.key}] "
        f"{content_of(item.value)}"
        for item in items
    ]


def format_memories(items: list[SearchItem]) -> str:
    """The memories as the model sees them: one ``[key] content`` line each."""
    return "\n".join(memory_lines(items))
