"""The long-term memory store: LangGraph's PostgresStore tables, with search fixed.

``MemoryStore`` / ``AsyncMemoryStore`` subclass LangGraph's ``PostgresStore`` /
``AsyncPostgresStore`` and use the same tables (store, store_vectors,
store_migrations, vector_migrations), so DatabricksStore and the stock store
read what we write and we read what they write. Writes, gets and listing are the
library's. What we replace, and why:

* Vector search. The stock query filters by namespace and orders by distance
  with LIMIT; once a table is large Postgres answers it from the HNSW index,
  which returns the nearest rows of the *whole table* and filters them by
  namespace afterwards, so a user's search comes back short or empty. Ours
  computes the distance for every vector of the namespace (exact top-k, the
  ordering expression keeps any ANN index out of the plan). To make that fast
  it reads a covering btree index ``(prefix) INCLUDE (key, embedding_half)``:
  a user's vectors sit together in that index whatever order they were written
  in, as half-precision copies (a generated column, so writes by any store keep
  it current). The best candidates are then re-ranked with the full-precision
  vectors, so the result is the exact top-k.
* Search is read-only: no TTL-refresh UPDATE (the stock search issues one even
  with no TTL configured), so it runs on a read replica. ``get`` refreshes a TTL
  only when one is configured with ``refresh_on_read``.
* Lexical and hybrid search: a generated ``search_text`` tsvector column on
  ``store`` (kept current by Postgres on every write, by any writer), Okapi
  BM25 computed over the namespace's own rows, and score fusion with the
  vector ranking (``store.fusion``).

``setup()`` runs the library's migrations, then our additions (idempotent
``IF NOT EXISTS`` DDL, no migration numbers of our own so the library's future
migrations are never shadowed), under an advisory lock so two processes can run
it at once. The columns and indexes we add are invisible to the stock store.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import BaseStore, GetOp, Op, Result, SearchItem, SearchOp, TTLConfig
from langgraph.store.postgres import AsyncPostgresStore, PostgresStore
from langgraph.store.postgres.base import (
    PostgresIndexConfig,
    _decode_ns_bytes,
    _namespace_to_text,
    _row_to_search_item,
)

from database.retry import RetryStats, arun_with_retry, run_with_retry
from store.config import SEARCH_MODES, SearchMode
from store.fusion import FusionWeights, fuse_scores

TEXT_SEARCH_CONFIG = "english"
# Memories are one or two sentences, so document length says little about
# relevance: a light length normalisation (b 0.2, against the usual 0.75) and a
# quicker term-frequency saturation (k1 0.9) ranked LoCoMo's evidence better
# (recall@10 0.633 -> 0.653; bench/locomo.py, development split).
BM25_K1 = 0.9
BM25_B = 0.2
# Half-precision copies live in a btree entry, which must stay under ~2.7 kB
# together with prefix and key: 2 bytes per dimension caps this at 1,200 dims.
MAX_COVERING_DIMS = 1200
# How far a cosine distance computed on half-precision copies can be from the
# full-precision one: each component carries a relative error of at most 2^-11,
# so the dot product of two unit vectors moves by about 1e-3 at most; 0.01
# leaves a wide safety factor.
HALF_PRECISION_MARGIN = 0.01
# With a semantic embedder, lexical and vector scores count equally (best on
# LoCoMo with all-MiniLM-L6-v2). The hash embedder is itself a bag of words, a
# weaker copy of BM25: it only breaks BM25's near-ties and ranks memories that
# share no word with the query.
SEMANTIC_FUSION = FusionWeights(lexical=0.5, vector=0.5)
HASH_FUSION = FusionWeights(lexical=0.99, vector=0.01)


def default_fusion(embeddings: Embeddings | None) -> FusionWeights:
    """The fusion weights for ``embeddings`` (see SEMANTIC_FUSION and HASH_FUSION)."""
    from store.embeddings import HashEmbeddings, LazyEmbeddings

    if isinstance(embeddings, LazyEmbeddings):
        return HASH_FUSION if embeddings.config.kind == "hash" else SEMANTIC_FUSION
    return HASH_FUSION if isinstance(embeddings, HashEmbeddings) else SEMANTIC_FUSION


# The same key as checkpointing.saver.SETUP_LOCK_KEY: setup_lakebase.py, the agent's
# auto-setup and this store never run migrations on one database at the same time.
SETUP_LOCK_KEY = 0x6D656D6F7279  # "memory"
SETUP_LOCK_TIMEOUT_SECONDS = 300.0

_DISTANCE = {
    "cosine": ("<=>", "1 - {d}"),
    "l2": ("<->", "-{d}"),
    "inner_product": ("<#>", "-{d}"),
}


class EmbeddingDimensionMismatch(RuntimeError):
    """The configured embeddings do not fit the vectors already stored."""


EMBEDDING_TYPE_SQL = """
    SELECT format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass('store_vectors') AND a.attname = 'embedding'
      AND NOT a.attisdropped
