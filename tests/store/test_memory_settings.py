"""Long-term memory settings from the environment, and the embedding factory."""

from __future__ import annotations

import pytest

from graph.settings import Settings, SettingsError
from store.config import EmbeddingsConfig
from store.embeddings import HashEmbeddings, LazyEmbeddings, make_embeddings


def test_defaults_are_offline_hash_hybrid() -> None:
    memory = Settings.from_env({}).memory
    assert memory.embeddings == EmbeddingsConfig(kind="hash")
    assert memory.embeddings.resolved_dims == 384
    assert (memory.search_mode, memory.dedup_threshold, memory.recall_limit) == ("hybrid", 0.95, 5)


def test_a_databricks_endpoint_alone_selects_databricks_embeddings() -> None:
    memory = Settings.from_env({"DATABRICKS_EMBEDDING_ENDPOINT": "my-gte"}).memory
    assert memory.embeddings.kind == "databricks"
    assert memory.embeddings.endpoint == "my-gte"
    assert memory.embeddings.resolved_dims == 1024
    explicit = Settings.from_env({"EMBEDDINGS": "databricks"}).memory.embeddings
    assert "databricks-gte-large-en" in explicit.describe()


def test_openai_compatible_embeddings_read_the_shared_openai_variables() -> None:
    embeddings = Settings.from_env(
        {
            "EMBEDDINGS": "openai",
            "OPENAI_EMBEDDING_MODEL": "nomic-embed",
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
            "OPENAI_API_KEY": "k",
            "EMBEDDING_DIMS": "768",
        }
    ).memory.embeddings
    assert (embeddings.kind, embeddings.endpoint, embeddings.resolved_dims) == (
        "openai",
        "nomic-embed",
        768,
    )
    assert embeddings.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("EMBEDDINGS", "word2vec", "EMBEDDINGS='word2vec' is not one of hash, databricks"),
        ("EMBEDDING_DIMS", "-3", "EMBEDDING_DIMS='-3' must be a positive whole number"),
        ("MEMORY_SEARCH_MODE", "fuzzy", "MEMORY_SEARCH_MODE='fuzzy' is not one of"),
        ("MEMORY_DEDUP_THRESHOLD", "1.5", "MEMORY_DEDUP_THRESHOLD='1.5' must be a number"),
        ("MEMORY_DEDUP_THRESHOLD", "high", "MEMORY_DEDUP_THRESHOLD='high' must be a number"),
        ("MEMORY_RECALL_LIMIT", "0", "MEMORY_RECALL_LIMIT='0' must be a positive whole number"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env({name: value})


def test_embedding_models_are_built_lazily_and_hash_is_deterministic() -> None:
    lazy = LazyEmbeddings(EmbeddingsConfig(kind="databricks"))
    assert lazy._model is None  # no SDK imported until a text is embedded
    hashed = make_embeddings(EmbeddingsConfig(kind="hash", dims=64))
    assert isinstance(hashed, HashEmbeddings)
    first = hashed.embed_query("Caroline went to a support group")
    assert first == HashEmbeddings(64).embed_query("Caroline went to a support group")
    assert abs(sum(value * value for value in first) - 1) < 1e-9


def test_hash_embeddings_put_related_texts_closer_than_unrelated_ones() -> None:
    embed = HashEmbeddings(384).embed_query

    def cosine(a: str, b: str) -> float:
        return sum(x * y for x, y in zip(embed(a), embed(b), strict=True))

    assert cosine("I love hiking in the mountains", "she hikes mountain trails") > cosine(
        "I love hiking in the mountains", "the quarterly tax report is due"
    )


def test_minilm_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_sentence_transformers(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("sentence_transformers"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_sentence_transformers)
    with pytest.raises(RuntimeError, match=r"local-embeddings"):
        make_embeddings(EmbeddingsConfig(kind="minilm"))
