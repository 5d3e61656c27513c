"""At a table size where the stock store's HNSW plan loses a user's rows, ours stays exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.store.postgres import PostgresStore
from psycopg_pool import ConnectionPool

from store.postgres import MemoryStore

DIMS = 32
TOPICS = 64
OTHER_ROWS = 20_000
USER_ROWS = 400


class QueryVectors(Embeddings):
    """Query texts name precomputed vectors ('q0', 'q1', ...)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors

    def embed_query(self, text: str) -> list[float]:
        return [float(value) for value in self.vectors[int(text[1:])]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _load(url: str, prefix_rows: list[tuple[str, np.ndarray]]) -> None:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY store (prefix, key, value) FROM STDIN") as copy:
            for index, (prefix, _) in enumerate(prefix_rows):
                copy.write_row((prefix, f"k{index}", '{"content": "x"}'))
        with cur.copy("COPY store_vectors (prefix, key, field_name, embedding) FROM STDIN") as copy:
            for index, (prefix, vector) in enumerate(prefix_rows):
                text = "[" + ",".join(f"{value:.6f}" for value in vector) + "]"
                copy.write_row((prefix, f"k{index}", "content", text))
        conn.execute("VACUUM ANALYZE store")
        conn.execute("VACUUM ANALYZE store_vectors")


def test_per_user_search_is_exact_where_the_stock_plan_comes_back_short(
    database_url: str, pool: ConnectionPool[Any]
) -> None:
    generator = np.random.default_rng(5)
    topics = _unit(generator.standard_normal((TOPICS, DIMS)))

    def around_topics(count: int) -> np.ndarray:
        chosen = generator.integers(0, TOPICS, count)
        return _unit(topics[chosen] + generator.standard_normal((count, DIMS)) * 0.1)

    others = around_topics(OTHER_ROWS)
    mine = around_topics(USER_ROWS)
    rows = [(f"user_memories.other{index % 500}", others[index]) for index in range(OTHER_ROWS)]
    # The user's rows are interleaved with everyone else's, as writes over time would be.
    for index, vector in enumerate(mine):
        rows.insert(index * (OTHER_ROWS // USER_ROWS), ("user_memories.me", vector))
    queries = around_topics(20)
    embeddings = QueryVectors(queries)

    ours = MemoryStore(pool, embeddings=embeddings, dims=DIMS, search_mode="vector")
    ours.setup()
    _load(database_url, rows)
    stock = PostgresStore(pool, index={"dims": DIMS, "embed": embeddings, "fields": ["content"]})
    stock.setup()  # the default HNSW index, built over the loaded table
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE store_vectors")

    my_keys = [key for key, (prefix, _) in enumerate(rows) if prefix == "user_memories.me"]
    my_matrix = np.array([rows[key][1] for key in my_keys])
    stock_short = 0
    for number, query in enumerate(queries):
        exact = [f"k{my_keys[i]}" for i in np.argsort(-(my_matrix @ query))[:10]]
        found = ours.search(("user_memories", "me"), query=f"q{number}", limit=10)
        assert [item.key for item in found] == exact
        stock_found = stock.search(("user_memories", "me"), query=f"q{number}", limit=10)
        stock_short += len(stock_found) < 10
    # The same data defeats the stock store: its index returns other users' rows,
    # which the namespace filter then drops.
    assert stock_short >= len(queries) // 2
