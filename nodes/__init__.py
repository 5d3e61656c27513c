"""Graph nodes, one module per node (each with an async body and a sync twin)."""

from nodes.call_model import call_model, call_model_sync
from nodes.recall_memories import recall_memories, recall_memories_sync
from nodes.review_tool_calls import review_tool_calls, review_tool_calls_sync
from nodes.route_model_output import route_model_output
from nodes.run_tools import run_tools

__all__ = [
    "call_model",
    "call_model_sync",
    "recall_memories",
    "recall_memories_sync",
    "review_tool_calls",
    "review_tool_calls_sync",
    "route_model_output",
    "run_tools",
]
