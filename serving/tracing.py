"""Where MLflow traces and evaluation results go; MLflow is imported only when called.

Databricks Apps sets MLFLOW_TRACKING_URI=databricks and MLFLOW_EXPERIMENT_ID
(see app.yaml) and MLflow reads both itself. Locally, with neither set, traces
go to a SQLite store under MEMORY_AGENT_HOME, in the experiment "memory-agent":
``mlflow ui --backend-store-uri sqlite:///$HOME/.memory-agent/mlflow.db``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from graph.settings import Settings

LOCAL_EXPERIMENT = "memory-agent"
ARTIFACTS_DIR = "mlartifacts"


def local_tracking_uri(settings: Settings) -> str:
    """The SQLite store used when MLFLOW_TRACKING_URI is not set."""
    return f"sqlite:///{settings.home / 'mlflow.db'}"


def configure_tracing(settings: Settings, *, autolog: bool = True) -> None:
    """Point MLflow at the configured store and experiment; trace LangGraph runs."""
    import mlflow

    serving = settings.serving
    if serving.mlflow_tracking_uri is None:
        settings.home.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(local_tracking_uri(settings))
    if serving.mlflow_experiment_id is None:
        use_experiment(LOCAL_EXPERIMENT)
    if autolog:
        # One span per graph node, model call and tool call, under the run's trace.
        mlflow.langchain.autolog()


def disable_tracing() -> None:
    """Record no traces (MLflow's agent server starts a span per request otherwise)."""
    import mlflow

    mlflow.tracing.disable()


def use_experiment(name: str) -> Any:
    """``mlflow.set_experiment(name)``; on a SQLite store, artifacts go beside the file.

    MLflow gives a new experiment on a SQLite store the artifact root ``./mlruns``
    under whatever directory the process happened to start in, so logging a model
    from a checkout (or a test) left an ``mlruns/`` there. A new experiment is made
    here with its artifacts in ``mlartifacts/`` next to the database instead.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIR
        # Another process may make it first: then theirs is used.
        with contextlib.suppress(MlflowException):
            mlflow.create_experiment(name, artifact_location=artifacts.resolve().as_uri())
    return mlflow.set_experiment(name)
