"""Wire the nodes into a StateGraph and compile it; no node logic lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

# The one way to give a node both a sync and an async body (LangGraph's own
# ToolNode is built on it); a plain async function would make graph.invoke fail.
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from graph.context import Context
from graph.state import State
from graph.tools import BASE_TOOLS
from graph.validation import validate_run
from nodes import (
    call_model,
    call_model_sync,
    recall_memories,
    recall_memories_sync,
    route_model_output,
    run_tools,
)
from nodes.recall_memories import DEFAULT_RECALL_LIMIT


class MemoryAgentGraph(CompiledStateGraph[State, Context, State, State]):
    """The compiled graph, checking each run's input before LangGraph persists it.

    ``invoke`` and ``ainvoke`` go through ``stream`` and ``astream``, so these
    two overrides cover every entry point. ``memory_available`` and
    ``memory_status`` say whether runs are saved (set by ``open_agent``).
    """

    memory_available: bool = False
    memory_status: str = "no checkpointer: runs are not saved"
    long_term_memory_status: str = "no store: no long-term memory"

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        validate_run(input, config, needs_thread=self.checkpointer is not None)
        return super().stream(input, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        validate_run(input, config, needs_thread=self.checkpointer is not None)
        async for chunk in super().astream(input, config, **kwargs):
            yield chunk


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    *,
    model: BaseChatModel | None = None,
    tools: Sequence[BaseTool] = tuple(BASE_TOOLS),
    user_tools: Sequence[BaseTool] | None = None,
    recall_limit: int = DEFAULT_RECALL_LIMIT,
) -> MemoryAgentGraph:
    """Compile the agent graph with any checkpointer and store (None: stateless).

    ``tools`` are bound on every run; ``user_tools`` (default: the memory tools)
    only on runs that have a user id and a store. ``model`` defaults to the
    offline model. Each turn starts by recalling up to ``recall_limit`` of the
    user's memories relevant to the latest message.
    """
    if user_tools is None:
        from store.tools import make_memory_tools

        user_tools = make_memory_tools()
    if model is None:
        from graph.offline_model import OfflineChatModel

        model = OfflineChatModel()
    builder = StateGraph(State, context_schema=Context)
    builder.add_node(
        "recall_memories",
        RunnableCallable(
            recall_memories_sync, recall_memories, name="recall_memories", limit=recall_limit
        ),
    )
    builder.add_node(
        "call_model",
        RunnableCallable(
            call_model_sync,
            call_model,
            name="call_model",
            model=model,
            tools=tuple(tools),
            user_tools=tuple(user_tools),
        ),
    )
    builder.add_node("run_tools", run_tools([*tools, *user_tools]))
    builder.add_edge(START, "recall_memories")
    builder.add_edge("recall_memories", "call_model")
    builder.add_conditional_edges("call_model", route_model_output, ["run_tools", END])
    builder.add_edge("run_tools", "call_model")
    compiled = builder.compile(checkpointer=checkpointer, store=store, name="memory-agent")
    # StateGraph.compile has no hook for the compiled class; switching the class of
    # the fresh instance adds our input check without copying compile's body.
    compiled.__class__ = MemoryAgentGraph
    assert isinstance(compiled, MemoryAgentGraph)
    return compiled
