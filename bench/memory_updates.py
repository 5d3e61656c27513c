"""Facts that change: does memory keep the current value, and only the current value?

    python -m bench --only updates              offline model, hash embeddings (deterministic)
    python -m bench --only updates --real-model the model AGENT_MODEL configures, via the tools

A scripted suite: USERS users, each with a few subjects ("favourite colour",
"city", ...) whose values are set, changed (in several wordings and
spellings), changed back to an earlier value and deleted, interleaved with
facts that have no subject. Every change is one user message through the whole
agent (recall, model, tools, approval: a delete pauses and the bench approves
it), in a fresh thread. After each change it searches the user's memories for
the subject and counts:

- current first: the top result states the current value;
- superseded as current: any result states an older value of that subject
  (or, after a delete, any value at all);
- revision: the user's revision history grew by exactly one change of the
  expected kind (create, update or delete).

Side by side, in the same run, the same script against the store as it was
before subjects and revisions: every fact saved in one wording ("my X is V"),
a near-duplicate (cosine >= 0.95) merged, anything else added, and "forget my
X" deleting the best-matching memory — an add-only pipeline with dedup, the
kind that keeps conflicting facts (mem0#5576).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.common import bench_database, markdown_table, write_report

USERS = 24
CHANGES_PER_USER = 10
SEED = 13

SUBJECTS: dict[str, list[str]] = {
    "favourite colour": ["blue", "green", "red", "yellow", "purple", "orange"],
    "city": ["Lyon", "Paris", "Berlin", "Oslo", "Madrid", "Lisbon"],
    "favourite food": ["sushi", "pizza", "ramen", "tacos", "paella", "curry"],
    "car": ["a Volvo", "a Tesla", "a Fiat", "a bicycle", "a Renault", "a Kia"],
    "favourite sport": ["tennis", "rugby", "chess", "climbing", "rowing", "judo"],
    "team": ["platform", "data", "search", "billing", "mobile", "security"],
}
# Other wordings of the same subject, as people say them.
SPELLINGS = {"favourite colour": "favorite color", "favourite food": "favorite food"}
NOISE = [
    "prefers green tea in the morning",
    "has two cats",
    "is allergic to peanuts",
    "likes long walks on the beach",
    "plays the piano badly",
    "works mostly remotely",
]


@dataclass
class Change:
    user: str
    kind: str  # set | change | back | delete
    subject: str
    value: str | None
    message: str


@dataclass
class Outcome:
    changes: int = 0
    checked: int = 0
    current_first: int = 0
    superseded_as_current: int = 0
    with_revision: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def count(self, kind: str, top: bool, stale: bool, revised: bool) -> None:
        """Add one checked change of ``kind`` to the totals and to its kind's row."""
        self.changes += 1
        self.checked += 1
        self.current_first += top
        self.superseded_as_current += stale
        self.with_revision += revised
        counts = self.by_kind.setdefault(kind, [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += top
        counts[2] += stale
        counts[3] += revised


def _wording(rng: random.Random, subject: str, value: str, kind: str) -> str:
    said = SPELLINGS.get(subject, subject) if rng.random() < 0.3 else subject
    if kind == "set":
        return rng.choice(
            [f"Remember that my {said} is {value}", f"Please remember that my {said} is {value}."]
        )
    return rng.choice(
        [
            f"My {said} is now {value}",
            f"Actually, my {said} is {value}.",
            f"Update: my {said} changed to {value}",
            f"my {said} is now {value}!",
            f"FYI my {said} has become {value}",
        ]
    )


def script(users: int = USERS, changes_per_user: int = CHANGES_PER_USER) -> list[Change]:
    """The deterministic list of changes, users interleaved."""
    rng = random.Random(SEED)
    per_user: list[list[Change]] = []
    for index in range(users):
        user = f"user{index:02d}.{rng.choice(['eng', 'ops', 'sales'])}@example.com"
        subjects = rng.sample(sorted(SUBJECTS), 3)
        history: dict[str, list[str]] = {}
        current: dict[str, str | None] = {}
        changes: list[Change] = []
        while len(changes) < changes_per_user:
            subject = rng.choice(subjects)
            value = current.get(subject)
            if value is None:
                new = rng.choice(SUBJECTS[subject])
                kind = "set"
            else:
                options = ["change", "change", "delete"]
                if len(set(history.get(subject, []))) >= 2:
                    options += ["back", "back"]
                kind = rng.choice(options)
                if kind == "delete":
                    changes.append(Change(user, "delete", subject, None, f"Forget my {subject}"))
                    current[subject] = None
                    continue
                if kind == "back":
                    earlier = [v for v in history[subject] if v != value]
                    new = earlier[-1]
                else:
                    new = rng.choice([v for v in SUBJECTS[subject] if v not in (value,)])
            history.setdefault(subject, []).append(new)
            current[subject] = new
            changes.append(Change(user, kind, subject, new, _wording(rng, subject, new, kind)))
        per_user.append(changes)
    # Round-robin over users, as turns of many users arrive.
    ordered: list[Change] = []
    for position in range(changes_per_user):
        ordered.extend(changes[position] for changes in per_user)
    return ordered


def _run_turn(graph: Any, user: str, message: str) -> str:
    from langgraph.types import Command

    from graph.context import Context

    config = {"configurable": {"thread_id": f"bench-{uuid.uuid4().hex}"}}
    result = graph.invoke({"messages": [("user", message)]}, config, context=Context(user_id=user))
    while result.get("__interrupt__"):
        result = graph.invoke(Command(resume={"action": "approve"}), config)
    return str(result["messages"][-1].content)


def _states(content: str) -> tuple[str, str] | None:
    from store.subjects import parse_fact

    return parse_fact(content)


def run(url: str | None = None, *, real_model: bool = False, users: int = USERS) -> dict[str, Any]:
    from graph.agent import open_agent
    from graph.settings import Settings
    from store import memories

    changes = script(users)
    outcome = Outcome()
    started = time.perf_counter()
    with bench_database(url) as database_url:
        settings = _settings(Settings, database_url, real_model)
        model = None
        if not real_model:
            from graph.offline_model import OfflineChatModel

            model = OfflineChatModel()
        with open_agent(settings, model=model) as graph:
            store = graph.store
            assert store is not None, graph.long_term_memory_status
            for user in sorted({change.user for change in changes}):
                for fact in random.Random(user).sample(NOISE, 3):
                    memories.save_memory(store, user, fact)
            for change in changes:
                before = {(r.key, r.revision) for r in memories.memory_history(store, change.user)}
                answer = _run_turn(graph, change.user, change.message)
                new = [
                    r
                    for r in memories.memory_history(store, change.user)
                    if (r.key, r.revision) not in before
                ]
                expected = {"set": "create", "delete": "delete"}.get(change.kind, "update")
                revised = len(new) == 1 and new[0].action == expected
                top, stale = _check(store, change.user, change.subject, change.value)
                outcome.count(change.kind, top, stale, revised)
                if not (top and revised) or stale:
                    outcome.failures.append(
                        f"{change.user} {change.kind} {change.message!r} -> {answer!r}"
                    )
    seconds = time.perf_counter() - started
    return {
        "users": len({change.user for change in changes}),
        "changes": outcome.changes,
        "current_first": outcome.current_first,
        "superseded_as_current": outcome.superseded_as_current,
        "with_revision": outcome.with_revision,
        "by_kind": outcome.by_kind,
        "failures": outcome.failures[:20],
        "model": "configured model (AGENT_MODEL)" if real_model else "offline model",
        "seconds": seconds,
    }


def run_add_only(url: str | None = None, *, users: int = USERS) -> dict[str, Any]:
    """The same script on the store's previous behaviour (see the module docstring)."""
    from psycopg_pool import ConnectionPool

    from database.connect import CONNECTION_KWARGS
    from store import memories
    from store.embeddings import HashEmbeddings
    from store.namespace import user_namespace
    from store.postgres import MemoryStore

    changes = script(users)
    outcome = Outcome()
    started = time.perf_counter()
    with (
        bench_database(url) as database_url,
        ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2) as pool,
    ):
        store = MemoryStore(pool, embeddings=HashEmbeddings(384), dims=384)
        store.setup()
        for user in sorted({change.user for change in changes}):
            for fact in random.Random(user).sample(NOISE, 3):
                store.put(user_namespace(user), uuid.uuid4().hex, {"content": fact})
        for change in changes:
            namespace = user_namespace(change.user)
            if change.value is None:
                words = set(f"my {change.subject}".split())
                hits = store.search(namespace, query=f"my {change.subject}", limit=5)
                best = max(
                    hits,
                    key=lambda hit: len(words & set(memories.content_of(hit.value).split())),
                    default=None,
                )
                if best is not None:
                    store.delete(namespace, best.key)
            else:
                text = f"my {change.subject} is {change.value}"
                hits = store.search(namespace, query=text, limit=1, mode="vector")
                duplicate = hits[0].key if hits and (hits[0].score or 0) >= 0.95 else None
                store.put(namespace, duplicate or uuid.uuid4().hex, {"content": text})
            top, stale = _check(store, change.user, change.subject, change.value)
            outcome.count(change.kind, top, stale, False)
    return {
        "users": len({change.user for change in changes}),
        "changes": outcome.changes,
        "current_first": outcome.current_first,
        "superseded_as_current": outcome.superseded_as_current,
        "with_revision": 0,
        "by_kind": outcome.by_kind,
        "failures": [],
        "model": "none (store API, add-only with dedup: the previous behaviour)",
        "seconds": time.perf_counter() - started,
    }


def _settings(settings_class: Any, database_url: str, real_model: bool) -> Any:
    """The agent's settings on the bench database (hash embeddings unless configured)."""
    import os

    saved = {name: os.environ.get(name) for name in ("DATABASE_URL", "AUTO_SETUP", "EMBEDDINGS")}
    os.environ.update({"DATABASE_URL": database_url, "AUTO_SETUP": "1"})
    if not real_model:
        os.environ["EMBEDDINGS"] = "hash"
    try:
        return settings_class.from_env()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check(store: Any, user: str, subject: str, value: str | None) -> tuple[bool, bool]:
    """(top result states ``value``; some result states another value as current)."""
    from store import memories

    found = memories.search_memories(store, user, subject, 5)
    stated = [_states(memories.content_of(item.value)) for item in found]
    about = [fact[1] for fact in stated if fact is not None and fact[0] == subject]
    if value is None:
        return True, bool(about)
    first = stated[0] if stated else None
    top = first is not None and first[0] == subject and first[1].lower() == value.lower()
    stale = any(other.lower() != value.lower() for other in about)
    return top, stale


def render(report: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    text = _render_one(report)
    if baseline is not None:
        text += "\n" + _render_one(baseline)
    write_report("memory_updates", text, {"suite": report, "add_only": baseline})
    return text


def _render_one(report: dict[str, Any]) -> str:
    changes = report["changes"]

    def share(count: int, total: int) -> str:
        return f"{count}/{total} ({100 * count / total:.1f} %)" if total else "-"

    rows = [
        [
            kind,
            counts[0],
            share(counts[1], counts[0]),
            share(counts[2], counts[0]),
            share(counts[3], counts[0]),
        ]
        for kind, counts in sorted(report["by_kind"].items())
    ]
    rows.append(
        [
            "all",
            changes,
            share(report["current_first"], changes),
            share(report["superseded_as_current"], changes),
            share(report["with_revision"], changes),
        ]
    )
    table = markdown_table(
        ["change", "count", "current value first", "superseded value as current", "revision"],
        rows,
    )
    text = (
        f"## Memory updates ({report['model']}, {report['users']} users, "
        f"{changes} changes, {report['seconds']:.0f} s)\n\n{table}\n"
    )
    if report["failures"]:
        text += "\nFirst failures:\n" + "\n".join(f"- {line}" for line in report["failures"])
    return text
