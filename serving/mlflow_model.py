"""The agent as an MLflow model (Model Serving): what ``memory-agent log-model`` logs.

MLflow's *models from code*: the model is the file ``serving/model_code.py``
plus our packages as ``code_paths``. Loading it (Model Serving,
``mlflow.pyfunc.load_model``) runs that file, which hands MLflow a
``ServedMemoryAgent``: a ``ResponsesAgent`` that opens the configured backend on
its first request and keeps it for the life of the process.

**Configuration.** The non-secret settings in force when the model was logged
(where Lakebase is, the chat and embedding endpoints, memory behaviour) are
logged with it as ``model_config["environment"]``; the serving environment's
own variables win over them. Secrets (``DATABASE_URL``, tokens) are never
logged: on Model Serving the declared resources give the endpoint its
credentials.

**No database, no memory.** Unlike the CLI, the model does not fall back to an
embedded database when none is configured: in a serving container it would
live and die with one replica, so every replica would remember something
else. With no ``LAKEBASE_*``, ``DATABASE_URL``/``PG*`` or an explicit
``MEMORY_AGENT_HOME``, it answers statelessly with the usual one-line warning
(``MEMORY_REQUIRED=1`` makes that an error).

**Resources.** ``declared_resources`` turns the settings into MLflow resources:
``DatabricksLakebase`` for a provisioned instance (a hostname is resolved to
the instance's name through the workspace), and ``DatabricksServingEndpoint``
for a Databricks chat model and Databricks embeddings. MLflow (3.17) has no
resource type for a Lakebase *autoscaling* database; it is recorded in the
model's metadata instead and its grants are made with ``setup_lakebase.py
--grant`` (see docs/deploy.md).

**Logging touches nothing live.** MLflow runs the input example through a
ResponsesAgent while saving it; during ``log-model`` that one turn is answered
by the offline model with no database, so logging needs neither the endpoints
nor the database (only the workspace, to resolve a Lakebase hostname).

This module imports MLflow: only ``log-model`` and the loaded model import it.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Generator, Mapping
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    ResponsesAgentStreamEvent,
)

from database.targets import EmbeddedTarget, LakebaseTarget
from graph.settings import Settings

REPO = Path(__file__).resolve().parents[1]
MODEL_CODE = Path(__file__).with_name("model_code.py")
# The packages the served agent imports (cli/ and evaluation/ are not needed to serve).
CODE_PACKAGES = ("graph", "nodes", "checkpointing", "store", "database", "serving")
DEFAULT_MODEL_NAME = "memory-agent"
PROJECT_DISTRIBUTION = "lakebase-memory-agent"

# Settings that say *what* to serve with, never secrets: logged with the model.
LOGGED_VARIABLES = (
    "LAKEBASE_INSTANCE_NAME",
    "LAKEBASE_AUTOSCALING_ENDPOINT",
    "LAKEBASE_AUTOSCALING_PROJECT",
    "LAKEBASE_AUTOSCALING_BRANCH",
    "LAKEBASE_DATABASE_NAME",
    "LAKEBASE_AGENT_MEMORY_SCHEMA",
    "AGENT_MODEL",
    "EMBEDDINGS",
    "DATABRICKS_EMBEDDING_ENDPOINT",
    "OPENAI_EMBEDDING_MODEL",
    "EMBEDDING_DIMS",
    "MEMORY_SEARCH_MODE",
    "MEMORY_DEDUP_THRESHOLD",
    "MEMORY_RECALL_LIMIT",
    "MEMORY_AGENT_KEEP_CHECKPOINTS",
    "MEMORY_AGENT_PROMPT_TOKENS",
    "MEMORY_BACKEND",
    "DATABRICKS_MEMORY_STORE",
    "MEMORY_SHARED_SCOPE",
    "MEMORY_REQUIRED",
    "AUTO_SETUP",
)
DATABASE_VARIABLES = (
    "LAKEBASE_INSTANCE_NAME",
    "LAKEBASE_AUTOSCALING_ENDPOINT",
    "LAKEBASE_AUTOSCALING_PROJECT",
    "LAKEBASE_AUTOSCALING_BRANCH",
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGSERVICE",
    "MEMORY_AGENT_HOME",
)
NO_DATABASE_FIX = (
    "set LAKEBASE_INSTANCE_NAME (or LAKEBASE_AUTOSCALING_*) when logging the model, or "
    "DATABASE_URL on the serving endpoint; MEMORY_AGENT_HOME selects an embedded database"
)

INPUT_EXAMPLE: dict[str, Any] = {
    "input": [{"role": "user", "content": "What do you know about me?"}],
    "custom_inputs": {"user_id": "example-user"},
}


# --------------------------------------------------------------------------- serving


def serving_environment(
    logged: Mapping[str, str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the served agent reads: the logged ones, overridden by the process's."""
    current = os.environ if environ is None else environ
    return {**{k: str(v) for k, v in logged.items()}, **current}


