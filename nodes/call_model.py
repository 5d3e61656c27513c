"""Node: ask the chat model for the next message, with the run's tools bound.

The prompt is bounded (``nodes.summarize_history``): the system prompt with the
recalled memories and the running summary, then the messages the summary does
not cover. When that passes the budget, this node folds older messages into
the summary before calling the model and saves the new summary with its answer.
"""

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
from nodes.summarize_history import (
    PromptBudget,
    asummarize,
    fold_update,
    plan_window,
    summarize,
    summary_block,
)

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


def system_prompt(recalled_memories: Sequence[str], summary: str = "") -> SystemMessage:
    """The system prompt with any recalled memories and the running summary."""
    system = SYSTEM_PROMPT.format(time=datetime.now(UTC).replace(microsecond=0).isoformat())
    if recalled_memories:
        lines = "\n".join(f"- {memory}" for memory in recalled_memories)
        system += f"\nWhat you remember about this user:\n{MEMORIES_START}\n{lines}\n{MEMORIES_END}"
    return SystemMessage(content=system + summary_block(summary))


def prompt_messages(state: State, budget: PromptBudget | None = None) -> list[BaseMessage]:
    """The prompt as it stands (no new fold): system prompt, then the unsummarized messages."""
    system = system_prompt(state.recalled_memories, state.summary)
    _, window = plan_window(system, state.messages, state.summarized_through, None)
    return [system, *window]


def _bound(model: BaseChatModel, tools: list[BaseTool]) -> Any:
    return model.bind_tools(tools) if tools else model


async def call_model(
    state: State,
    runtime: Runtime[Context],
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool] = (),
    user_tools: Sequence[BaseTool] = (),
    budget: PromptBudget | None = None,
) -> dict[str, Any]:
    """Ask the model for the next message."""
    bound = _bound(model, tools_for_run(runtime, tools, user_tools))
    system = system_prompt(state.recalled_memories, state.summary)
    folded, window = plan_window(system, state.messages, state.summarized_through, budget)
    update: dict[str, Any] = {}
    if folded and budget is not None:
        summary = await asummarize(model, state.summary, folded, budget.summary_tokens)
        update = fold_update(folded, summary)
        system = system_prompt(state.recalled_memories, summary)
    response = await bound.ainvoke([system, *window])
    return {"messages": [response], **update}


def call_model_sync(
    state: State,
    runtime: Runtime[Context],
    *,
    model: BaseChatModel,
    tools: Sequence[BaseTool] = (),
    user_tools: Sequence[BaseTool] = (),
    budget: PromptBudget | None = None,
) -> dict[str, Any]:
    """Ask the model for the next message (sync twin of ``call_model``)."""
    bound = _bound(model, tools_for_run(runtime, tools, user_tools))
    system = system_prompt(state.recalled_memories, state.summary)
    folded, window = plan_window(system, state.messages, state.summarized_through, budget)
    update: dict[str, Any] = {}
    if folded and budget is not None:
        summary = summarize(model, state.summary, folded, budget.summary_tokens)
        update = fold_update(folded, summary)
        system = system_prompt(state.recalled_memories, summary)
    return {"messages": [bound.invoke([system, *window])], **update}
