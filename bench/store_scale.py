"""The memory store at scale: our MemoryStore beside LangGraph's stock PostgresStore.

One table, loaded once with synthetic 384-dimension memories (by COPY), read by
both stores in the same run: many users with 100 memories (10,000 of them with
``--large``, a 1,000,000-row table), plus users with 10, 1,000, 3,000 and
10,000 memories. The stock store is given its default HNSW index, as
DatabricksStore would create it. For each user size it prints recall@10
against an exact top-10 (numpy, full precision), the share of short result
lists (fewer than min(10, the user's count)), and p50/p95 search latency;
then the put rate of each store on a fresh database.

Vectors are drawn around 256 shared topics, so users talk about the same
things, as real users do: the table's global nearest neighbours of a query
mostly belong to other users, which is the case an index that filters after
searching gets wrong.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from langchain_core.embeddings import Embeddings
from langgraph.store.base import PutOp
from langgraph.store.postgres import PostgresStore
from psycopg_pool import ConnectionPool

from bench.common import bench_database, markdown_table, median, percentile, write_report
from database.connect import CONNECTION_KWARGS
from store.postgres import MemoryStore

DIMS = 384
TOPICS = 256
NOISE = 0.05  # per-dimension noise around a topic: cosine to the topic centre ~0.7
K = 10
ROOT = "user_memories"


@dataclass(frozen=True)
class ScaleConfig:
    background_users: int
    """Users with 100 memories each (the bulk of the table)."""
    sized_users: dict[int, int]
    """Extra users: memories per user -> how many such users."""
    probe_users: dict[int, int]
    """Users searched per size."""
    queries_per_user: dict[int, int]
    ingest_memories: int = 2000

    @property
    def total_rows(self) -> int:
        return self.background_users * 100 + sum(s * n for s, n in self.sized_users.items())


QUICK = ScaleConfig(
    background_users=500,
    sized_users={10: 100, 1000: 1, 3000: 1, 10000: 1},
    probe_users={10: 20, 100: 20, 1000: 1, 3000: 1, 10000: 1},
    queries_per_user={10: 2, 100: 2, 1000: 40, 3000: 40, 10000: 40},
)
LARGE = ScaleConfig(
    background_users=10_000,
    sized_users={10: 200, 1000: 3, 3000: 3, 10000: 3},
    probe_users={10: 30, 100: 30, 1000: 3, 3000: 3, 10000: 3},
    queries_per_user={10: 2, 100: 2, 1000: 20, 3000: 20, 10000: 20},
    ingest_memories=2000,
)


@dataclass
class User:
    label: str
    size: int
    seed: int

    @property
    def prefix(self) -> str:
        return f"{ROOT}.{self.label}"

    @property
    def namespace(self) -> tuple[str, str]:
        return (ROOT, self.label)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class Corpus:
    """Deterministic synthetic memories: a user's vectors are regenerated from its seed."""

    def __init__(self, seed: int = 7) -> None:
        generator = np.random.default_rng(seed)
        self.topics = _unit(generator.standard_normal((TOPICS, DIMS)))

    def vectors(self, user: User) -> np.ndarray:
        generator = np.random.default_rng(user.seed)
        topics = generator.integers(0, TOPICS, user.size)
        noise = generator.standard_normal((user.size, DIMS)) * NOISE
        return _unit(self.topics[topics] + noise)

    def queries(self, user: User, count: int) -> np.ndarray:
        # Queries are about topics the user has memories on, worded differently (fresh noise).
        generator = np.random.default_rng(user.seed + 10**9)
        own_topics = np.random.default_rng(user.seed).integers(0, TOPICS, user.size)
        picked = generator.choice(own_topics, count)
        return _unit(self.topics[picked] + generator.standard_normal((count, DIMS)) * NOISE)


