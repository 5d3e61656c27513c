"""Evaluate the agent's memory the way users meet it, with ``mlflow.genai.evaluate`` (``make eval``).

The cases (``evaluation/scenarios.py``) are scripted users: tell in one thread
and ask in another, update a fact, forget one, a second user asking the same
question or continuing the first user's thread, a long thread whose first
facts must still be answered. Each case runs through the same ResponsesAgent
the server uses, on the configured database and model (offline by default, a
real endpoint when AGENT_MODEL is set); a pending approval (forgetting asks for
one) is approved by the scripted user, as a person would.

Scoring:

- four deterministic scorers, one per memory property (``retention``,
  ``isolation``, ``update_correctness``, ``forgetting``): the last answer holds
  every expected fact and none of the forbidden ones. Each scores only its own
  cases (MLflow leaves the others out of its mean);
- with a real model, MLflow's judges as well: ``Correctness`` against the
  expected facts and ``ExpectationsGuidelines`` for cases that state
  guidelines, judged by the same model.

Results, and one trace per case (each turn a span; the session is the asking
thread), go to the configured MLflow experiment: locally a SQLite store under
MEMORY_AGENT_HOME (see serving/tracing.py), where ``mlflow ui`` shows them.
The report prints one table per scorer and exits 1 unless every deterministic
case passed.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from evaluation.scenarios import BEHAVIOURS, CASES, Behaviour, Case
from graph.settings import ModelSettings, Settings

# The deterministic scorer for each behaviour, by the name MLflow reports it under.
SCORER_FOR: dict[Behaviour, str] = {
    "retention": "retention",
    "isolation": "isolation",
    "update": "update_correctness",
    "forgetting": "forgetting",
}
APPROVAL_ANSWER = "approve"
MAX_APPROVALS_PER_TURN = 3


@dataclass
class ScriptedSession:
    """Runs cases against a ``MemoryResponsesAgent``, with users and threads unique to this run."""

    agent: Any
    run_token: str

    def user_id(self, case: str, label: str) -> str:
        # Per case too: one case's memories must never reach another case's users.
        return f"eval-{self.run_token}-{_slug(case)[:40]}-{_slug(label)}"

    def thread_id(self, case: str, label: str) -> str:
        return f"eval-{self.run_token}-{_slug(case)}-{_slug(label)}"

    def say(self, case: str, turn: Mapping[str, str]) -> str:
        """Send one turn; approve what it asks approval for; return the answer text."""
        thread = self.thread_id(case, turn["thread"])
        user = self.user_id(case, turn["user"])
        response = self.agent.predict(_request(turn["text"], thread, user))
        for _ in range(MAX_APPROVALS_PER_TURN):
            if not (response.custom_outputs or {}).get("pending_approvals"):
                break
            response = self.agent.predict(_request(APPROVAL_ANSWER, thread, user))
        return _output_text(response)

    def ask(self, case: str, turn: Mapping[str, str]) -> str:
        """The question turn: a refused request is an answer too (isolation cases expect one)."""
        from serving.responses import RequestError

        try:
            return self.say(case, turn)
        except RequestError as exc:
            return f"refused ({exc.status}): {exc}"


def _slug(label: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in label.lower()).split())


def make_predict_fn(agent: Any, run_token: str | None = None) -> Callable[..., str]:
    """``predict_fn(case, script, question) -> str`` (MLflow calls it with a row's inputs)."""
    import mlflow

    session = ScriptedSession(agent, run_token or uuid.uuid4().hex[:8])

    # One trace per case, each turn a span in it (the agent traces its own predict calls).
    @mlflow.trace(name="memory_case")
    def predict_fn(
        case: str, script: Sequence[Mapping[str, str]], question: Mapping[str, str]
    ) -> str:
        for turn in script:
            session.say(case, turn)
        return session.ask(case, question)

    return predict_fn


def _request(text: str, thread_id: str, user_id: str) -> dict[str, Any]:
    return {
        "input": [{"role": "user", "content": text}],
        "custom_inputs": {"thread_id": thread_id, "user_id": user_id},
    }


def _output_text(response: Any) -> str:
    texts: list[str] = []
    for item in response.output:
        if item.type == "message":
            texts.extend(part["text"] for part in item.content if part.get("type") == "output_text")
    return "\n".join(texts)


def check_answer(answer: str, expectations: Mapping[str, Any]) -> tuple[bool, str]:
    """Every expected fact in the answer and no forbidden one (case-insensitive), and why."""
    text = (answer or "").lower().replace("’", "'")
    missing = [f for f in expectations.get("expected_facts", []) if f.lower() not in text]
    leaked = [f for f in expectations.get("forbidden_facts", []) if f.lower() in text]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(map(repr, missing))}")
    if leaked:
        problems.append(f"says {', '.join(map(repr, leaked))}, which it must not")
    return not problems, "; ".join(problems) or "expected facts present, none forbidden"


def memory_scorers() -> list[Any]:
    """One deterministic scorer per memory behaviour; each judges only its own cases."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    def make(behaviour: Behaviour, description: str) -> Any:
        def score(outputs: str, expectations: dict[str, Any]) -> Feedback | None:
            if expectations.get("behaviour") != behaviour:
                return None  # not this scorer's case: left out of its mean
            passed, why = check_answer(outputs, expectations)
            return Feedback(value=passed, rationale=why)

        score.__doc__ = description
        return scorer(name=SCORER_FOR[behaviour])(score)

    return [
        make(
            "retention", "A fact told earlier (another thread, or early in a long one) is answered."
        ),
        make("isolation", "Another user never gets the first user's facts or thread."),
        make("update", "A fact told again with a new value is answered with the new value only."),
        make("forgetting", "A forgotten fact is no longer answered."),
    ]


def judge_model_uri(model: ModelSettings) -> str | None:
    """The configured chat model as an MLflow judge model URI; None for the offline model."""
    if model.kind == "databricks":
        return f"databricks:/{model.name}"
    if model.kind == "openai":
        return f"openai:/{model.name}"
    return None


def judges(model: ModelSettings) -> list[Any]:
    """MLflow's LLM judges, judged by the configured model (none with the offline model)."""
    uri = judge_model_uri(model)
    if uri is None:
        return []
    from mlflow.genai.scorers import Correctness, ExpectationsGuidelines

    return [Correctness(model=uri), ExpectationsGuidelines(model=uri)]


