"""Router: after the model speaks, review its tool calls or finish."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage

from graph.state import State


def route_model_output(state: State) -> Literal["review_tool_calls", "__end__"]:
    """Go to ``review_tool_calls`` if the last message calls tools, else end the run."""
    last = state.messages[-1] if state.messages else None
    if not isinstance(last, AIMessage):
        raise ValueError(f"expected the model's message last, got {type(last).__name__}")
    return "review_tool_calls" if last.tool_calls else "__end__"
