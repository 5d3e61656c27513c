"""Tidy one user's memories: junk, duplicates, rival values of one subject.

``plan_consolidation`` looks at every memory of the user and proposes:

- **subject**: a memory stating a simple fact ("my city is Lyon") whose value
  lacks its ``subject`` (written before subjects existed, or by another
  writer) gets it, so the next new value updates it instead of adding a rival;
- **merge**: of memories saying the same thing (same words once case, spaces
  and punctuation are ignored, or cosine similarity at or above the dedup
  threshold), the most recently updated one is kept and records the merge;
- **contradiction**: of memories giving values for one subject, the most
  recently updated one is current; the older ones are superseded;
- **junk**: empty content, or content with no letters or digits, or a value
  that is not a memory at all.

``apply_consolidation`` makes the changes that lose nothing (subjects, the
merge record on the kept memory) at once, each as a revision with source
``consolidate``; deletions (the duplicates, the superseded values, the junk)
are only proposed: ``graph.consolidation`` puts them up for a human's
approval (``memory-agent pending`` / ``resume``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from langgraph.store.base import BaseStore, SearchItem

from store import memories
from store.config import DEFAULT_DEDUP_THRESHOLD
from store.namespace import user_namespace
from store.revisions import Provenance
from store.subjects import subject_of


@dataclass(frozen=True)
class Deletion:
    key: str
    reason: str
    """junk, duplicate of <key>, or superseded by <key>."""
    content: str


@dataclass
class ConsolidationPlan:
    user_id: str
    subjects: list[tuple[str, str]] = field(default_factory=list)
    """(key, subject) to record."""
    merges: list[tuple[str, list[str]]] = field(default_factory=list)
    """(kept key, duplicate keys)."""
    deletions: list[Deletion] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.subjects or self.merges or self.deletions)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "subjects": [{"key": k, "subject": s} for k, s in self.subjects],
            "merges": [{"kept": k, "duplicates": d} for k, d in self.merges],
            "deletions": [d.__dict__ for d in self.deletions],
        }


def _normal(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.casefold()))


def _is_junk(item: SearchItem) -> bool:
    if not isinstance(item.value, dict) or "content" not in item.value:
        return False  # another writer's value (e.g. the template's): not ours to judge
    return not re.search(r"[^\W_]", str(item.value["content"]))


def _all(store: BaseStore, namespace: tuple[str, ...]) -> list[SearchItem]:
    found: list[SearchItem] = []
    while batch := store.search(namespace, limit=500, offset=len(found)):
        found.extend(batch)
        if len(batch) < 500:
            break
    return [item for item in found if tuple(item.namespace) == namespace]


def plan_consolidation(
    store: BaseStore, user_id: str, *, dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
) -> ConsolidationPlan:
    """What consolidating ``user_id``'s memories would change (nothing is written)."""
    namespace = user_namespace(user_id)
    plan = ConsolidationPlan(user_id)
    items = sorted(_all(store, namespace), key=lambda i: i.updated_at, reverse=True)  # newest first
    gone: set[str] = set()
    for item in items:
        if _is_junk(item):
            plan.deletions.append(Deletion(item.key, "junk", memories.content_of(item.value)))
            gone.add(item.key)
    ours = [
        i for i in items if i.key not in gone and isinstance(i.value, dict) and "content" in i.value
    ]
    # Duplicates: the same words, or near-identical by the embeddings.
    kept_for: dict[str, list[str]] = {}
    for index, item in enumerate(ours):
        if item.key in gone:
            continue
        text = memories.content_of(item.value)
        for older in ours[index + 1 :]:
            if older.key in gone:
                continue
            if _normal(memories.content_of(older.value)) == _normal(text):
                kept_for.setdefault(item.key, []).append(older.key)
                gone.add(older.key)
        hits = store.search(namespace, query=text, limit=5, **memories._similar_kwargs(store))
        for hit in hits:
            if hit.key in gone or hit.key == item.key or hit.score is None:
                continue
            newer = next((i for i in ours if i.key == hit.key), None)
            if newer is None or newer.updated_at > item.updated_at:
                continue
            if hit.score >= dedup_threshold:
                kept_for.setdefault(item.key, []).append(hit.key)
                gone.add(hit.key)
    for kept, duplicates in kept_for.items():
        plan.merges.append((kept, duplicates))
        for key in duplicates:
            content = next(memories.content_of(i.value) for i in ours if i.key == key)
            plan.deletions.append(Deletion(key, f"duplicate of {kept}", content))
    # Rival values of one subject: the newest is current.
    current_for: dict[str, str] = {}
    for item in ours:
        if item.key in gone:
            continue
        subject = item.value.get("subject") or subject_of(memories.content_of(item.value))
        if not subject:
            continue
        if item.value.get("subject") != subject:
            plan.subjects.append((item.key, subject))
        if subject in current_for:
            plan.deletions.append(
                Deletion(
                    item.key,
                    f"superseded by {current_for[subject]}",
                    memories.content_of(item.value),
                )
            )
            gone.add(item.key)
        else:
            current_for[subject] = item.key
    plan.subjects = [(key, subject) for key, subject in plan.subjects if key not in gone]
    return plan


def apply_consolidation(store: BaseStore, plan: ConsolidationPlan) -> int:
    """Make the plan's lossless changes (subjects, merge records); return how many.

    Deletions are not made here: they wait for a human's approval.
    """
    namespace = user_namespace(plan.user_id)
    provenance = Provenance(source="consolidate")
    changed = 0
    for key, subject in plan.subjects:
        item = store.get(namespace, key)
        if item is not None:
            memories.write(
                store, namespace, key, {**item.value, "subject": subject}, "update", provenance
            )
            changed += 1
    for kept, duplicates in plan.merges:
        item = store.get(namespace, kept)
        if item is not None:
            merged = sorted({*item.value.get("merged_from", []), *duplicates})
            memories.write(
                store, namespace, kept, {**item.value, "merged_from": merged}, "merge", provenance
            )
            changed += 1
    return changed
