"""The messages reducer with a remembered id index gives LangGraph's reducer's results."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, RemoveMessage
from langgraph.channels.delta import DeltaChannel
from langgraph.graph import START, StateGraph
from langgraph.graph.message import _messages_delta_reducer

from checkpointing import MemoryAgentSaver, setup_checkpoint_tables
from checkpointing.delta_history import fresh_copy
from checkpointing.message_reducer import MessagesDeltaChannel, messages_delta_reducer
from database import UrlTarget, open_database


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


@dataclass
class StockDeltaChat:
    messages: Annotated[
        list[AnyMessage], DeltaChannel(_messages_delta_reducer, snapshot_frequency=3)
    ] = field(default_factory=list)


@dataclass
class OurDeltaChat:
    messages: Annotated[
        list[AnyMessage], MessagesDeltaChannel(_messages_delta_reducer, snapshot_frequency=3)
    ] = field(default_factory=list)


def _reply(state: Any) -> dict[str, Any]:
    last = state.messages[-1]
    if len(state.messages) % 5 == 0:  # now and then, edit the user's message by id
        return {"messages": [HumanMessage(f"edited {last.content}", id=last.id)]}
    return {"messages": [AIMessage(f"reply {len(state.messages)}")]}


def test_saved_threads_match_the_stock_channel(database_url: str) -> None:
    """Tuple inputs get ids (LangGraph recognises the channel's reducer), every read agrees."""
    with open_database(UrlTarget(database_url)) as db:
        setup_checkpoint_tables(db.pool)
        graphs = {}
        for schema in (StockDeltaChat, OurDeltaChat):
            builder = StateGraph(schema)
            builder.add_node("reply", _reply)
            builder.add_edge(START, "reply")
            graphs[schema.__name__] = builder.compile(checkpointer=MemoryAgentSaver(db.pool))
        for turn in range(12):
            for name, graph in graphs.items():
                graph.invoke({"messages": [("user", f"turn {turn}")]}, _config(name))
        history = {
            name: [
                [(type(m), m.content) for m in s.values["messages"]]
                for s in graph.get_state_history(_config(name))
            ]
            for name, graph in graphs.items()
        }
        assert history["OurDeltaChat"] == history["StockDeltaChat"]
        ours = graphs["OurDeltaChat"].get_state(_config("OurDeltaChat")).values["messages"]
        again = graphs["OurDeltaChat"].get_state(_config("OurDeltaChat")).values["messages"]
        assert all(m.id for m in ours)
        assert [m.id for m in ours] == [m.id for m in again]
        assert any(m.content.startswith("edited") for m in ours)


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}