def database_configured(environ: Mapping[str, str]) -> bool:
    """True when the environment names a database (an embedded one only explicitly)."""
    return any((environ.get(name) or "").strip() for name in DATABASE_VARIABLES)


# MLflow runs the input example through the model while saving a ResponsesAgent. That
# check happens inside log_agent_model, in this process, on the object the model code
# built, which imports this very module: the flag tells it to answer offline, with no
# database, so logging never calls the endpoints or writes a thread to the real memory.
_logging_check: ContextVar[bool] = ContextVar("memory_agent_logging_check", default=False)


def _open_for_logging_check(settings: Settings) -> Any:
    """The graph with the offline model and no memory, reported nowhere (log-time check)."""
    from graph.agent import MemoryStatus, _compile
    from graph.models import load_chat_model
    from graph.settings import ModelSettings

    status = MemoryStatus(False, "none", "log-time check", "none")
    return _compile(
        settings, load_chat_model(ModelSettings()), (), status, None, None, "log-time check", {}
    )


def _open_stateless(settings: Settings) -> Any:
    """The graph without memory, reported as open_agent reports it (one warning, or an error)."""
    # open_agent always has a database to try (the embedded one by default); the served
    # model must not, so it compiles and reports through the same two steps itself.
    from graph.agent import NO_DATABASE_FOR_STORE, MemoryStatus, _compile, _report
    from graph.models import load_chat_model

    status = MemoryStatus(False, "no database", "no database is configured", NO_DATABASE_FIX)
    _report(status, settings)
    return _compile(
        settings,
        load_chat_model(settings.model),
        (),
        status,
        None,
        None,
        NO_DATABASE_FOR_STORE,
        {},
    )