"""
"""The stored vectors' type, e.g. ``vector(384)``; no row before the tables exist."""


def check_dimensions(embedding_type: str | None, dims: int | None) -> None:
    """Raise ``EmbeddingDimensionMismatch`` when ``embedding_type`` is not ``dims`` wide."""
    if embedding_type is None or dims is None:
        return
    match = re.search(r"\((\d+)\)", embedding_type)
    if match and int(match.group(1)) != dims:
        raise EmbeddingDimensionMismatch(
            f"the memory store holds {match.group(1)}-dimension vectors but the configured "
            f"embeddings produce {dims}; use the embeddings the store was created with, "
            "or a new database/schema for the new model (nothing was written)"
        )


def additions_ddl(dims: int | None, embedding_type: str | None) -> list[str]:
    """Our idempotent additions to the library's tables (see the module docstring)."""
    statements = [
        f"""ALTER TABLE store ADD COLUMN IF NOT EXISTS search_text tsvector
            GENERATED ALWAYS AS (jsonb_to_tsvector('{TEXT_SEARCH_CONFIG}', value, '["string"]'))
            STORED""",
    ]
    if embedding_type and dims and dims <= MAX_COVERING_DIMS:
        if embedding_type.startswith("halfvec"):
            half_column = "embedding"
        else:
            half_column = "embedding_half"
            statements.append(
                f"""ALTER TABLE store_vectors ADD COLUMN IF NOT EXISTS embedding_half
                    halfvec({dims}) GENERATED ALWAYS AS (embedding::halfvec({dims})) STORED"""
            )
        statements.append(
            f"""CREATE INDEX IF NOT EXISTS store_vectors_prefix_covering_idx
                ON store_vectors (prefix text_pattern_ops) INCLUDE (key, {half_column})"""
        )
    return statements


@dataclass(frozen=True)
class _Hit:
    prefix: str
    key: str


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(repr(float(value)) for value in vector) + "]"


def _ns_condition(column: str, namespace_prefix: tuple[str, ...]) -> tuple[str, list[Any]]:
    # The namespace itself, or a descendant of it ("a.b" matches "a.b" and "a.b.c").
    path = _namespace_to_text(namespace_prefix)
    like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
    return f"({column} = %s OR {column} LIKE %s ESCAPE '\\')", [path, like]


