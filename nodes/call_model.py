"""Node: ask the chat model for the next message, with the run's tools bound."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime

from graph.context import Context, run_context
from graph.offline_model import MEMORIES_END, MEMORIES_START
from graph.state import State

SYSTEM_PROMPT = """You are a helpful assistant with memory.
Within a conversation you see its history. Across conversations you remember the user
through long-term memories: save durable facts and preferences with save_memory, look
them up with search_memories, and remove them with delete_memory when asked.
Current time (UTC): {time}"""


def tools_for_run(
    runtime: Runtime[Context], tools: Sequence[BaseTool], user_tools: Sequence[BaseTool]
) -> list[BaseTool]:
    """The run's tools: ``tools`` always; ``user_tools`` only with a user id and a store."""
    context = run_context(runtime.context)
    if context.user_id and runtime.store is not None:
        return [*tools, *user_tools]
    return list(tools)


def prompt_messages(state: State) -> list[BaseMessage]:
    """The system prompt (with any recalled memories) followed by the conversation."""
    system = SYSTEM_PROMPT.format(time=datetime.now(UTC).replace(microsecond=0).isoformat())
    if state.recalled_memories:
        lines = "\n".join(f"- {memory}" for memory in state.recalled_memories)
        system += f"\nWhat you remember about this user:\n{MEMORIES_START}\n{lines}\n{MEMORIES_END}"
    return [SystemMessage(content=system), *state.messages]


def _bound(model: BaseChatModel, tools: list[BaseTool]) -> Any:
    return model.bind_tools(tools) if tools else model


async def call_model(
    state: State,
    runtime: Runtime[Context],
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool] = (),
    user_tools: Sequence[BaseTool] = (),
) -> dict[str, Any]:
    """Ask the model for the next message."""
    bound = _bound(model, tools_for_run(runtime, tools, user_tools))
    response = await bound.ainvoke(prompt_messages(state))
    return {"messages": [response]}


def call_model_sync(
    state: State,
    runtime: Runtime[Context],
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool] = (),
    user_tools: Sequence[BaseTool] = (),
) -> dict[str, Any]:
    """Ask the model for the next message (sync twin of ``call_model``)."""
    bound = _bound(model, tools_for_run(runtime, tools, user_tools))
    return {"messages": [bound.invoke(prompt_messages(state))]}
