"""`python -m evaluation.evaluate` (make eval): scripted users across sessions, users and changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from evaluation.evaluate import SCORER_FOR, check_answer, judge_model_uri, judges, rows_for
from evaluation.scenarios import BEHAVIOURS, CASES
from graph.settings import ModelSettings
from tests.serving.conftest import REPO, base_env


def test_every_memory_case_passes_offline_into_a_local_mlflow_store(
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
        timeout=900,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for behaviour in BEHAVIOURS:
        name = SCORER_FOR[behaviour]
        count = sum(case.behaviour == behaviour for case in CASES)
        assert f"### {name}\n" in finished.stdout
        assert f"| **pass rate** | **{count}/{count}** | |" in finished.stdout
        assert f"{name}/mean: 1.0" in finished.stdout
    run_id = next(
        line.split()[3] for line in finished.stdout.splitlines() if line.startswith("results:")
    )

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'eval.db'}")
    run = mlflow.get_run(run_id)
    assert run.data.metrics["isolation/mean"] == 1.0
    traces = mlflow.search_traces(
        locations=[run.info.experiment_id], run_id=run_id, return_type="list"
    )
    # One trace per case: the scripted turns are spans inside it.
    assert len(traces) == len(CASES)
    sessions = {trace.info.trace_metadata.get("mlflow.trace.session") for trace in traces}
    assert all(session and session.startswith("eval-") for session in sessions), sessions
    long_case = next(t for t in traces if "long thread" in t.info.request_preview)
    assert len([s for s in long_case.data.spans if s.name == "predict"]) >= 26


def test_a_graph_without_memory_has_no_cases_to_run() -> None:
    from graph.builder import build_graph

    assert rows_for(build_graph()) == []


def test_an_answer_passes_with_every_expected_fact_and_no_forbidden_one() -> None:
    expectations = {"expected_facts": ["green"], "forbidden_facts": ["blue"]}
    assert check_answer("Your favourite colour is Green.", expectations)[0]
    passed, why = check_answer("It was blue, now green.", expectations)
    assert not passed and "'blue'" in why
    passed, why = check_answer("I don’t know.", {"expected_facts": ["don't know", "Ada"]})
    assert not passed and why == "missing 'Ada'"


def test_judges_join_only_when_a_real_model_is_configured() -> None:
    assert judges(ModelSettings()) == []
    assert judge_model_uri(ModelSettings(kind="openai", name="gpt-4o-mini")) == (
        "openai:/gpt-4o-mini"
    )
    found = judges(ModelSettings(kind="databricks", name="databricks-claude-sonnet-4"))
    assert [judge.name for judge in found] == ["correctness", "expectations_guidelines"]
    assert {judge.model for judge in found} == {"databricks:/databricks-claude-sonnet-4"}