class _MemorySearch:
    """What the sync and async stores share: options, SQL, op rewriting, fusion."""

    index_config: PostgresIndexConfig | None
    ttl_config: TTLConfig | None
    embeddings: Embeddings | None

    def _init_memory(
        self,
        search_mode: SearchMode,
        fusion: FusionWeights,
        candidates: int,
    ) -> None:
        if search_mode not in SEARCH_MODES:
            raise ValueError(f"search_mode must be one of {SEARCH_MODES}, got {search_mode!r}")
        self.search_mode: SearchMode = search_mode
        self.fusion = fusion
        self.candidates = candidates
        self._checked_dims = False
        self._covering_column: str | None = None
        self.retry_stats = RetryStats()

    # -- configuration ---------------------------------------------------------

    @property
    def dims(self) -> int | None:
        return int(self.index_config["dims"]) if self.index_config else None

    def _distance(self) -> tuple[str, str]:
        kind = (self.index_config or {}).get("distance_type", "cosine")
        return _DISTANCE[kind]

    def _vector_type(self) -> str:
        return str(
            (self.index_config or {}).get("ann_index_config", {}).get("vector_type", "vector")
        )

    # -- setup ---------------------------------------------------------------

    def _additions_ddl(self, embedding_type: str | None) -> list[str]:
        return additions_ddl(self.dims, embedding_type)

    @staticmethod
    def _embedding_type_sql() -> str:
        return EMBEDDING_TYPE_SQL

    @staticmethod
    def _covering_column_sql() -> str:
        # The column the covering index includes (embedding_half, or embedding when
        # the table already stores halfvec); NULL when there is no such index.
        return """
            SELECT a.attname AS name
            FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[2]
            WHERE i.indexrelid = to_regclass('store_vectors_prefix_covering_idx')
        """

    def _check_dims(self, embedding_type: str | None) -> None:
        check_dimensions(embedding_type, self.dims)

    # -- op rewriting: reads never write -------------------------------------

    def _read_only_ops(self, ops: Iterable[Op]) -> list[Op]:
        refresh_gets = bool(self.ttl_config and self.ttl_config.get("refresh_on_read", True))
        rewritten: list[Op] = []
        for op in ops:
            if (isinstance(op, SearchOp) and op.refresh_ttl) or (
                isinstance(op, GetOp) and op.refresh_ttl and not refresh_gets
            ):
                op = op._replace(refresh_ttl=False)
            rewritten.append(op)
        return rewritten

    def _get_batch_GET_ops_queries(
        self, get_ops: Sequence[tuple[int, GetOp]]
    ) -> list[tuple[str, tuple, tuple[str, ...], list]]:
        queries: list[tuple[str, tuple, tuple[str, ...], list]] = []
        plain: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        refreshing: list[tuple[int, GetOp]] = []
        for idx, op in get_ops:
            if op.refresh_ttl:
                refreshing.append((idx, op))
            else:
                plain.setdefault(op.namespace, []).append((idx, op.key))
        if refreshing:
            queries.extend(super()._get_batch_GET_ops_queries(refreshing))  # type: ignore[misc]
        expiry = (
            "AND (expires_at IS NULL OR expires_at > NOW())"
            if self.ttl_config and self.ttl_config.get("omit_expired")
            else ""
        )
        for namespace, items in plain.items():
            keys = [key for _, key in items]
            query = f"""
                SELECT key, value, created_at, updated_at FROM store
                WHERE prefix = %s AND key = ANY(%s::text[]) {expiry}
            """
            queries.append((query, (_namespace_to_text(namespace), keys), namespace, items))
        return queries

    # -- search SQL ----------------------------------------------------------

    def _expiry(self, table: str) -> str:
        if self.ttl_config and self.ttl_config.get("omit_expired"):
            return f"AND ({table}.expires_at IS NULL OR {table}.expires_at > NOW())"
        return ""

    def _filters(self, op: SearchOp) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for key, value in (op.filter or {}).items():
            if isinstance(value, dict):
                for operator, operand in value.items():
                    clause, clause_params = self._get_filter_condition(key, operator, operand)  # type: ignore[attr-defined]
                    clauses.append(clause.replace("value->", "store.value->"))
                    params.extend(clause_params)
            else:
                import json

                clauses.append("store.value->%s = %s::jsonb")
                params.extend([key, json.dumps(value)])
        return "".join(f" AND {clause}" for clause in clauses), params

    def _vector_candidates_sql(
        self, op: SearchOp, vector: str, limit: int
    ) -> tuple[str, list[Any]]:
        """Top ``limit`` (prefix, key) by distance, computed over every vector in scope."""
        operator, _ = self._distance()
        vector_type = self._vector_type()
        if not op.filter and not self._expiry("store") and self._covering_column is not None:
            # Fast path: an index-only scan of the covering index, one arm for the
            # namespace itself and one for its descendants (an OR would turn it into
            # a bitmap heap scan). "+ 0" keeps an HNSW index on `embedding` out.
            column = self._covering_column
            cast_to = "halfvec"
            path = _namespace_to_text(op.namespace_prefix)
            like = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
            distance = f"(sv.{column} {operator} %s::{cast_to}) + 0"
            arm = f"""(SELECT sv.prefix, sv.key, {distance} AS distance
                       FROM store_vectors sv WHERE sv.prefix {{cond}}
                       ORDER BY 3 LIMIT %s)"""
            exact_arm = arm.format(cond="= %s")
            descendants_arm = arm.format(cond="LIKE %s ESCAPE '\\'")
            sql = f"""
                SELECT prefix, key, distance FROM (
                    {exact_arm}
                    UNION ALL
                    {descendants_arm}
                ) candidates ORDER BY distance, key LIMIT %s
            """
            return sql, [vector, path, limit, vector, like, limit, limit]
        ns_sql, ns_params = _ns_condition("store.prefix", op.namespace_prefix)
        filter_sql, filter_params = self._filters(op)
        sql = f"""
            SELECT sv.prefix, sv.key, (sv.embedding {operator} %s::{vector_type}) + 0 AS distance
            FROM store_vectors sv JOIN store ON store.prefix = sv.prefix AND store.key = sv.key
            WHERE {ns_sql} {filter_sql} {self._expiry("store")}
            ORDER BY 3, sv.key
            LIMIT %s
        """
        return sql, [vector, *ns_params, *filter_params, limit]

    def _lexical_sql(self, op: SearchOp, limit: int) -> tuple[str, list[Any]]:
        """Okapi BM25 over the namespace's rows; the top ``limit`` (prefix, key, bm25)."""
        ns_sql, ns_params = _ns_condition("store.prefix", op.namespace_prefix)
        filter_sql, filter_params = self._filters(op)
        config = TEXT_SEARCH_CONFIG
        # Statistics (document count, average length, document frequency) come
        # from the namespace itself: one user's vocabulary does not skew another's.
        sql = f"""
            WITH query_terms AS (
                SELECT DISTINCT t.lexeme FROM unnest(to_tsvector('{config}', %s)) AS t
            ),
            any_term AS (
                SELECT replace(plainto_tsquery('{config}', %s)::text, '&', '|')::tsquery AS q
            ),
            docs AS (
                SELECT store.prefix, store.key, store.search_text FROM store
                WHERE {ns_sql} {filter_sql} {self._expiry("store")}
            ),
            stats AS (
                SELECT count(*)::float8 AS n,
                       greatest(avg(length(search_text)), 1)::float8 AS avgdl
                FROM docs
            ),
            terms AS (
                SELECT d.prefix, d.key, t.lexeme,
                       coalesce(array_length(t.positions, 1), 1)::float8 AS tf,
                       length(d.search_text)::float8 AS dl
                FROM docs d CROSS JOIN any_term, unnest(d.search_text) AS t
                WHERE d.search_text @@ any_term.q
                  AND t.lexeme IN (SELECT lexeme FROM query_terms)
            ),
            df AS (SELECT lexeme, count(*)::float8 AS df FROM terms GROUP BY lexeme)
            SELECT terms.prefix, terms.key,
                   sum(ln(1 + (stats.n - df.df + 0.5) / (df.df + 0.5))
                       * terms.tf * {BM25_K1 + 1}
                       / (terms.tf + {BM25_K1} * (1 - {BM25_B} + {BM25_B} * terms.dl / stats.avgdl))
                   ) AS bm25
            FROM terms JOIN df USING (lexeme) CROSS JOIN stats
            GROUP BY terms.prefix, terms.key
            ORDER BY bm25 DESC, terms.key
            LIMIT %s
        """
        return sql, [op.query, op.query, *ns_params, *filter_params, limit]

    def _fetch_sql(self, hits: Sequence[_Hit], vector: str | None) -> tuple[str, list[Any]]:
        """Rows for ``hits`` with their exact distance to ``vector`` (full precision)."""
        prefixes = [hit.prefix for hit in hits]
        keys = [hit.key for hit in hits]
        if vector is None:
            distance_sql = "NULL::float8"
            params: list[Any] = []
        else:
            operator, _ = self._distance()
            distance_sql = f"""(SELECT min(sv.embedding {operator} %s::{self._vector_type()})
                                FROM store_vectors sv
                                WHERE sv.prefix = s.prefix AND sv.key = s.key)"""
            params = [vector]
        sql = f"""
            SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at,
                   {distance_sql} AS distance
            FROM unnest(%s::text[], %s::text[]) AS c(prefix, key)
            JOIN store s ON s.prefix = c.prefix AND s.key = c.key
        """
        return sql, [*params, prefixes, keys]

    def _vector_search_sql(self, op: SearchOp, vector: str) -> tuple[str, list[Any]]:
        """Vector mode in one statement: candidates by (half-precision) distance, then the
        exact full-precision re-rank of those candidates, best ``offset + limit`` rows."""
        candidates_sql, candidates_params = self._vector_candidates_sql(
            op, vector, self._rerank_count(op)
        )
        operator, _ = self._distance()
        wanted = op.offset + op.limit
        # Only candidates within the half-precision error of the k-th best can be
        # in the exact top k, so only those are fetched and re-ranked (usually
        # about k rows instead of all candidates: a quarter of the heap reads).
        margin = HALF_PRECISION_MARGIN if self._distance()[0] == "<=>" else "Infinity"
        sql = f"""
            WITH candidates AS MATERIALIZED ({candidates_sql}),
            per_memory AS (
                SELECT prefix, key, min(distance) AS distance FROM candidates GROUP BY prefix, key
            ),
            boundary AS (
                SELECT max(distance) AS distance
                FROM (SELECT distance FROM per_memory ORDER BY distance LIMIT %s) best
            ),
            ranked AS (
                SELECT s.prefix, s.key, s.value, s.created_at, s.updated_at,
                       (SELECT min(sv.embedding {operator} %s::{self._vector_type()})
                        FROM store_vectors sv
                        WHERE sv.prefix = s.prefix AND sv.key = s.key) AS distance
                FROM per_memory c CROSS JOIN boundary
                JOIN store s ON s.prefix = c.prefix AND s.key = c.key
                WHERE c.distance <= boundary.distance + %s::float8
            )
            SELECT * FROM ranked ORDER BY distance, key LIMIT %s
        """
        return sql, [*candidates_params, wanted, vector, margin, wanted]

    def _similarity(self, distance: float | None) -> float | None:
        if distance is None:
            return None
        _, expression = self._distance()
        return {"1 - {d}": 1 - distance, "-{d}": -distance}[expression]

    def _candidate_count(self, op: SearchOp) -> int:
        return max(self.candidates, 3 * (op.limit + op.offset))

    def _rerank_count(self, op: SearchOp) -> int:
        # Half precision moves a cosine distance by ~1e-3 at most; re-ranking four
        # times the requested rows (at least 40) with full-precision vectors makes
        # the returned top-k the exact one unless thousands of memories tie within
        # that margin.
        fields = int(cast(dict, self.index_config).get("__estimated_num_vectors", 1))
        return max(40, 4 * (op.limit + op.offset)) * max(fields, 1)

    def _mode_for(self, op: SearchOp, mode: SearchMode | None) -> SearchMode:
        chosen = mode or self.search_mode
        if self.index_config is None:
            return "lexical"
        return chosen

    def _items_from_rows(
        self, rows: Sequence[dict[str, Any]], scores: dict[_Hit, float], op: SearchOp
    ) -> list[SearchItem]:
        by_hit = {_Hit(row["prefix"], row["key"]): row for row in rows}
        ordered = sorted(
            (hit for hit in scores if hit in by_hit), key=lambda hit: (-scores[hit], hit.key)
        )
        window = ordered[op.offset : op.offset + op.limit]
        items = []
        for hit in window:
            row = dict(by_hit[hit])
            row["score"] = scores[hit]
            items.append(
                _row_to_search_item(
                    _decode_ns_bytes(row["prefix"]),
                    cast(Any, row),
                    loader=getattr(self, "_deserializer", None),
                )
            )
        return items

    def _scores(
        self, mode: SearchMode, lexical_rows: list[dict[str, Any]], fetched: list[dict[str, Any]]
    ) -> dict[_Hit, float]:
        if mode == "lexical":
            return {_Hit(row["prefix"], row["key"]): float(row["bm25"]) for row in lexical_rows}
        if mode == "vector":
            return {
                _Hit(row["prefix"], row["key"]): cast(float, self._similarity(row["distance"]))
                for row in fetched
                if row["distance"] is not None
            }
        return self._fuse(lexical_rows, fetched)

    def _fuse(
        self, lexical_rows: Sequence[dict[str, Any]], fetched: Sequence[dict[str, Any]]
    ) -> dict[_Hit, float]:
        lexical = {_Hit(row["prefix"], row["key"]): float(row["bm25"]) for row in lexical_rows}
        vector: dict[_Hit, float] = {}
        for row in fetched:
            similarity = self._similarity(row["distance"])
            if similarity is not None:
                vector[_Hit(row["prefix"], row["key"])] = similarity
        return dict(fuse_scores(lexical, vector, self.fusion))


