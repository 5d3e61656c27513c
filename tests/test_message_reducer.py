"""The messages reducer with a remembered id index gives LangGraph's reducer's results."""

from __future__ import annotations

import copy
import random

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.graph.message import _messages_delta_reducer

from checkpointing.delta_history import fresh_copy
from checkpointing.message_reducer import messages_delta_reducer


def _write(rng: random.Random, step: int, known: list[str]) -> list[object]:
    kind = rng.choice(["new", "new", "replace", "tuple", "no-id", "remove", "dict"])
    if kind == "replace" and known:
        return [AIMessage(f"edited {step}", id=rng.choice(known))]
    if kind == "tuple":
        return [("user", f"tuple {step}")]
    if kind == "no-id":
        return [HumanMessage(f"no id {step}")]
    if kind == "remove" and known:
        return [RemoveMessage(id=rng.choice(known))]
    if kind == "dict":
        return [{"role": "assistant", "content": f"dict {step}", "id": f"d{step}"}]
    return [HumanMessage(f"new {step}", id=f"m{step}"), AIMessage(f"reply {step}", id=f"r{step}")]


def _same(ours: list[object], stock: list[object]) -> bool:
    return [(type(m), m.content, m.id is None or m.id) for m in ours] == [  # type: ignore[attr-defined]
        (type(m), m.content, m.id is None or m.id)  # type: ignore[attr-defined]
        for m in stock
    ]


def test_same_results_as_langgraph_through_copies_and_batches() -> None:
    rng = random.Random(7)
    ours: list[object] = []
    stock: list[object] = []
    for step in range(400):
        writes = [_write(rng, step * 10 + i, [m.id for m in stock if m.id]) for i in range(3)]  # type: ignore[attr-defined]
        batch = writes if rng.random() < 0.5 else writes[:1]
        # The channel's value reaches the reducer as itself, a shallow copy
        # (DeltaChannel.copy) or a cached snapshot's copy (fresh_copy).
        base = rng.choice([ours, copy.copy(ours), fresh_copy(ours)])
        ours = messages_delta_reducer(base, batch)  # type: ignore[arg-type]
        stock = _messages_delta_reducer(stock, batch)  # type: ignore[arg-type]
        assert _same(ours, stock), step
    assert len(stock) > 300


def test_an_edited_copy_does_not_use_the_originals_index() -> None:
    first = messages_delta_reducer([], [[HumanMessage("a", id="a"), AIMessage("b", id="b")]])
    edited = list(first)
    edited[0] = HumanMessage("c", id="c")  # same length, same last message, another id
    result = messages_delta_reducer(edited, [[AIMessage("c again", id="c")]])
    assert [(m.id, m.content) for m in result] == [("c", "c again"), ("b", "b")]
