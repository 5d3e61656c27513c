"""`python -m evaluation.evaluate` (make eval): runs offline and leaves its results in MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.serving.conftest import REPO, base_env


def test_evaluation_runs_offline_into_a_local_mlflow_store(
    database_url: str, tmp_path: Path
) -> None:
    env = base_env(tmp_path / "home")
    env.update(
        DATABASE_URL=database_url,
        AUTO_SETUP="1",
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'eval.db'}",
    )
    finished = subprocess.run(
        [sys.executable, "-m", "evaluation.evaluate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "contains_expected_facts/mean: 1.0" in finished.stdout
    run_id = next(
        line.split()[3] for line in finished.stdout.splitlines() if line.startswith("results:")
    )

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'eval.db'}")
    run = mlflow.get_run(run_id)
    assert run.data.metrics["contains_expected_facts/mean"] == 1.0
    traces = mlflow.search_traces(
        locations=[run.info.experiment_id], run_id=run_id, return_type="list"
    )
    assert traces, "each evaluated case leaves a trace"
    sessions = {trace.info.trace_metadata.get("mlflow.trace.session") for trace in traces}
    assert all(session and session.startswith("eval-") for session in sessions), sessions