class MemoryStore(_MemorySearch, PostgresStore):
    """Long-term memory on a sync psycopg pool (or connection); see the module docstring.

    ``MemoryStore(pool, embeddings=HashEmbeddings(), dims=384)``; call ``setup()``
    once per database (idempotent, safe to run concurrently).
    """

    def __init__(
        self,
        conn: Any,
        *,
        embeddings: Embeddings | None = None,
        dims: int | None = None,
        fields: Sequence[str] = ("content",),
        distance_type: Literal["cosine", "l2", "inner_product"] = "cosine",
        ann_index: bool = False,
        ttl: TTLConfig | None = None,
        search_mode: SearchMode = "hybrid",
        fusion: FusionWeights | None = None,
        candidates: int = 50,
    ) -> None:
        super().__init__(
            conn,
            index=memory_index_config(embeddings, dims, fields, distance_type, ann_index),
            ttl=ttl,
        )
        self._init_memory(search_mode, fusion or default_fusion(embeddings), candidates)

    # -- setup -----------------------------------------------------------------

    def setup(self) -> None:
        """Create or upgrade the tables; idempotent and safe to run from two processes at once."""
        from langgraph.checkpoint.postgres import _internal

        with _internal.get_connection(self.conn) as conn:
            _acquire_setup_lock(conn)
            try:
                embedding_type = _scalar(conn, self._embedding_type_sql())
                self._check_dims(embedding_type)
                # The library's migrations, run on the connection that holds the lock.
                PostgresStore(conn, index=self.index_config, ttl=self.ttl_config).setup()
                embedding_type = _scalar(conn, self._embedding_type_sql())
                for statement in self._additions_ddl(embedding_type):
                    conn.execute(statement)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
        self._checked_dims = False

    def verify(self) -> None:
        """Check that the tables exist and hold vectors of our dimension (raises otherwise)."""
        self._checked_dims = False
        self._ensure_checked()

    def _ensure_checked(self) -> None:
        if self._checked_dims:
            return
        from langgraph.checkpoint.postgres import _internal

        with _internal.get_connection(self.conn) as conn:
            self._check_dims(_scalar(conn, self._embedding_type_sql()))
            self._covering_column = _scalar(conn, self._covering_column_sql())
        self._checked_dims = True

    # -- batch ---------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = self._read_only_ops(ops)
        parent = super().batch

        def work() -> list[Result]:
            self._ensure_checked()
            return parent(ops)

        # A dropped connection is replayed once on a fresh one (puts are upserts,
        # deletes and reads repeat harmlessly); a single connection cannot be.
        if not hasattr(self.conn, "getconn"):
            return work()
        return run_with_retry(work, pool=self.conn, stats=self.retry_stats)

    def _batch_search_ops(self, search_ops: Any, results: list[Result], cur: Any) -> None:
        for idx, op in search_ops:
            results[idx] = self._run_search(cur, op, None)

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
        mode: SearchMode | None = None,
    ) -> list[SearchItem]:
        """BaseStore.search, plus ``mode`` to override this store's default search mode."""
        if mode is None:
            return super().search(
                namespace_prefix, query=query, filter=filter, limit=limit, offset=offset
            )
        self._ensure_checked()
        op = SearchOp(namespace_prefix, filter, limit, offset, query, False)
        with self._cursor() as cur:
            return self._run_search(cur, op, mode)

    def _run_search(self, cur: Any, op: SearchOp, mode: SearchMode | None) -> list[SearchItem]:
        if not op.query:
            queries, _ = self._prepare_batch_search_queries([(0, op)])
            cur.execute(*queries[0])
            return [
                _row_to_search_item(_decode_ns_bytes(row["prefix"]), row, loader=self._deserializer)
                for row in cur.fetchall()
            ]
        chosen = self._mode_for(op, mode)
        vector = (
            _vector_literal(cast(Embeddings, self.embeddings).embed_query(op.query))
            if chosen != "lexical"
            else None
        )
        if chosen == "vector":
            cur.execute(*self._vector_search_sql(op, cast(str, vector)))
            fetched = cur.fetchall()
            return self._items_from_rows(fetched, self._scores(chosen, [], fetched), op)
        lexical_rows: list[dict[str, Any]] = []
        hits: list[_Hit] = []
        if chosen in ("lexical", "hybrid"):
            cur.execute(*self._lexical_sql(op, self._candidate_count(op)))
            lexical_rows = cur.fetchall()
            hits.extend(_Hit(row["prefix"], row["key"]) for row in lexical_rows)
        if vector is not None:
            count = self._candidate_count(op)
            cur.execute(*self._vector_candidates_sql(op, vector, count))
            hits.extend(_Hit(row["prefix"], row["key"]) for row in cur.fetchall())
        hits = list(dict.fromkeys(hits))
        if not hits:
            return []
        cur.execute(*self._fetch_sql(hits, vector))
        fetched = cur.fetchall()
        return self._items_from_rows(fetched, self._scores(chosen, lexical_rows, fetched), op)

    # -- forgetting ----------------------------------------------------------

    def forget_namespace(self, namespace: tuple[str, ...]) -> int:
        """Delete every memory in ``namespace`` and its descendants; return how many."""
        self._ensure_checked()
        ns_sql, ns_params = _ns_condition("prefix", namespace)
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM store WHERE {ns_sql}", ns_params)
            return int(cur.rowcount)

    def count(self, namespace: tuple[str, ...]) -> int:
        """How many memories ``namespace`` (and its descendants) hold."""
        ns_sql, ns_params = _ns_condition("prefix", namespace)
        with self._cursor() as cur:
            cur.execute(f"SELECT count(*) AS n FROM store WHERE {ns_sql}", ns_params)
            return int(cast(dict[str, Any], cur.fetchone())["n"])


