"""Deployment settings, read from the environment once at the entry point.

Everything that says *where* (which Postgres, which model endpoint) lives in one
frozen ``Settings``. Persistence and node modules never read the environment;
they receive what they need from here. A setting that cannot be used raises
``SettingsError`` with one line naming the variables to set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from database.targets import DatabaseTarget, EmbeddedTarget, LakebaseTarget, UrlTarget
from store.config import (
    EMBEDDINGS_KINDS,
    MEMORY_BACKENDS,
    SEARCH_MODES,
    EmbeddingsConfig,
    InvalidStoreName,
    MemorySettings,
    parse_store_name,
)

DEFAULT_HOME = Path("~/.memory-agent")
# About 50 turns of time travel with tool calls; older checkpoints are pruned.
DEFAULT_KEEP_CHECKPOINTS = 200
# The prompt's token budget (system prompt, memories, summary, messages); see nodes.summarize_history.
DEFAULT_PROMPT_TOKENS = 16_000
# Below this the system prompt and the summary leave no room for the conversation.
MIN_PROMPT_TOKENS = 1_000
LIBPQ_HOST_VARIABLES = ("PGHOST", "PGHOSTADDR", "PGSERVICE")
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off", ""}

DEFAULT_PORT = 8000

ModelKind = Literal["offline", "databricks", "openai"]


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class ModelSettings:
    """Which chat model answers: ``offline``, a Databricks endpoint, or OpenAI-compatible."""

    kind: ModelKind = "offline"
    name: str = "offline"
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        if self.kind == "offline":
            return "offline (deterministic rule-based model, no LLM; set AGENT_MODEL to use one)"
        if self.kind == "databricks":
            return f"Databricks serving endpoint {self.name}"
        return f"OpenAI-compatible model {self.name} at {self.base_url or 'api.openai.com'}"


@dataclass(frozen=True)
class ServingSettings:
    """The HTTP server's deployment: where it listens, whom it trusts, where traces go."""

    app_name: str | None = None
    """DATABRICKS_APP_NAME, set by Databricks Apps in every app: its presence means "deployed"."""
    port: int = DEFAULT_PORT
    """DATABRICKS_APP_PORT (set by Databricks Apps), else 8000."""
    trust_client_user_id: bool = False
    """MEMORY_AGENT_TRUST_CLIENT_USER_ID=1: honour a client-supplied user id when deployed."""
    mlflow_tracking_uri: str | None = None
    """MLFLOW_TRACKING_URI; unset locally means a SQLite store under MEMORY_AGENT_HOME."""
    mlflow_experiment_id: str | None = None
    """MLFLOW_EXPERIMENT_ID (Databricks Apps fills it from the app's experiment resource)."""
    databricks_host: str | None = None
    """DATABRICKS_HOST (set by Databricks Apps): where forwarded access tokens are verified."""

    @property
    def deployed(self) -> bool:
        """True inside Databricks Apps: identity then comes from the proxy's headers only."""
        return self.app_name is not None

    @property
    def host(self) -> str:
        # Databricks Apps routes to the container's port; locally only loopback is exposed.
        return "0.0.0.0" if self.deployed else "127.0.0.1"


DEFAULT_MAX_CONCURRENT_RUNS = 16


