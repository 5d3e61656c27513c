"""MemoryStore on a real Postgres: isolation, modes, compatibility with the stock store, setup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langgraph.store.postgres import PostgresStore
from psycopg_pool import ConnectionPool

from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.namespace import user_namespace
from store.postgres import EmbeddingDimensionMismatch, MemoryStore
from tests.store.conftest import DIMS
from tests.store.test_namespace import ADVERSARIAL_IDS

REPO = Path(__file__).resolve().parents[2]

FACTS = {
    "tea": "prefers green tea in the morning",
    "dog": "has a dog called Rex who loves the beach",
    "city": "moved to Lyon in 2021 for a job at a bakery",
    "bike": "rides a red road bike to work every day",
}


def _fill(store: MemoryStore, user: str) -> None:
    for key, content in FACTS.items():
        store.put(user_namespace(user), key, {"content": content})


@pytest.mark.parametrize("mode", ["vector", "lexical", "hybrid"])
def test_search_finds_the_users_fact_in_every_mode(memory_store: MemoryStore, mode: str) -> None:
    _fill(memory_store, "alice")
    found = memory_store.search(user_namespace("alice"), query="what is my dog's name", mode=mode)
    assert found[0].key == "dog"
    assert found[0].namespace == ["user_memories", "alice"] or tuple(found[0].namespace) == (
        "user_memories",
        "alice",
    )


def test_default_mode_is_hybrid_and_scores_are_ordered(memory_store: MemoryStore) -> None:
    _fill(memory_store, "alice")
    found = memory_store.search(user_namespace("alice"), query="tea morning", limit=4)
    assert found[0].key == "tea"
    scores = [item.score for item in found]
    assert scores == sorted(scores, reverse=True)


def test_adversarial_ids_never_share_memories(memory_store: MemoryStore) -> None:
    for index, user_id in enumerate(ADVERSARIAL_IDS):
        memory_store.put(user_namespace(user_id), "fact", {"content": f"secret number {index}"})
    for index, user_id in enumerate(ADVERSARIAL_IDS):
        namespace = user_namespace(user_id)
        for mode in ("vector", "lexical", "hybrid"):
            found = memory_store.search(namespace, query="secret number", limit=50, mode=mode)
            assert [item.value["content"] for item in found] == [f"secret number {index}"]
        listed = memory_store.search(namespace, limit=50)
        assert [item.value["content"] for item in listed] == [f"secret number {index}"]


def test_a_user_namespace_does_not_match_a_longer_user_id(memory_store: MemoryStore) -> None:
    memory_store.put(user_namespace("ann"), "k", {"content": "ann likes jazz"})
    memory_store.put(user_namespace("ann_"), "k", {"content": "ann_ likes jazz"})
    memory_store.put(user_namespace("anna"), "k", {"content": "anna likes jazz"})
    found = memory_store.search(user_namespace("ann"), query="jazz", limit=10)
    assert [item.value["content"] for item in found] == ["ann likes jazz"]


def test_search_returns_min_of_limit_and_count(memory_store: MemoryStore) -> None:
    namespace = user_namespace("bob")
    for index in range(30):
        memory_store.put(
            namespace, f"k{index}", {"content": f"note {index} about topic {index % 3}"}
        )
    for mode in ("vector", "hybrid"):
        assert (
            len(memory_store.search(namespace, query="unrelated words", limit=10, mode=mode)) == 10
        )
        assert len(memory_store.search(namespace, query="note", limit=50, mode=mode)) == 30
    assert len(memory_store.search(namespace, query="note", limit=5, offset=27, mode="vector")) == 3


def test_filters_apply_in_every_mode(memory_store: MemoryStore) -> None:
    namespace = user_namespace("carol")
    memory_store.put(namespace, "a", {"content": "likes tea", "kind": "preference"})
    memory_store.put(namespace, "b", {"content": "likes tea a lot", "kind": "fact"})
    for mode in ("vector", "lexical", "hybrid"):
        found = memory_store.search(namespace, query="tea", filter={"kind": "fact"}, mode=mode)
        assert [item.key for item in found] == ["b"]


def test_vector_search_is_exact_against_numpy(memory_store: MemoryStore) -> None:
    import numpy as np

    namespace = user_namespace("dave")
    embeddings = HashEmbeddings(DIMS)
    texts = [
        f"item {index} colour {index % 7} shape {index % 11} size {index % 5}"
        for index in range(300)
    ]
    for index, text in enumerate(texts):
        memory_store.put(namespace, f"k{index:03d}", {"content": text})
    query = "colour 3 shape 4"
    matrix = np.array(embeddings.embed_documents(texts))
    similarity = matrix @ np.array(embeddings.embed_query(query))
    expected = {f"k{index:03d}" for index in np.argsort(-similarity)[:10]}
    found = memory_store.search(namespace, query=query, limit=10, mode="vector")
    assert {item.key for item in found} == expected


def test_search_runs_in_a_read_only_session(database_url: str, memory_store: MemoryStore) -> None:
    _fill(memory_store, "erin")
    read_only = {**CONNECTION_KWARGS, "options": "-c default_transaction_read_only=on"}
    with ConnectionPool(database_url, kwargs=read_only, min_size=1, max_size=2) as pool:
        replica = MemoryStore(pool, embeddings=HashEmbeddings(DIMS), dims=DIMS)
        for mode in ("vector", "lexical", "hybrid"):
            assert replica.search(user_namespace("erin"), query="bike", mode=mode)[0].key == "bike"
        assert replica.search(user_namespace("erin"), query="bike")[0].key == "bike"
        assert replica.get(user_namespace("erin"), "tea") is not None
        # The stock store writes on every search, so it fails on a read replica.
        stock = PostgresStore(pool, index={"dims": DIMS, "embed": HashEmbeddings(DIMS)})
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            stock.search(user_namespace("erin"), query="bike")


def test_stock_store_reads_ours_and_we_read_the_stock_stores(
    pool: ConnectionPool[Any], memory_store: MemoryStore
) -> None:
    _fill(memory_store, "frank")
    stock = PostgresStore(
        pool, index={"dims": DIMS, "embed": HashEmbeddings(DIMS), "fields": ["content"]}
    )
    stock.setup()  # adds its HNSW index to our tables; must not disturb them
    assert stock.get(user_namespace("frank"), "tea").value == {"content": FACTS["tea"]}
    assert stock.search(user_namespace("frank"), query="road bike", limit=1)[0].key == "bike"
    stock.put(user_namespace("gina"), "pet", {"content": "has a cat named Miso"})
    memory_store.setup()
    for mode in ("vector", "lexical", "hybrid"):
        assert (
            memory_store.search(user_namespace("gina"), query="cat name", mode=mode)[0].key == "pet"
        )


def test_dimension_mismatch_is_a_clear_error_and_writes_nothing(
    pool: ConnectionPool[Any], memory_store: MemoryStore
) -> None:
    _fill(memory_store, "hank")
    other = MemoryStore(pool, embeddings=HashEmbeddings(32), dims=32)
    with pytest.raises(EmbeddingDimensionMismatch, match=rf"{DIMS}-dimension.*produce 32"):
        other.setup()
    with pytest.raises(EmbeddingDimensionMismatch, match=rf"{DIMS}.*32"):
        other.put(user_namespace("hank"), "new", {"content": "should not be written"})
    with pytest.raises(EmbeddingDimensionMismatch):
        other.search(user_namespace("hank"), query="tea")
    assert memory_store.count(user_namespace("hank")) == len(FACTS)
    assert memory_store.get(user_namespace("hank"), "new") is None


def test_forget_namespace_removes_only_that_user(memory_store: MemoryStore) -> None:
    _fill(memory_store, "ivy")
    _fill(memory_store, "ivy.")
    _fill(memory_store, "ivy2")
    assert memory_store.forget_namespace(user_namespace("ivy")) == len(FACTS)
    assert memory_store.count(user_namespace("ivy")) == 0
    assert memory_store.count(user_namespace("ivy.")) == len(FACTS)
    assert memory_store.count(user_namespace("ivy2")) == len(FACTS)
    with memory_store._cursor() as cur:
        cur.execute(
            "SELECT count(*) AS n FROM store_vectors WHERE prefix = %s", ("user_memories.ivy",)
        )
        assert cur.fetchone()["n"] == 0


def test_updates_keep_lexical_and_vector_search_current(memory_store: MemoryStore) -> None:
    namespace = user_namespace("jack")
    memory_store.put(namespace, "k", {"content": "likes tea"})
    memory_store.put(namespace, "k", {"content": "likes espresso"})
    assert memory_store.search(namespace, query="tea", mode="lexical") == []
    assert memory_store.search(namespace, query="espresso", mode="lexical")[0].key == "k"
    best = memory_store.search(namespace, query="likes espresso", mode="vector")[0]
    assert best.key == "k" and best.score == pytest.approx(1.0, abs=1e-4)


def test_ttl_is_optional_and_omits_expired(pool: ConnectionPool[Any]) -> None:
    store = MemoryStore(
        pool,
        embeddings=HashEmbeddings(DIMS),
        dims=DIMS,
        ttl={"default_ttl": 60, "refresh_on_read": True, "omit_expired": True},
    )
    store.setup()
    namespace = user_namespace("kim")
    store.put(namespace, "old", {"content": "old tea fact"}, ttl=60)
    store.put(namespace, "new", {"content": "new tea fact"}, ttl=60)
    with store._cursor() as cur:
        cur.execute("UPDATE store SET expires_at = now() - interval '1 minute' WHERE key = 'old'")
    for mode in ("vector", "lexical", "hybrid"):
        assert [item.key for item in store.search(namespace, query="tea fact", mode=mode)] == [
            "new"
        ]
    assert store.sweep_ttl() == 1


def test_setup_twice_is_idempotent(memory_store: MemoryStore) -> None:
    memory_store.setup()
    memory_store.setup()
    with memory_store._cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM store_migrations")
        store_versions = cur.fetchone()["n"]
        cur.execute("SELECT count(*) AS n, count(DISTINCT v) AS d FROM vector_migrations")
        row = cur.fetchone()
    assert store_versions == len(PostgresStore.MIGRATIONS)
    assert row["n"] == row["d"]


SETUP_SCRIPT = """
import sys
from psycopg_pool import ConnectionPool
from database.connect import CONNECTION_KWARGS
from store.embeddings import HashEmbeddings
from store.postgres import MemoryStore
with ConnectionPool(sys.argv[1], kwargs=CONNECTION_KWARGS, min_size=1, max_size=1) as pool:
    MemoryStore(pool, embeddings=HashEmbeddings(64), dims=64).setup()
print("ok")
"""


def test_two_processes_can_set_up_at_once(database_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SETUP_SCRIPT, database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stdout.strip() == "ok"
    with psycopg.connect(database_url) as conn:
        versions = conn.execute("SELECT v FROM store_migrations ORDER BY v").fetchall()
        assert [row[0] for row in versions] == list(range(len(PostgresStore.MIGRATIONS)))
        columns = conn.execute(
            "SELECT count(*) FROM pg_attribute"
            " WHERE attrelid = 'store'::regclass AND attname = 'search_text'"
        ).fetchone()
        assert columns == (1,)