class AsyncMemoryStore(_MemorySearch, AsyncPostgresStore):
    """Async twin of ``MemoryStore`` on an ``AsyncConnectionPool`` (build it in a running loop).

    Every ``aget``/``asearch``/``aput``/``adelete``/``alist_namespaces`` runs its
    own ``abatch`` on its own pooled connection. The library's
    ``AsyncBatchedBaseStore`` instead queues every caller's operation on one
    per-process queue and runs whatever arrived in the same tick as one batch:
    in a server that batch mixes requests of different users, so one user's bad
    input (a NUL byte, a 1 MB query) fails every other request in the batch with
    an error that quotes the first user's text, and one slow query delays all
    of them. A request's store operations, errors and latency stay its own here;
    the pool, not a queue, bounds the concurrency.
    """

    def __init__(
        self,
        conn: Any,
        *,
        embeddings: Embeddings | None = None,
        dims: int | None = None,
        fields: Sequence[str] = ("content",),
        distance_type: Literal["cosine", "l2", "inner_product"] = "cosine",
        ann_index: bool = False,
        ttl: TTLConfig | None = None,
        search_mode: SearchMode = "hybrid",
        fusion: FusionWeights | None = None,
        candidates: int = 50,
    ) -> None:
        super().__init__(
            conn,
            index=memory_index_config(embeddings, dims, fields, distance_type, ann_index),
            ttl=ttl,
        )
        self._init_memory(search_mode, fusion or default_fusion(embeddings), candidates)

    async def setup(self) -> None:
        """Create or upgrade the tables; idempotent and safe to run from two processes at once."""
        from langgraph.checkpoint.postgres import _ainternal

        async with _ainternal.get_connection(self.conn) as conn:
            await _aacquire_setup_lock(conn)
            try:
                embedding_type = await _ascalar(conn, self._embedding_type_sql())
                self._check_dims(embedding_type)
                await _arun_library_migrations(conn, self)
                embedding_type = await _ascalar(conn, self._embedding_type_sql())
                for statement in self._additions_ddl(embedding_type):
                    await conn.execute(statement)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK_KEY,))
        self._checked_dims = False

    async def averify(self) -> None:
        """Check that the tables exist and hold vectors of our dimension (raises otherwise)."""
        self._checked_dims = False
        await self._ensure_checked()

    async def _ensure_checked(self) -> None:
        if self._checked_dims:
            return
        from langgraph.checkpoint.postgres import _ainternal

        async with _ainternal.get_connection(self.conn) as conn:
            self._check_dims(await _ascalar(conn, self._embedding_type_sql()))
            self._covering_column = await _ascalar(conn, self._covering_column_sql())
        self._checked_dims = True

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = self._read_only_ops(ops)
        parent = super().abatch

        async def work() -> list[Result]:
            await self._ensure_checked()
            return await parent(ops)

        if not hasattr(self.conn, "getconn"):
            return await work()
        return await arun_with_retry(work, pool=self.conn, stats=self.retry_stats)

    async def _batch_search_ops(self, search_ops: Any, results: list[Result], cur: Any) -> None:
        for idx, op in search_ops:
            results[idx] = await self._arun_search(cur, op, None)

    # One operation, one abatch: BaseStore's own a* methods call ``abatch([op])``
    # directly; AsyncBatchedBaseStore overrides them with its shared queue (see the
    # class docstring). Its background queue consumer is never started.
    def _ensure_task(self) -> None:
        return None

    aget = BaseStore.aget
    aput = BaseStore.aput
    adelete = BaseStore.adelete
    alist_namespaces = BaseStore.alist_namespaces

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
        mode: SearchMode | None = None,
    ) -> list[SearchItem]:
        """BaseStore.asearch, plus ``mode`` to override this store's default search mode."""
        if mode is None:
            return await BaseStore.asearch(
                self, namespace_prefix, query=query, filter=filter, limit=limit, offset=offset
            )
        await self._ensure_checked()
        op = SearchOp(namespace_prefix, filter, limit, offset, query, False)
        async with self._cursor() as cur:
            return await self._arun_search(cur, op, mode)

    async def _arun_search(
        self, cur: Any, op: SearchOp, mode: SearchMode | None
    ) -> list[SearchItem]:
        if not op.query:
            queries, _ = self._prepare_batch_search_queries([(0, op)])
            await cur.execute(*queries[0])
            return [
                _row_to_search_item(_decode_ns_bytes(row["prefix"]), row, loader=self._deserializer)
                for row in await cur.fetchall()
            ]
        chosen = self._mode_for(op, mode)
        vector = None
        if chosen != "lexical":
            embedded = await cast(Embeddings, self.embeddings).aembed_query(op.query)
            vector = _vector_literal(embedded)
        if chosen == "vector":
            await cur.execute(*self._vector_search_sql(op, cast(str, vector)))
            fetched = await cur.fetchall()
            return self._items_from_rows(fetched, self._scores(chosen, [], fetched), op)
        lexical_rows: list[dict[str, Any]] = []
        hits: list[_Hit] = []
        if chosen in ("lexical", "hybrid"):
            await cur.execute(*self._lexical_sql(op, self._candidate_count(op)))
            lexical_rows = await cur.fetchall()
            hits.extend(_Hit(row["prefix"], row["key"]) for row in lexical_rows)
        if vector is not None:
            count = self._candidate_count(op)
            await cur.execute(*self._vector_candidates_sql(op, vector, count))
            hits.extend(_Hit(row["prefix"], row["key"]) for row in await cur.fetchall())
        hits = list(dict.fromkeys(hits))
        if not hits:
            return []
        await cur.execute(*self._fetch_sql(hits, vector))
        fetched = await cur.fetchall()
        return self._items_from_rows(fetched, self._scores(chosen, lexical_rows, fetched), op)

    async def aforget_namespace(self, namespace: tuple[str, ...]) -> int:
        """Delete every memory in ``namespace`` and its descendants; return how many."""
        await self._ensure_checked()
        ns_sql, ns_params = _ns_condition("prefix", namespace)
        async with self._cursor() as cur:
            await cur.execute(f"DELETE FROM store WHERE {ns_sql}", ns_params)
            return int(cur.rowcount)

    async def acount(self, namespace: tuple[str, ...]) -> int:
        """How many memories ``namespace`` (and its descendants) hold."""
        ns_sql, ns_params = _ns_condition("prefix", namespace)
        async with self._cursor() as cur:
            await cur.execute(f"SELECT count(*) AS n FROM store WHERE {ns_sql}", ns_params)
            return int(cast(dict[str, Any], await cur.fetchone())["n"])