@dataclass(frozen=True)
class Settings:
    """Everything the agent needs to know about its deployment."""

    database: DatabaseTarget
    """Where Postgres is: Lakebase, a URL, or the embedded server."""
    model: ModelSettings = field(default_factory=ModelSettings)
    """The chat model."""
    memory_required: bool = False
    """MEMORY_REQUIRED=1: fail instead of answering statelessly when memory is unavailable."""
    auto_setup: bool = False
    """AUTO_SETUP=1: create missing tables at start (always on for the embedded database)."""
    home: Path = DEFAULT_HOME
    """MEMORY_AGENT_HOME: the embedded database and local state live here."""
    memory: MemorySettings = field(default_factory=MemorySettings)
    """Long-term memory: embeddings (EMBEDDINGS, ...), search mode, dedup threshold."""
    keep_checkpoints: int | None = DEFAULT_KEEP_CHECKPOINTS
    """MEMORY_AGENT_KEEP_CHECKPOINTS: newest checkpoints kept per thread (0: keep all)."""
    prompt_tokens: int | None = DEFAULT_PROMPT_TOKENS
    """MEMORY_AGENT_PROMPT_TOKENS: past this many tokens older turns fold into a summary (0: never)."""
    serving: ServingSettings = field(default_factory=ServingSettings)
    """How the HTTP server runs and whom it trusts (only the server reads these)."""
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS
    """MAX_CONCURRENT_RUNS: runs at once per process; each holds one thread-lock session
    from a pool of this size, apart from the work pool (the server queues the rest)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        home = Path(env.get("MEMORY_AGENT_HOME") or DEFAULT_HOME).expanduser()
        return cls(
            database=database_target_from_env(env, home),
            model=model_settings_from_env(env),
            memory_required=_flag(env, "MEMORY_REQUIRED"),
            auto_setup=_flag(env, "AUTO_SETUP"),
            home=home,
            memory=memory_settings_from_env(env),
            serving=serving_settings_from_env(env),
            keep_checkpoints=_keep_checkpoints(env),
            prompt_tokens=_prompt_tokens(env),
            max_concurrent_runs=_positive_int(env, "MAX_CONCURRENT_RUNS")
            or DEFAULT_MAX_CONCURRENT_RUNS,
        )

    @property
    def is_embedded(self) -> bool:
        return isinstance(self.database, EmbeddedTarget)


def load_env_file() -> str | None:
    """Read ``.env`` (found from the working directory upwards) into the environment.

    Every entry point calls this first (the CLI, the server, setup_lakebase.py,
    the notebooks). A variable already set in the environment wins over the
    file, so a deployment's own settings are never replaced by a stray file.
    Returns the file's path, or None if there is none.
    """
    from dotenv import find_dotenv, load_dotenv

    path = find_dotenv(usecwd=True)
    if not path:
        return None
    load_dotenv(path, override=False)
    return path


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise SettingsError(f"{name}={env[name]!r} is not a yes/no value; use 1 or 0")


def _keep_checkpoints(env: Mapping[str, str]) -> int | None:
    raw = _value(env, "MEMORY_AGENT_KEEP_CHECKPOINTS")
    if raw is None:
        return DEFAULT_KEEP_CHECKPOINTS
    if not raw.isdigit():
        raise SettingsError(
            f"MEMORY_AGENT_KEEP_CHECKPOINTS={raw!r} must be a whole number (0 keeps every checkpoint)"
        )
    return int(raw) or None


def _prompt_tokens(env: Mapping[str, str]) -> int | None:
    raw = _value(env, "MEMORY_AGENT_PROMPT_TOKENS")
    if raw is None:
        return DEFAULT_PROMPT_TOKENS
    if not raw.isdigit() or 0 < int(raw) < MIN_PROMPT_TOKENS:
        raise SettingsError(
            f"MEMORY_AGENT_PROMPT_TOKENS={raw!r} must be a whole number of at least "
            f"{MIN_PROMPT_TOKENS} (0 never folds the conversation into a summary)"
        )
    return int(raw) or None


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def database_target_from_env(env: Mapping[str, str], home: Path) -> DatabaseTarget:
    """Pick the database: Lakebase autoscaling, Lakebase provisioned, URL, else embedded."""
    database_name = _value(env, "LAKEBASE_DATABASE_NAME") or "databricks_postgres"
    schema = _value(env, "LAKEBASE_AGENT_MEMORY_SCHEMA")
    endpoint = _value(env, "LAKEBASE_AUTOSCALING_ENDPOINT")
    project = _value(env, "LAKEBASE_AUTOSCALING_PROJECT")
    branch = _value(env, "LAKEBASE_AUTOSCALING_BRANCH")
    if endpoint:
        return LakebaseTarget(autoscaling_endpoint=endpoint, database=database_name, schema=schema)
    if project or branch:
        if not (project and branch):
            missing = "LAKEBASE_AUTOSCALING_BRANCH" if project else "LAKEBASE_AUTOSCALING_PROJECT"
            raise SettingsError(
                f"Lakebase autoscaling needs both LAKEBASE_AUTOSCALING_PROJECT and "
                f"LAKEBASE_AUTOSCALING_BRANCH; set {missing} (or use LAKEBASE_AUTOSCALING_ENDPOINT)"
            )
        return LakebaseTarget(project=project, branch=branch, database=database_name, schema=schema)
    instance = _value(env, "LAKEBASE_INSTANCE_NAME")
    if instance:
        return LakebaseTarget(instance_name=instance, database=database_name, schema=schema)
    url = _value(env, "DATABASE_URL")
    if url:
        return UrlTarget(url)
    if any(_value(env, name) for name in LIBPQ_HOST_VARIABLES):
        return UrlTarget("")  # libpq reads PGHOST, PGUSER, PGPASSWORD, ... itself
    return EmbeddedTarget(home)


def model_settings_from_env(env: Mapping[str, str]) -> ModelSettings:
    """AGENT_MODEL: ``offline`` (default), ``openai:<model>``, or a Databricks endpoint name."""
    choice = _value(env, "AGENT_MODEL") or "offline"
    if choice == "offline":
        return ModelSettings()
    if choice.startswith("openai:"):
        name = choice.removeprefix("openai:").strip()
        if not name:
            raise SettingsError("AGENT_MODEL=openai: needs a model name, e.g. openai:gpt-4o-mini")
        return ModelSettings(
            kind="openai",
            name=name,
            base_url=_value(env, "OPENAI_BASE_URL"),
            api_key=_value(env, "OPENAI_API_KEY"),
        )
    return ModelSettings(kind="databricks", name=choice.removeprefix("databricks:").strip())


def memory_settings_from_env(env: Mapping[str, str]) -> MemorySettings:
    """EMBEDDINGS, DATABRICKS_EMBEDDING_ENDPOINT, EMBEDDING_DIMS, OPENAI_EMBEDDING_MODEL,
    MEMORY_SEARCH_MODE, MEMORY_DEDUP_THRESHOLD, MEMORY_RECALL_LIMIT, MEMORY_SHARED_SCOPE,
    MEMORY_EXTRACTION, MEMORY_BACKEND, DATABRICKS_MEMORY_STORE."""
    backend = (_value(env, "MEMORY_BACKEND") or "lakebase").lower()
    if backend not in MEMORY_BACKENDS:
        raise SettingsError(
            f"MEMORY_BACKEND={backend!r} is not one of {', '.join(MEMORY_BACKENDS)}"
        )
    managed_store = _value(env, "DATABRICKS_MEMORY_STORE")
    if backend == "managed":
        if not managed_store:
            raise SettingsError(
                "MEMORY_BACKEND=managed needs DATABRICKS_MEMORY_STORE=catalog.schema.store"
            )
        try:
            parse_store_name(managed_store)
        except InvalidStoreName as exc:
            raise SettingsError(str(exc)) from None
    endpoint = _value(env, "DATABRICKS_EMBEDDING_ENDPOINT")
    # A Databricks embedding endpoint alone selects Databricks embeddings (as in
    # the Databricks templates); otherwise the offline hash embedder.
    kind = (_value(env, "EMBEDDINGS") or ("databricks" if endpoint else "hash")).lower()
    if kind not in EMBEDDINGS_KINDS:
        raise SettingsError(f"EMBEDDINGS={kind!r} is not one of {', '.join(EMBEDDINGS_KINDS)}")
    dims = _positive_int(env, "EMBEDDING_DIMS")
    if kind == "openai":
        embeddings = EmbeddingsConfig(
            kind="openai",
            dims=dims,
            endpoint=_value(env, "OPENAI_EMBEDDING_MODEL"),
            base_url=_value(env, "OPENAI_BASE_URL"),
            api_key=_value(env, "OPENAI_API_KEY"),
        )
    elif kind == "databricks":
        embeddings = EmbeddingsConfig(kind="databricks", dims=dims, endpoint=endpoint)
    else:
        embeddings = EmbeddingsConfig(kind=kind, dims=dims)  # type: ignore[arg-type]
    mode = (_value(env, "MEMORY_SEARCH_MODE") or "hybrid").lower()
    if mode not in SEARCH_MODES:
        raise SettingsError(f"MEMORY_SEARCH_MODE={mode!r} is not one of {', '.join(SEARCH_MODES)}")
    threshold_text = _value(env, "MEMORY_DEDUP_THRESHOLD")
    threshold = MemorySettings().dedup_threshold
    if threshold_text is not None:
        try:
            threshold = float(threshold_text)
        except ValueError:
            threshold = -1.0
        if not 0 < threshold <= 1:
            raise SettingsError(
                f"MEMORY_DEDUP_THRESHOLD={threshold_text!r} must be a number in (0, 1], e.g. 0.95"
            )
    return MemorySettings(
        embeddings=embeddings,
        search_mode=mode,  # type: ignore[arg-type]
        dedup_threshold=threshold,
        recall_limit=_positive_int(env, "MEMORY_RECALL_LIMIT") or MemorySettings().recall_limit,
        shared_scope=_value(env, "MEMORY_SHARED_SCOPE"),
        extract_after_turn=_flag(env, "MEMORY_EXTRACTION"),
        backend=backend,  # type: ignore[arg-type]
        managed_store=managed_store,
    )


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    text = _value(env, name)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(f"{name}={text!r} must be a positive whole number")
    return int(text)


def serving_settings_from_env(env: Mapping[str, str]) -> ServingSettings:
    """The server's settings: Databricks Apps' own variables plus our trust switch."""
    port_text = _value(env, "DATABRICKS_APP_PORT")
    try:
        port = int(port_text) if port_text else DEFAULT_PORT
    except ValueError:
        raise SettingsError(f"DATABRICKS_APP_PORT={port_text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise SettingsError(f"DATABRICKS_APP_PORT={port} is not between 1 and 65535")
    return ServingSettings(
        app_name=_value(env, "DATABRICKS_APP_NAME"),
        port=port,
        trust_client_user_id=_flag(env, "MEMORY_AGENT_TRUST_CLIENT_USER_ID"),
        mlflow_tracking_uri=_value(env, "MLFLOW_TRACKING_URI"),
        mlflow_experiment_id=_value(env, "MLFLOW_EXPERIMENT_ID"),
        databricks_host=_value(env, "DATABRICKS_HOST"),
    )
