"""Where MLflow traces and evaluation results go; MLflow is imported only when called.

Databricks Apps sets MLFLOW_TRACKING_URI=databricks and MLFLOW_EXPERIMENT_ID
(see app.yaml) and MLflow reads both itself. Locally, with neither set, traces
go to a SQLite store under MEMORY_AGENT_HOME, in the experiment "memory-agent":
``mlflow ui --backend-store-uri sqlite:///$HOME/.memory-agent/mlflow.db``.
"""

from __future__ import annotations

from graph.settings import Settings

LOCAL_EXPERIMENT = "memory-agent"


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
        mlflow.set_experiment(LOCAL_EXPERIMENT)
    if autolog:
        # One span per graph node, model call and tool call, under the run's trace.
        mlflow.langchain.autolog()


def disable_tracing() -> None:
    """Record no traces (MLflow's agent server starts a span per request otherwise)."""
    import mlflow

    mlflow.tracing.disable()
