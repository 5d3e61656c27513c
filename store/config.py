"""Long-term memory settings as plain values (no imports beyond the standard library).

``graph.settings`` builds these from the environment; the store and the
embedding factory take them. Kept apart from ``store.embeddings`` so reading
settings never imports LangChain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

EmbeddingsKind = Literal["hash", "databricks", "openai", "minilm"]
SearchMode = Literal["vector", "lexical", "hybrid"]
MemoryBackend = Literal["lakebase", "managed"]

EMBEDDINGS_KINDS: tuple[str, ...] = ("hash", "databricks", "openai", "minilm")
SEARCH_MODES: tuple[str, ...] = ("vector", "lexical", "hybrid")
MEMORY_BACKENDS: tuple[str, ...] = ("lakebase", "managed")
DEFAULT_DATABRICKS_ENDPOINT = "databricks-gte-large-en"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"
DEFAULT_DIMS: dict[str, int] = {"hash": 384, "databricks": 1024, "openai": 1536, "minilm": 384}
DEFAULT_DEDUP_THRESHOLD = 0.95
"""Cosine similarity at or above which a new memory is taken as a restatement of an old one."""
DEFAULT_RECALL_LIMIT = 5


@dataclass(frozen=True)
class EmbeddingsConfig:
    """Which embedding model to use."""

    kind: EmbeddingsKind = "hash"
    dims: int | None = None
    """Vector size; None means the kind's default (DEFAULT_DIMS)."""
    endpoint: str | None = None
    """Databricks serving endpoint name, or the model name for an OpenAI-compatible server."""
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    @property
    def resolved_dims(self) -> int:
        return self.dims if self.dims is not None else DEFAULT_DIMS[self.kind]

    def describe(self) -> str:
        name = {
            "hash": "deterministic hash embeddings (offline)",
            "databricks": f"Databricks endpoint {self.endpoint or DEFAULT_DATABRICKS_ENDPOINT}",
            "openai": f"OpenAI-compatible model {self.endpoint or DEFAULT_OPENAI_MODEL}",
            "minilm": "local all-MiniLM-L6-v2",
        }[self.kind]
        return f"{name}, {self.resolved_dims} dims"


@dataclass(frozen=True)
class MemorySettings:
    """How long-term memory embeds, searches, deduplicates and recalls."""

    embeddings: EmbeddingsConfig = field(default_factory=EmbeddingsConfig)
    search_mode: SearchMode = "hybrid"
    dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD
    recall_limit: int = DEFAULT_RECALL_LIMIT
    shared_scope: str | None = None
    """A shared scope (a team's or organisation's id) recalled and searched beside each
    user's own memories, read-only for the model; None: no shared memories."""
    extract_after_turn: bool = False
    """Examine each finished turn for durable facts and save them (store.extraction)."""
    backend: MemoryBackend = "lakebase"
    """Where memories live: ``lakebase`` (our pgvector store in the agent's Postgres) or
    ``managed`` (a Databricks managed memory store, store.managed)."""
    managed_store: str | None = None
    """The managed memory store's three-level name (DATABRICKS_MEMORY_STORE)."""


_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,254}$")


class InvalidStoreName(ValueError):
    """``DATABRICKS_MEMORY_STORE`` is not a three-level ``catalog.schema.store`` name."""


@dataclass(frozen=True)
class StoreName:
    catalog: str
    schema: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"


def parse_store_name(full_name: str | None) -> StoreName:
    """``catalog.schema.store`` checked before any call (it goes into request paths)."""
    parts = (full_name or "").split(".")
    if len(parts) != 3 or not all(_NAME_PART.match(part) for part in parts):
        raise InvalidStoreName(
            f"DATABRICKS_MEMORY_STORE={full_name!r} must be a three-level name "
            "catalog.schema.store (letters, digits, _ and -), e.g. main.default.agent_memory"
        )
    return StoreName(*parts)