def memory_index_config(
    embeddings: Embeddings | None,
    dims: int | None,
    fields: Sequence[str],
    distance_type: str,
    ann_index: bool,
) -> PostgresIndexConfig | None:
    """The library index config our store runs its migrations and writes with."""
    if embeddings is None:
        return None
    if dims is None:
        dims = len(embeddings.embed_query("dimension probe"))
    # No ANN index by default: our search never uses it (exact per-user search
    # is both correct and fast enough), and it slows every write. The stock
    # migration skips it without recording a version, so a stock store with an
    # HNSW config can still add it later.
    return cast(
        PostgresIndexConfig,
        {
            "dims": dims,
            "embed": embeddings,
            "fields": list(fields),
            "distance_type": distance_type,
            "ann_index_config": {"kind": "hnsw" if ann_index else "flat", "vector_type": "vector"},
        },
    )


def _vector_migration_sql(store: Any, migration: Any) -> str:
    """A library vector migration's SQL with its parameters filled, as PostgresStore.setup does."""
    if not migration.params:
        return str(migration.sql)
    params = {
        name: value(store) if callable(value) else value for name, value in migration.params.items()
    }
    return str(migration.sql % params)


async def _arun_library_migrations(conn: Any, store: Any) -> None:
    # AsyncPostgresStore.setup ignores a migration's `condition` (the sync one
    # honours it), so with the "flat" (no ANN index) config it fails on the
    # HNSW migration. Same lists, same version tables, same order as the sync
    # PostgresStore.setup.
    for table, migrations in (
        ("store_migrations", [(sql, None) for sql in AsyncPostgresStore.MIGRATIONS]),
        ("vector_migrations", [(m, m) for m in AsyncPostgresStore.VECTOR_MIGRATIONS]),
    ):
        if table == "vector_migrations" and not store.index_config:
            continue
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (v INTEGER PRIMARY KEY)")
        current = await _ascalar(conn, f"SELECT max(v) FROM {table}")
        start = -1 if current is None else int(current)
        for version, (item, migration) in enumerate(migrations[start + 1 :], start=start + 1):
            if migration is None:
                sql = str(item)
            else:
                if migration.condition and not migration.condition(store):
                    continue
                sql = _vector_migration_sql(store, migration)
            await conn.execute(sql)
            await conn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (version,))


