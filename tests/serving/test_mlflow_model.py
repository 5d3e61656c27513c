"""`memory-agent log-model`: the agent logged as an MLflow model, loaded in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from serving.tracing import LOCAL_EXPERIMENT
from tests.serving.conftest import REPO, base_env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_logged_model_answers_with_memory_in_a_fresh_process_and_statelessly_without_a_database(
    database_url: str, tmp_path: Path
) -> None:
    env = base_env(tmp_path / "home")
    # No database while logging: MLflow's check of the input example runs statelessly.
    env.pop("MEMORY_AGENT_HOME")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    logged = _run(["-m", "cli.main", "log-model", "--name", "agent", "--json"], env)
    assert logged.returncode == 0, logged.stdout + logged.stderr
    result = json.loads(logged.stdout.splitlines()[-1])
    model_uri = result["model_uri"]
    assert model_uri.startswith("models:/")
    assert result["resources"] == []  # offline model, hash embeddings, no Lakebase

    import mlflow
    from mlflow.models import Model

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    model = Model.load(model_uri)
    assert "python_function" in model.flavors
    assert model.saved_input_example_info is not None
    requirements = Path(mlflow.artifacts.download_artifacts(model_uri)) / "requirements.txt"
    pins = requirements.read_text().splitlines()
    assert any(pin.startswith("langgraph==") for pin in pins)
    assert not any(pin.startswith(("pytest==", "ruff==", "mypy==")) for pin in pins)
    # Artifacts beside the SQLite store, not in an mlruns/ of the directory it ran in.
    experiment = mlflow.get_experiment_by_name(LOCAL_EXPERIMENT)
    assert experiment.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
    assert not (REPO / "mlruns").exists()

    # A fresh process with a database: told in one thread, recalled in another. Then
    # the model loaded again with no database: it answers, without memory, after one warning.
    finished = _run(
        [
            "-m",
            "tests.workers.served_model",
            model_uri,
            "ada",
            "t1:Remember that my favourite tea is oolong.",
            "t2:What is my favourite tea?",
            "--no-database",
            "t3:What is my favourite tea?",
        ],
        # Its predictions are traced: into the experiment log-model made, whose artifacts
        # lie beside the SQLite store (MLflow's default experiment would put them in
        # ./mlruns of the checkout).
        {
            **env,
            "DATABASE_URL": database_url,
            "AUTO_SETUP": "1",
            "MLFLOW_EXPERIMENT_NAME": LOCAL_EXPERIMENT,
        },
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    told, asked, stateless = [
        json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")
    ]
    assert told["memory_available"] is True
    assert "oolong" in str(asked["answer"])
    assert asked["user_id"] == "ada"
    assert stateless["memory_available"] is False
    assert stateless["answer"] and "oolong" not in str(stateless["answer"])
    warnings = [line for line in finished.stderr.splitlines() if "memory unavailable" in line]
    assert len(warnings) == 1, finished.stderr
    assert "no database is configured" in warnings[0]


def test_log_model_rejects_a_bad_name_before_logging(tmp_path: Path) -> None:
    env = base_env(tmp_path / "home")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    finished = _run(["-m", "cli.main", "log-model", "--name", "../escape"], env)
    assert finished.returncode == 2
    assert finished.stderr.startswith("memory-agent: error: --name '../escape'")
    assert len(finished.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "mlflow.db").exists()