class ServedMemoryAgent(ResponsesAgent):
    """``MemoryResponsesAgent`` opened lazily, on the first request, from the logged config."""

    def __init__(self) -> None:
        self._logged: dict[str, str] = {}
        self._lock = threading.Lock()
        self._agent: Any = None
        self._stack: ExitStack | None = None

    def load_context(self, context: Any) -> None:
        config = getattr(context, "model_config", None) or {}
        self._logged = dict(config.get("environment") or {})

    def _responses_agent(self) -> Any:
        with self._lock:
            if self._agent is None:
                self._agent = self._open()
            return self._agent

    def _open(self) -> Any:
        from graph.agent import open_agent
        from serving.responses import MemoryResponsesAgent

        environ = serving_environment(self._logged)
        settings = Settings.from_env(environ)
        if _logging_check.get():
            return MemoryResponsesAgent(_open_for_logging_check(settings), settings)
        if not database_configured(environ):
            return MemoryResponsesAgent(_open_stateless(settings), settings)
        stack = ExitStack()
        graph = stack.enter_context(open_agent(settings))
        # The pool (and an embedded server) live as long as the serving process.
        atexit.register(stack.close)
        self._stack = stack
        return MemoryResponsesAgent(graph, settings)

    # MLflow's ResponsesAgent narrows PythonModel.predict to (request); mypy sees an override.
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        return self._responses_agent().predict(request)

    def predict_stream(  # type: ignore[override]
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:
        yield from self._responses_agent().predict_stream(request)


# --------------------------------------------------------------------------- logging


class ModelConfigError(ValueError):
    """The configuration cannot be turned into a deployable model; one line with the fix."""


@dataclass(frozen=True)
class LoggedModel:
    """What log-model did: the model URI and what it declared."""

    model_uri: str
    run_id: str
    experiment_id: str
    resources: list[dict[str, str]]
    notes: list[str]


def logged_environment(
    settings: Settings, environ: Mapping[str, str], lakebase_instance: str | None
) -> dict[str, str]:
    """The non-secret variables to log with the model (the instance by name, not host)."""
    logged = {name: environ[name].strip() for name in LOGGED_VARIABLES if environ.get(name)}
    if lakebase_instance:
        logged["LAKEBASE_INSTANCE_NAME"] = lakebase_instance
    return logged


def declared_resources(
    settings: Settings, lakebase_instance: str | None
) -> tuple[list[Any], list[str]]:
    """MLflow resources for the configuration, and notes on what could not be declared."""
    from mlflow.models.resources import DatabricksLakebase, DatabricksServingEndpoint

    from store.config import DEFAULT_DATABRICKS_ENDPOINT

    resources: list[Any] = []
    notes: list[str] = []
    target = settings.database
    if isinstance(target, LakebaseTarget):
        if lakebase_instance:
            resources.append(DatabricksLakebase(database_instance_name=lakebase_instance))
        else:
            notes.append(
                f"{target.describe()}: MLflow has no model resource for Lakebase autoscaling; "
                "grant the endpoint's service principal with `python setup_lakebase.py --grant`"
            )
    elif not isinstance(target, EmbeddedTarget):
        notes.append(
            "DATABASE_URL/PG* are not logged (they may hold a password): "
            "set them on the serving endpoint"
        )
    else:
        notes.append(
            "no database configured: the served model will answer without memory "
            "unless the endpoint sets one"
        )
    if settings.model.kind == "databricks":
        resources.append(DatabricksServingEndpoint(endpoint_name=settings.model.name))
    embeddings = settings.memory.embeddings
    if embeddings.kind == "databricks":
        resources.append(
            DatabricksServingEndpoint(
                endpoint_name=embeddings.endpoint or DEFAULT_DATABRICKS_ENDPOINT
            )
        )
    return resources, notes


def lakebase_instance_name(settings: Settings, workspace_client: Any = None) -> str | None:
    """The provisioned instance's name (a hostname is looked up in the workspace), else None."""
    target = settings.database
    if not isinstance(target, LakebaseTarget) or not target.instance_name:
        return None
    if "." not in target.instance_name:
        return target.instance_name
    from database.errors import DatabaseUnavailable
    from database.lakebase import resolve_instance_name

    if workspace_client is None:
        from databricks.sdk import WorkspaceClient

        workspace_client = WorkspaceClient()
    try:
        return resolve_instance_name(workspace_client, target.instance_name)
    except DatabaseUnavailable as exc:
        raise ModelConfigError(str(exc)) from None


_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure(roots: list[str]) -> set[str]:
    """Names of ``roots`` and everything they need, as installed here (extras included)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [Requirement(root) for root in roots]
    while pending:
        requirement = pending.pop()
        name = _canonical(requirement.name)
        key = name + "[" + ",".join(sorted(requirement.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            child = Requirement(text)
            wanted = child.marker is None or any(
                child.marker.evaluate({"extra": extra}) for extra in {"", *requirement.extras}
            )
            if wanted:  # an extra's dependencies only when that extra was asked for
                child.marker = None
                pending.append(child)
    return {entry for entry in seen if "[" not in entry}


def pip_requirements(lock: Path | None = None) -> list[str]:
    """The lock's pins for the project's runtime dependencies (no dev tools)."""
    import tomllib

    lock = lock or REPO / "requirements.lock"
    pyproject = REPO / "pyproject.toml"
    if not (lock.is_file() and pyproject.is_file()):
        raise ModelConfigError(
            f"no {lock.name} and pyproject.toml beside the code in {REPO}: "
            "run log-model from a checkout of the repository"
        )
    project = tomllib.loads(pyproject.read_text())["project"]
    needed = _runtime_closure(list(project["dependencies"]))
    pins = []
    for line in lock.read_text().splitlines():
        line = line.strip()
        match = _REQUIREMENT_NAME.match(line)
        if match and not line.startswith("#") and _canonical(match.group(1)) in needed:
            pins.append(line)
    return pins


def log_agent_model(
    settings: Settings,
    *,
    name: str = DEFAULT_MODEL_NAME,
    experiment: str | None = None,
    environ: Mapping[str, str] | None = None,
    workspace_client: Any = None,
) -> LoggedModel:
    """Log the agent as a ResponsesAgent model from code; return its URI and resources."""
    import mlflow

    from serving.tracing import LOCAL_EXPERIMENT, local_tracking_uri, use_experiment

    environ = os.environ if environ is None else environ
    instance = lakebase_instance_name(settings, workspace_client)
    resources, notes = declared_resources(settings, instance)
    # Explicitly, from the settings: an earlier set_tracking_uri in this process would
    # otherwise win over MLFLOW_TRACKING_URI.
    if settings.serving.mlflow_tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.serving.mlflow_tracking_uri or local_tracking_uri(settings))
    if experiment and experiment.isdigit():
        found = mlflow.set_experiment(experiment_id=experiment)
    elif experiment:
        found = use_experiment(experiment)
    elif settings.serving.mlflow_experiment_id:
        found = mlflow.set_experiment(experiment_id=settings.serving.mlflow_experiment_id)
    else:
        found = use_experiment(LOCAL_EXPERIMENT)
    target = settings.database
    model_metadata = {
        "memory_agent": {
            "database": target.describe() if isinstance(target, LakebaseTarget) else None,
            "model": settings.model.describe(),
            "embeddings": settings.memory.embeddings.describe(),
        }
    }
    checking = _logging_check.set(True)
    try:
        with mlflow.start_run(
            experiment_id=found.experiment_id, run_name=f"log-model {name}"
        ) as run:
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=str(MODEL_CODE),
                code_paths=[str(REPO / package) for package in CODE_PACKAGES],
                model_config={"environment": logged_environment(settings, environ, instance)},
                resources=resources,
                pip_requirements=pip_requirements(),
                input_example=INPUT_EXAMPLE,
                metadata=model_metadata,
            )
    finally:
        _logging_check.reset(checking)
    return LoggedModel(
        model_uri=info.model_uri,
        run_id=run.info.run_id,
        experiment_id=found.experiment_id,
        resources=[_describe(resource) for resource in resources],
        notes=notes,
    )


def _describe(resource: Any) -> dict[str, str]:
    return {"type": resource.type.value, "name": resource.name}
