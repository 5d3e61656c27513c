"""log-model on a Lakebase configuration: resources declared through the (stand-in) workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.settings import Settings
from tests.lakebase_harness import FakeLakebase


def _lakebase_env(monkeypatch: pytest.MonkeyPatch, fake: FakeLakebase, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", fake.stand_in.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", fake.stand_in.pat)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AGENT_MODEL", "databricks-claude-sonnet-4")
    monkeypatch.setenv("DATABRICKS_EMBEDDING_ENDPOINT", "databricks-gte-large-en")
    monkeypatch.setenv("LAKEBASE_AGENT_MEMORY_SCHEMA", "agent_memory")
    # As Databricks Apps injects it: the instance's host, which names no instance by itself.
    monkeypatch.setenv("LAKEBASE_INSTANCE_NAME", fake.host)


def test_logged_model_declares_the_lakebase_instance_and_endpoints(
    fake_lakebase: FakeLakebase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.models import Model

    from serving.mlflow_model import log_agent_model

    _lakebase_env(monkeypatch, fake_lakebase, tmp_path)
    # Long-term memory in a managed memory store: its settings travel with the model too.
    monkeypatch.setenv("MEMORY_BACKEND", "managed")
    monkeypatch.setenv("DATABRICKS_MEMORY_STORE", "main.default.agent_memory")
    monkeypatch.setenv("MEMORY_SHARED_SCOPE", "team")
    logged = log_agent_model(Settings.from_env(), name="agent", experiment="lakebase-model")

    # The host was resolved to the instance's name through the workspace's instance list,
    # and nothing else was touched: no Lakebase credential minted, no endpoint called.
    requests = list(fake_lakebase.state.requests)
    assert ("GET", "/api/2.0/database/instances") in requests
    assert [path for _, path in requests if "credentials" in path or "serving" in path] == []
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = Model.load(logged.model_uri)
    assert model.resources == {
        "api_version": "1",
        "databricks": {
            "lakebase": [{"name": "agent-memory"}],
            "serving_endpoint": [
                {"name": "databricks-claude-sonnet-4"},
                {"name": "databricks-gte-large-en"},
            ],
        },
    }
    environment = model.flavors["python_function"]["config"]["environment"]
    assert environment["LAKEBASE_INSTANCE_NAME"] == "agent-memory"
    assert environment["LAKEBASE_AGENT_MEMORY_SCHEMA"] == "agent_memory"
    assert environment["AGENT_MODEL"] == "databricks-claude-sonnet-4"
    assert environment["MEMORY_BACKEND"] == "managed"
    assert environment["DATABRICKS_MEMORY_STORE"] == "main.default.agent_memory"
    assert environment["MEMORY_SHARED_SCOPE"] == "team"
    assert "DATABRICKS_TOKEN" not in environment  # secrets never travel with the model
    assert model.metadata["memory_agent"]["database"].startswith("Lakebase instance")
    assert mlflow.get_experiment(logged.experiment_id).name == "lakebase-model"


def test_an_unknown_instance_host_is_one_clear_error_before_anything_is_logged(
    fake_lakebase: FakeLakebase, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serving.mlflow_model import ModelConfigError, log_agent_model

    _lakebase_env(monkeypatch, fake_lakebase, tmp_path)
    monkeypatch.setenv("LAKEBASE_INSTANCE_NAME", "instance-nowhere.database.example.com")
    with pytest.raises(ModelConfigError, match="no Lakebase instance in this workspace has host"):
        log_agent_model(Settings.from_env())
    assert not (tmp_path / "mlflow.db").exists()