def rows_for(graph: Any, cases: Sequence[Case] = CASES) -> list[dict[str, Any]]:
    """The cases this graph can run: without a checkpointer and store, none remember."""
    if graph.checkpointer is None or graph.store is None:
        return []
    return [case.as_row() for case in cases]


def run_evaluation(settings: Settings | None = None) -> Any:
    """Run the memory cases against the configured agent; returns MLflow's result (or None)."""
    import mlflow

    from graph.agent import open_agent
    from serving.responses import MemoryResponsesAgent
    from serving.tracing import configure_tracing

    settings = settings or Settings.from_env()
    configure_tracing(settings)
    with open_agent(settings) as graph:
        rows = rows_for(graph)
        if not rows:
            print(
                "memory is unavailable, so there is nothing to evaluate: "
                f"{graph.memory_status}; {graph.long_term_memory_status}",
                file=sys.stderr,
            )
            return None
        agent = MemoryResponsesAgent(graph, settings)
        with _evaluation_environment():
            return mlflow.genai.evaluate(
                data=rows,
                predict_fn=make_predict_fn(agent),
                scorers=[*memory_scorers(), *judges(settings.model)],
            )


@contextmanager
def _evaluation_environment() -> Iterator[None]:
    """MLflow settings for this evaluation, restored afterwards.

    - No trial prediction: MLflow would run the first case once more to see
      whether it traces; ours is traced already, and a second run of a script
      would replay its turns on the same threads and users.
    - One case at a time (unless MLFLOW_GENAI_EVAL_MAX_WORKERS says otherwise):
      every turn holds a few pooled connections (thread lock, checkpointer,
      store), and MLflow's default of 10 parallel cases exhausts a small pool.
    """
    from mlflow.environment_variables import (
        MLFLOW_GENAI_EVAL_MAX_WORKERS,
        MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION,
    )

    wanted = {MLFLOW_GENAI_EVAL_SKIP_TRACE_VALIDATION.name: "true"}
    if not os.environ.get(MLFLOW_GENAI_EVAL_MAX_WORKERS.name):
        wanted[MLFLOW_GENAI_EVAL_MAX_WORKERS.name] = "1"
    previous = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --------------------------------------------------------------------------- report


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN: not scored
        return ""
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    text = str(value)
    return {"yes": "pass", "no": "FAIL", "True": "pass", "False": "FAIL"}.get(text, text)


def _case_name(row: Any) -> str:
    for column in ("inputs", "request"):
        value = row.get(column)
        if isinstance(value, Mapping) and "case" in value:
            return str(value["case"])
    return "?"


def scorer_tables(result: Any, scorer_names: Sequence[str]) -> list[str]:
    """One markdown table per scorer: each case it scored, pass or fail, and why."""
    frame = result.result_df
    names = [name for name in scorer_names if f"{name}/value" in frame.columns]
    tables = []
    for name in names:
        lines = [f"### {name}", "", "| case | result | why |", "|---|---|---|"]
        passed = scored = 0
        for _, row in frame.iterrows():
            verdict = _cell(row.get(f"{name}/value"))
            if not verdict:
                continue
            scored += 1
            passed += verdict == "pass"
            why = _cell(row.get(f"{name}/rationale")).replace("|", "/").replace("\n", " ")
            lines.append(f"| {_case_name(row)} | {verdict} | {why[:160]} |")
        lines.append(f"| **pass rate** | **{passed}/{scored}** | |")
        tables.append("\n".join(lines))
    return tables


def deterministic_pass(result: Any) -> bool:
    """True when every deterministic scorer scored every one of its cases as passing."""
    for behaviour in BEHAVIOURS:
        name = SCORER_FOR[behaviour]
        expected = sum(case.behaviour == behaviour for case in CASES)
        if expected and result.metrics.get(f"{name}/mean") != 1.0:
            return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and print a table per scorer; exit 1 unless every memory case passed."""
    argparse.ArgumentParser(
        prog="python -m evaluation.evaluate",
        description="Evaluate the agent's memory across sessions, users and changes with MLflow.",
    ).parse_args(argv)
    settings = Settings.from_env()
    result = run_evaluation(settings)
    if result is None:
        return 1
    names = [s.name for s in [*memory_scorers(), *judges(settings.model)]]
    print("\n\n".join(scorer_tables(result, names)))
    print()
    for name, value in sorted(result.metrics.items()):
        print(f"{name}: {value}")
    print(f"model: {settings.model.describe()}")
    print(f"results: MLflow run {result.run_id} in {_tracking_location(settings)}")
    return 0 if deterministic_pass(result) else 1


def _tracking_location(settings: Settings) -> str:
    from serving.tracing import local_tracking_uri

    uri = settings.serving.mlflow_tracking_uri or local_tracking_uri(settings)
    return f"{uri} (view: mlflow ui --backend-store-uri {uri})"


if __name__ == "__main__":
    sys.exit(main())
