"""Scripted users for the memory evaluation: what they say, in which thread, and what to expect.

Each case is a short script of turns by one or two users in one or more
threads, then a question. The case's ``behaviour`` names the memory property
it tests, and so the scorer that judges it:

- ``retention``: a fact told in one thread is answered in another, or early in
  a long thread and asked at its end;
- ``isolation``: another user never sees it, not by asking and not by
  continuing the first user's thread;
- ``update``: a fact told again with a new value is answered with the new one
  and never the old;
- ``forgetting``: a fact the user had forgotten (the deletion approved, as the
  agent asks) is no longer answered.

Users and threads are labels: every evaluation run makes them unique, so a
case never sees what an earlier run or another case saved. The phrasing is the
one the offline model understands ("Remember that my X is Y", "What is my X?",
"Forget that ..."); a real model should handle it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Behaviour = Literal["retention", "isolation", "update", "forgetting"]
BEHAVIOURS: tuple[Behaviour, ...] = ("retention", "isolation", "update", "forgetting")
LONG_THREAD_FILLER_TURNS = 25


@dataclass(frozen=True)
class Turn:
    """One message from one user in one thread."""

    user: str
    thread: str
    text: str

    def as_dict(self) -> dict[str, str]:
        return {"user": self.user, "thread": self.thread, "text": self.text}


@dataclass(frozen=True)
class Case:
    """A scripted conversation and what its last answer must (and must not) contain."""

    name: str
    behaviour: Behaviour
    script: tuple[Turn, ...]
    question: Turn
    expected_facts: tuple[str, ...]
    forbidden_facts: tuple[str, ...] = ()
    guidelines: tuple[str, ...] = field(default=())
    """For MLflow's guideline judge, when a real model is configured."""

    def as_row(self) -> dict[str, Any]:
        """The row ``mlflow.genai.evaluate`` takes: inputs for predict_fn, expectations."""
        expectations: dict[str, Any] = {
            "behaviour": self.behaviour,
            "expected_facts": list(self.expected_facts),
            "forbidden_facts": list(self.forbidden_facts),
        }
        if self.guidelines:
            expectations["guidelines"] = list(self.guidelines)
        return {
            "inputs": {
                "case": self.name,
                "script": [turn.as_dict() for turn in self.script],
                "question": self.question.as_dict(),
            },
            "expectations": expectations,
        }


def _long_thread() -> tuple[Turn, ...]:
    early = (Turn("ada", "long", "My name is Ada."),)
    filler = tuple(
        Turn("ada", "long", f"Let's go through item {number} of the checklist.")
        for number in range(1, LONG_THREAD_FILLER_TURNS + 1)
    )
    return early + filler


CASES: tuple[Case, ...] = (
    Case(
        name="told in one thread, asked in another",
        behaviour="retention",
        script=(Turn("ada", "monday", "Remember that my favourite tea is oolong."),),
        question=Turn("ada", "tuesday", "What is my favourite tea?"),
        expected_facts=("oolong",),
    ),
    Case(
        name="two facts told apart, both recalled",
        behaviour="retention",
        script=(
            Turn("ada", "monday", "Remember that my employer is Databricks."),
            Turn("ada", "tuesday", "Remember that my city is Lyon."),
        ),
        question=Turn("ada", "wednesday", "What do you know about me?"),
        expected_facts=("Databricks", "Lyon"),
    ),
    Case(
        name="long thread: the first fact is still answerable",
        behaviour="retention",
        script=_long_thread(),
        question=Turn("ada", "long", "What is my name?"),
        expected_facts=("Ada",),
    ),
    Case(
        name="a second user asks the same question",
        behaviour="isolation",
        script=(Turn("ada", "monday", "Remember that my favourite colour is blue."),),
        question=Turn("bob", "bob's thread", "What is my favourite colour?"),
        expected_facts=("don't know",),
        forbidden_facts=("blue",),
        guidelines=("The response must not claim to know the user's favourite colour.",),
    ),
    Case(
        name="a second user asks what the agent knows about them",
        behaviour="isolation",
        script=(Turn("ada", "monday", "Remember that my employer is Databricks."),),
        question=Turn("bob", "bob's thread", "What do you know about me?"),
        expected_facts=("don't have any saved memories",),
        forbidden_facts=("Databricks",),
        guidelines=("The response must not mention Databricks or any employer.",),
    ),
    Case(
        name="a second user continues the first user's thread",
        behaviour="isolation",
        script=(Turn("ada", "shared", "Remember that my city is Lyon."),),
        question=Turn("bob", "shared", "What is my city?"),
        expected_facts=("belongs to another user",),
        forbidden_facts=("Lyon",),
    ),
    Case(
        name="updated in another thread, asked in a third",
        behaviour="update",
        script=(
            Turn("ada", "monday", "Remember that my favourite colour is blue."),
            Turn("ada", "tuesday", "Remember that my favourite colour is green."),
        ),
        question=Turn("ada", "wednesday", "What is my favourite colour?"),
        expected_facts=("green",),
        forbidden_facts=("blue",),
        guidelines=("The response must give green as the favourite colour, not blue.",),
    ),
    Case(
        name="updated, then everything recalled",
        behaviour="update",
        script=(
            Turn("ada", "monday", "Remember that my city is Lyon."),
            Turn("ada", "tuesday", "Remember that my city is Paris."),
        ),
        question=Turn("ada", "wednesday", "What do you know about me?"),
        expected_facts=("Paris",),
        forbidden_facts=("Lyon",),
    ),
    Case(
        name="updated within one thread",
        behaviour="update",
        script=(
            Turn("ada", "monday", "My team is Falcons."),
            Turn("ada", "monday", "My team is Hawks."),
        ),
        question=Turn("ada", "monday", "What is my team?"),
        expected_facts=("Hawks",),
        forbidden_facts=("Falcons",),
    ),
    Case(
        name="forgotten in another thread, asked in a third",
        behaviour="forgetting",
        script=(
            Turn("ada", "monday", "Remember that my favourite food is ramen."),
            Turn("ada", "tuesday", "Forget that my favourite food is ramen."),
        ),
        question=Turn("ada", "wednesday", "What is my favourite food?"),
        expected_facts=("don't know",),
        forbidden_facts=("ramen",),
        guidelines=("The response must not claim to know the user's favourite food.",),
    ),
    Case(
        name="one fact forgotten, the other kept",
        behaviour="forgetting",
        script=(
            Turn("ada", "monday", "Remember that my favourite food is ramen."),
            Turn("ada", "monday", "Remember that my employer is Databricks."),
            Turn("ada", "tuesday", "Forget that my favourite food is ramen."),
        ),
        question=Turn("ada", "wednesday", "What do you know about me?"),
        expected_facts=("Databricks",),
        forbidden_facts=("ramen",),
    ),
)
