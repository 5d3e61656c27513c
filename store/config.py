"""Long-term memory settings as plain values (no imports beyond the standard library).

``graph.settings`` builds these from the environment; the store and the
embedding factory take them. Kept apart from ``store.embeddings`` so reading
settings never imports LangChain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EmbeddingsKind = Literal["hash", "databricks", "openai", "minilm"]
SearchMode = Literal["vector", "lexical", "hybrid"]

EMBEDDINGS_KINDS: tuple[str, ...] = ("hash", "databricks", "openai", "minilm")
SEARCH_MODES: tuple[str, ...] = ("vector", "lexical", "hybrid")
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