def _scalar(conn: Any, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


async def _ascalar(conn: Any, sql: str) -> Any:
    row = await (await conn.execute(sql)).fetchone()
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _acquire_setup_lock(conn: Any) -> None:
    # pg_try_advisory_lock in a loop, not a blocking pg_advisory_lock: a session
    # blocked inside a statement holds a snapshot, and CREATE INDEX CONCURRENTLY
    # in the lock holder waits for old snapshots, which would deadlock the two.
    deadline = time.monotonic() + SETUP_LOCK_TIMEOUT_SECONDS
    while not _scalar(conn, f"SELECT pg_try_advisory_lock({SETUP_LOCK_KEY})"):
        if time.monotonic() > deadline:
            raise TimeoutError("another process has been setting up the memory store for 5 minutes")
        time.sleep(0.05)


async def _aacquire_setup_lock(conn: Any) -> None:
    deadline = time.monotonic() + SETUP_LOCK_TIMEOUT_SECONDS
    while not await _ascalar(conn, f"SELECT pg_try_advisory_lock({SETUP_LOCK_KEY})"):
        if time.monotonic() > deadline:
            raise TimeoutError("another process has been setting up the memory store for 5 minutes")
        await asyncio.sleep(0.05)


STORE_TABLES = ("store_migrations", "store", "vector_migrations", "store_vectors")
"""The tables long-term memory lives in (LangGraph PostgresStore's, shared with DatabricksStore)."""


def _store_options(settings: Any) -> dict[str, Any]:
    from store.embeddings import LazyEmbeddings

    return {
        "embeddings": LazyEmbeddings(settings.embeddings),
        "dims": settings.embeddings.resolved_dims,
        "search_mode": settings.search_mode,
    }


def make_memory_store(pool: Any, settings: Any) -> MemoryStore:
    """The memory store on a sync ``pool`` as ``settings`` (MemorySettings) says.

    The embedding model is built lazily, on the first text to embed.
    """
    return MemoryStore(pool, **_store_options(settings))


def make_async_memory_store(pool: Any, settings: Any) -> AsyncMemoryStore:
    """Async twin of ``make_memory_store`` (on an ``AsyncConnectionPool``, in a running loop)."""
    return AsyncMemoryStore(pool, **_store_options(settings))
