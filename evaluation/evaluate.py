"""Evaluate the agent's memory with ``mlflow.genai.evaluate`` (``make eval``).

Each case says some things first (``earlier``, in the same thread, or in
another thread of the same user for long-term memory) and then asks a
question whose answer must contain the expected facts. The agent runs in this
process through the same ResponsesAgent the server uses, on the configured
database and model (offline by default, a real endpoint when AGENT_MODEL is
set). Results and one trace per case go to the MLflow store (locally a SQLite
file under MEMORY_AGENT_HOME; see graph/tracing.py), where ``mlflow ui`` shows
them.

``mlflow.genai.evaluate`` calls ``predict_fn(**row["inputs"])``, so the
predict function takes the case's inputs as keyword arguments and returns the
answer text.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from graph.settings import Settings

EVAL_USER = "eval-user"

# Memory questions the offline model can answer from rules; a real model should too.
EVALUATION_CASES: list[dict[str, Any]] = [
    {
        "inputs": {"question": "What is my name?", "earlier": ["My name is Ada."]},
        "expectations": {"expected_facts": ["Ada"]},
    },
    {
        "inputs": {
            "question": "What is my dog?",
            "earlier": ["My city is Lyon and my dog is Rex."],
        },
        "expectations": {"expected_facts": ["Rex"]},
    },
    {
        "inputs": {
            "question": "What is my favourite colour?",
            "earlier": ["My favourite colour is blue.", "My favourite colour is green."],
        },
        "expectations": {"expected_facts": ["green"]},
    },
    {
        "inputs": {"question": "What did I say earlier?", "earlier": ["My team is Falcons."]},
        "expectations": {"expected_facts": ["Falcons"]},
    },
    {
        "inputs": {"question": "What is my name?", "earlier": []},
        "expectations": {"expected_facts": ["don't know"]},
    },
    {
        # Long-term memory: told in one thread, asked in another (needs a user and a store).
        "inputs": {
            "question": "What do you know about me?",
            "earlier": ["Remember that my employer is Databricks."],
            "earlier_in_another_thread": True,
        },
        "expectations": {"expected_facts": ["Databricks"]},
    },
]


def make_predict_fn(agent: Any) -> Callable[..., str]:
    """``predict_fn(question, earlier=(), earlier_in_another_thread=False) -> str`` for ``agent``.

    ``agent`` is a ``MemoryResponsesAgent``; every call uses fresh threads.
    """

    def predict_fn(
        question: str,
        earlier: Sequence[str] = (),
        earlier_in_another_thread: bool = False,
    ) -> str:
        thread_id = f"eval-{uuid.uuid4()}"
        earlier_thread = f"eval-{uuid.uuid4()}" if earlier_in_another_thread else thread_id
        for text in earlier:
            agent.predict(_request(text, earlier_thread))
        response = agent.predict(_request(question, thread_id))
        return _output_text(response)

    return predict_fn


def _request(text: str, thread_id: str) -> dict[str, Any]:
    return {
        "input": [{"role": "user", "content": text}],
        "custom_inputs": {"thread_id": thread_id, "user_id": EVAL_USER},
    }


def _output_text(response: Any) -> str:
    texts: list[str] = []
    for item in response.output:
        if item.type == "message":
            texts.extend(part["text"] for part in item.content if part.get("type") == "output_text")
    return "\n".join(texts)


def scorers() -> list[Any]:
    """Simple deterministic scorers: every expected fact present; an answer given."""
    from mlflow.genai.scorers import scorer

    @scorer
    def contains_expected_facts(outputs: str, expectations: dict[str, Any]) -> bool:
        """Every expected fact appears in the answer (case-insensitive)."""
        answer = (outputs or "").lower().replace("’", "'")
        return all(fact.lower() in answer for fact in expectations.get("expected_facts", []))

    @scorer
    def answered(outputs: str) -> bool:
        """The agent said something."""
        return bool((outputs or "").strip())

    return [contains_expected_facts, answered]


def cases_for(graph: Any) -> list[dict[str, Any]]:
    """The cases this graph can be asked: long-term ones need a store."""
    if graph.store is not None:
        return list(EVALUATION_CASES)
    return [
        case for case in EVALUATION_CASES if not case["inputs"].get("earlier_in_another_thread")
    ]


def run_evaluation(settings: Settings | None = None) -> Any:
    """Run the evaluation set against the configured agent; returns MLflow's result."""
    import mlflow

    from graph.agent import open_agent
    from serving.responses import MemoryResponsesAgent
    from serving.tracing import configure_tracing

    settings = settings or Settings.from_env()
    configure_tracing(settings)
    with open_agent(settings) as graph:
        agent = MemoryResponsesAgent(graph, settings)
        cases = cases_for(graph)
        if len(cases) < len(EVALUATION_CASES):
            print(
                f"skipping {len(EVALUATION_CASES) - len(cases)} long-term memory case(s): "
                "this graph has no memory store"
            )
        return mlflow.genai.evaluate(
            data=cases,
            predict_fn=make_predict_fn(agent),
            scorers=scorers(),
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation and print one line per metric; exit 1 if any case failed."""
    argparse.ArgumentParser(
        prog="python -m evaluation.evaluate",
        description="Evaluate the agent's memory with mlflow.genai.evaluate.",
    ).parse_args(argv)
    settings = Settings.from_env()
    result = run_evaluation(settings)
    for name, value in sorted(result.metrics.items()):
        print(f"{name}: {value}")
    print(f"model: {settings.model.describe()}")
    print(f"results: MLflow run {result.run_id} in {_tracking_location(settings)}")
    facts = result.metrics.get("contains_expected_facts/mean")
    return 0 if facts == 1.0 else 1


def _tracking_location(settings: Settings) -> str:
    from serving.tracing import local_tracking_uri

    uri = settings.serving.mlflow_tracking_uri or local_tracking_uri(settings)
    return f"{uri} (view: mlflow ui --backend-store-uri {uri})"


if __name__ == "__main__":
    sys.exit(main())