class LookupEmbeddings(Embeddings):
    """Query texts 'q<n>' map to precomputed vectors; both stores embed through it."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}

    def add(self, vector: np.ndarray) -> str:
        text = f"q{len(self.vectors)}"
        self.vectors[text] = [float(value) for value in vector]
        return text

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


# -- loading -------------------------------------------------------------------


def make_users(config: ScaleConfig) -> list[User]:
    users = [User(f"bg{index:05d}", 100, index) for index in range(config.background_users)]
    seed = 1_000_000
    for size, count in sorted(config.sized_users.items()):
        for index in range(count):
            users.append(User(f"s{size}-{index}", size, seed))
            seed += 1
    return users


def _binary_copy_header() -> bytes:
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)


def _text_field(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!i", len(data)) + data


def _vector_field(vector: np.ndarray) -> bytes:
    # pgvector's binary format: int16 dimensions, int16 unused, big-endian float4s.
    payload = struct.pack("!hh", DIMS, 0) + vector.astype(">f4").tobytes()
    return struct.pack("!i", len(payload)) + payload


def _rows_interleaved(
    corpus: Corpus, users: Sequence[User]
) -> Iterator[tuple[User, int, np.ndarray]]:
    """Rows in arrival order: blocks of users whose memories interleave, as writes would."""
    shuffled = list(users)
    random.Random(3).shuffle(shuffled)
    block = 400
    for start in range(0, len(shuffled), block):
        members = shuffled[start : start + block]
        vectors = {user.label: corpus.vectors(user) for user in members}
        for index in range(max(user.size for user in members)):
            for user in members:
                if index < user.size:
                    yield user, index, vectors[user.label][index]


def bulk_load(url: str, corpus: Corpus, users: Sequence[User]) -> tuple[int, float]:
    """COPY every user's memories into store and store_vectors; return (rows, seconds)."""
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            with cur.copy("COPY store (prefix, key, value) FROM STDIN") as copy:
                for user in users:
                    for index in range(user.size):
                        copy.write_row(
                            (
                                user.prefix,
                                f"m{index:05d}",
                                f'{{"content": "memory {index} of {user.label}"}}',
                            )
                        )
            with cur.copy(
                "COPY store_vectors (prefix, key, field_name, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(_binary_copy_header())
                buffer: list[bytes] = []
                for user, index, vector in _rows_interleaved(corpus, users):
                    buffer.append(
                        struct.pack("!h", 4)
                        + _text_field(user.prefix)
                        + _text_field(f"m{index:05d}")
                        + _text_field("content")
                        + _vector_field(vector)
                    )
                    rows += 1
                    if len(buffer) >= 5000:
                        copy.write(b"".join(buffer))
                        buffer.clear()
                buffer.append(struct.pack("!h", -1))
                copy.write(b"".join(buffer))
        conn.execute("VACUUM ANALYZE store")
        conn.execute("VACUUM ANALYZE store_vectors")
    return rows, time.perf_counter() - started


# -- measuring -------------------------------------------------------------------


PASSES = 3
"""Every query runs this many times per store; latency figures are medians over passes."""


@dataclass
class SizeResult:
    size: int
    queries: int = 0
    recall: list[float] = field(default_factory=list)
    short: int = 0
    latency_ms: list[list[float]] = field(default_factory=lambda: [[] for _ in range(PASSES)])

    def summary(self) -> dict[str, Any]:
        return {
            "user_size": self.size,
            "queries": self.queries,
            "recall_at_10": float(np.mean(self.recall)) if self.recall else float("nan"),
            "short_lists_pct": 100.0 * self.short / self.queries if self.queries else float("nan"),
            "p50_ms": median([median(one_pass) for one_pass in self.latency_ms]),
            "p95_ms": median([percentile(one_pass, 0.95) for one_pass in self.latency_ms]),
            "passes": PASSES,
        }


def _exact_top(vectors: np.ndarray, query: np.ndarray, k: int) -> list[str]:
    similarity = vectors @ query
    order = np.argsort(-similarity, kind="stable")[:k]
    return [f"m{index:05d}" for index in order]


def measure_search(
    stores: dict[str, Any],
    corpus: Corpus,
    users: Sequence[User],
    config: ScaleConfig,
    embeddings: LookupEmbeddings,
) -> dict[str, dict[int, SizeResult]]:
    by_size: dict[int, list[User]] = {}
    for user in users:
        by_size.setdefault(user.size, []).append(user)
    results: dict[str, dict[int, SizeResult]] = {name: {} for name in stores}
    picker = random.Random(11)
    for size in sorted(config.probe_users):
        probes = picker.sample(
            by_size.get(size, []), min(config.probe_users[size], len(by_size.get(size, [])))
        )
        cases: list[tuple[User, str, list[str]]] = []
        for user in probes:
            vectors = corpus.vectors(user)
            for query in corpus.queries(user, config.queries_per_user[size]):
                cases.append((user, embeddings.add(query), _exact_top(vectors, query, K)))
        for name in stores:
            results[name][size] = SizeResult(size)
        # Warm both stores on the same cases once, then measure, alternating stores per query.
        for store in stores.values():
            for user, text, _ in cases[: min(len(cases), 10)]:
                store.search(user.namespace, query=text, limit=K)
        for repeat in range(PASSES):
            for user, text, exact in cases:
                expected = min(K, user.size)
                for name, store in stores.items():
                    started = time.perf_counter()
                    found = store.search(user.namespace, query=text, limit=K)
                    elapsed = (time.perf_counter() - started) * 1000
                    result = results[name][size]
                    result.latency_ms[repeat].append(elapsed)
                    if repeat == 0:
                        result.queries += 1
                        keys = {item.key for item in found}
                        result.recall.append(len(keys & set(exact)) / expected)
                        if len(found) < expected:
                            result.short += 1
    return results


def measure_ingest(url: str, count: int) -> dict[str, float]:
    """Puts per second through each store's API on a fresh database (embedding excluded)."""
    corpus = Corpus()
    user = User("ingest", count, 424242)
    vectors = corpus.vectors(user)
    embeddings = LookupEmbeddings()
    texts = [embeddings.add(vector) for vector in vectors]
    rates: dict[str, float] = {}
    for name in ("ours", "stock"):
        with (
            bench_database(url_hint(url)) as fresh,
            ConnectionPool(fresh, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2) as pool,
        ):
            store: Any
            if name == "ours":
                store = MemoryStore(pool, embeddings=embeddings, dims=DIMS, search_mode="vector")
            else:
                store = PostgresStore(
                    pool, index={"dims": DIMS, "embed": embeddings, "fields": ["content"]}
                )
            store.setup()
            started = time.perf_counter()
            for start in range(0, count, 50):
                store.batch(
                    [
                        PutOp(user.namespace, f"m{index:05d}", {"content": texts[index]})
                        for index in range(start, min(count, start + 50))
                    ]
                )
            rates[name] = count / (time.perf_counter() - started)
    return rates


def url_hint(url: str) -> str | None:
    # Fresh ingest databases go on the same server as the big table.
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(url)
    params["dbname"] = "postgres"
    return make_conninfo(**params)


def run(large: bool = False, url: str | None = None, log: Any = print) -> dict[str, Any]:
    """Run the scale benchmark; return the figures (and write results/store_scale*.md|json)."""
    config = LARGE if large else QUICK
    corpus = Corpus()
    users = make_users(config)
    embeddings = LookupEmbeddings()
    report: dict[str, Any] = {"rows": config.total_rows, "dims": DIMS, "large": large}
    with bench_database(url) as database_url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            # Room for the HNSW build (the graph must fit in memory to build fast).
            conn.execute("SELECT set_config('maintenance_work_mem', '4GB', false)")
            conn.execute(
                psycopg.sql.SQL("ALTER DATABASE {} SET maintenance_work_mem = '4GB'").format(
                    psycopg.sql.Identifier(conn.info.dbname)
                )
            )
        with ConnectionPool(database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=4) as pool:
            ours = MemoryStore(pool, embeddings=embeddings, dims=DIMS, search_mode="vector")
            ours.setup()
            log(f"loading {config.total_rows:,} memories of {len(users):,} users by COPY ...")
            rows, seconds = bulk_load(database_url, corpus, users)
            report["bulk_load_rows_per_second"] = rows / seconds
            log(f"  {rows:,} rows in {seconds:.0f} s ({rows / seconds:,.0f} rows/s)")
            stock = PostgresStore(
                pool, index={"dims": DIMS, "embed": embeddings, "fields": ["content"]}
            )
            started = time.perf_counter()
            stock.setup()  # builds the stock HNSW index over the loaded table
            report["hnsw_build_seconds"] = time.perf_counter() - started
            log(f"  stock HNSW index built in {report['hnsw_build_seconds']:.0f} s")
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE store_vectors")
            results = measure_search(
                {"ours": ours, "stock": stock}, corpus, users, config, embeddings
            )
        report["search"] = {
            name: [result.summary() for _, result in sorted(sizes.items())]
            for name, sizes in results.items()
        }
        log("measuring put rates on fresh databases ...")
        report["ingest_puts_per_second"] = measure_ingest(database_url, config.ingest_memories)
    name = "store_scale_large" if large else "store_scale"
    write_report(name, render(report), report)
    return report


def render(report: dict[str, Any]) -> str:
    rows = []
    ours = {row["user_size"]: row for row in report["search"]["ours"]}
    stock = {row["user_size"]: row for row in report["search"]["stock"]}
    for size in sorted(ours):
        mine, theirs = ours[size], stock[size]
        rows.append(
            [
                size,
                mine["queries"],
                mine["recall_at_10"],
                theirs["recall_at_10"],
                mine["short_lists_pct"],
                theirs["short_lists_pct"],
                mine["p50_ms"],
                mine["p95_ms"],
                theirs["p50_ms"],
                theirs["p95_ms"],
            ]
        )
    table = markdown_table(
        [
            "memories per user",
            "queries",
            "recall@10 ours",
            "recall@10 stock",
            "% short ours",
            "% short stock",
            "p50 ms ours",
            "p95 ms ours",
            "p50 ms stock",
            "p95 ms stock",
        ],
        rows,
    )
    ingest = report["ingest_puts_per_second"]
    return (
        f"# Memory store at scale ({report['rows']:,} rows, {report['dims']} dims)\n\n"
        "Same table, same queries, same run; recall against an exact top-10 over the user's "
        "own memories; latency is one search call end to end (embedding is a lookup), "
        f"median over {PASSES} passes of each pass's p50/p95.\n\n"
        f"{table}\n\n"
        f"Bulk load (COPY): {report['bulk_load_rows_per_second']:,.0f} rows/s; "
        f"stock HNSW build: {report['hnsw_build_seconds']:.0f} s.\n"
        f"Puts through the store API (batches of 50, fresh database): ours "
        f"{ingest['ours']:,.0f}/s, stock {ingest['stock']:,.0f}/s.\n"
    )
