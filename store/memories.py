"""A user's memories on any LangGraph store: save (with dedup), search, list, delete, forget.

These functions are what the tools, the recall node and the CLI call; they
take the user id from the caller (trusted code), never from the model, and
build the namespace with ``store.namespace.user_namespace`` only. They work on
any ``BaseStore`` with an index (our ``MemoryStore``, the stock PostgresStore,
InMemoryStore); with a ``MemoryStore`` the duplicate check uses its vector mode
(a hybrid score is not a similarity) and forgetting is one DELETE.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore, SearchItem

from store.config import DEFAULT_DEDUP_THRESHOLD
from store.namespace import encode_user_id, user_namespace
from store.postgres import AsyncMemoryStore, MemoryStore

MAX_CONTENT_CHARACTERS = 4000


@dataclass(frozen=True)
class SavedMemory:
    key: str
    updated: bool
    """True when an existing memory (same key, or a near-duplicate) was overwritten."""


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


def _value(text: str, source: dict[str, Any] | None) -> dict[str, Any]:
    return {"content": text, "source": source} if source else {"content": text}


def _similar_kwargs(store: BaseStore) -> dict[str, Any]:
    return {"mode": "vector"} if isinstance(store, MemoryStore | AsyncMemoryStore) else {}


def _duplicate_key(hits: list[SearchItem], threshold: float) -> str | None:
    for hit in hits:
        if hit.score is not None and hit.score >= threshold:
            return hit.key
    return None


def save_memory(
    store: BaseStore,
    user_id: str,
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Store ``content`` for ``user_id``; a near-identical existing memory is updated instead.

    ``source`` says where the memory came from (``{"thread_id": ..., "tool_call_id": ...}``
    when the agent saved it); it is kept beside the content and never embedded.
    """
    namespace = user_namespace(user_id)
    text = _clean(content)
    updated = False
    if key is None:
        hits = store.search(namespace, query=text, limit=1, **_similar_kwargs(store))
        key = _duplicate_key(hits, dedup_threshold)
        updated = key is not None
    else:
        updated = store.get(namespace, key) is not None
    key = key or str(uuid.uuid4())
    store.put(namespace, key, _value(text, source))
    return SavedMemory(key=key, updated=updated)


async def asave_memory(
    store: BaseStore,
    user_id: str,
    content: str,
    key: str | None = None,
    *,
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    source: dict[str, Any] | None = None,
) -> SavedMemory:
    """Async twin of ``save_memory``."""
    namespace = user_namespace(user_id)
    text = _clean(content)
    updated = False
    if key is None:
        hits = await store.asearch(namespace, query=text, limit=1, **_similar_kwargs(store))
        key = _duplicate_key(hits, dedup_threshold)
        updated = key is not None
    else:
        updated = await store.aget(namespace, key) is not None
    key = key or str(uuid.uuid4())
    await store.aput(namespace, key, _value(text, source))
    return SavedMemory(key=key, updated=updated)


def search_memories(store: BaseStore, user_id: str, query: str, limit: int = 5) -> list[SearchItem]:
    """The user's memories most relevant to ``query``, best first."""
    return store.search(user_namespace(user_id), query=query, limit=limit)


async def asearch_memories(
    store: BaseStore, user_id: str, query: str, limit: int = 5
) -> list[SearchItem]:
    """Async twin of ``search_memories``."""
    return await store.asearch(user_namespace(user_id), query=query, limit=limit)


def list_memories(store: BaseStore, user_id: str, limit: int = 100) -> list[SearchItem]:
    """The user's memories, most recently updated first."""
    return store.search(user_namespace(user_id), limit=limit)


async def alist_memories(store: BaseStore, user_id: str, limit: int = 100) -> list[SearchItem]:
    """Async twin of ``list_memories``."""
    return await store.asearch(user_namespace(user_id), limit=limit)


def delete_memory(store: BaseStore, user_id: str, key: str) -> bool:
    """Delete one memory; False when the user has no memory with that key."""
    namespace = user_namespace(user_id)
    if store.get(namespace, key) is None:
        return False
    store.delete(namespace, key)
    return True


async def adelete_memory(store: BaseStore, user_id: str, key: str) -> bool:
    """Async twin of ``delete_memory``."""
    namespace = user_namespace(user_id)
    if await store.aget(namespace, key) is None:
        return False
    await store.adelete(namespace, key)
    return True


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


def memory_lines(items: list[SearchItem]) -> list[str]:
    """One ``[key] content`` line per memory (content flattened to one line)."""
    lines = []
    for item in items:
        content = (
            item.value.get("content", item.value) if isinstance(item.value, dict) else item.value
        )
        lines.append(f"[{item.key}] {' '.join(str(content).split())}")
    return lines


def format_memories(items: list[SearchItem]) -> str:
    """The memories as the model sees them: one ``[key] content`` line each."""
    return "\n".join(memory_lines(items))
