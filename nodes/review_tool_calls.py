"""Node: pause for a human's decision on sensitive tool calls, then send the rest to run_tools.

Every tool call of the model's last message passes through here. Calls to
sensitive tools (``graph.tool_markers.needs_approval``) each pause the run with
``interrupt()``; the run resumes with ``Command(resume={"action": "approve" |
"reject" | "edit", "args": {...}, "reason": "..."})``, possibly in another
process hours later.

LangGraph re-runs an interrupted node from its top on resume (langgraph#7780),
replaying earlier answers to earlier ``interrupt()`` calls. This node therefore
does nothing but decide: no I/O, no side effects; it only returns an update.

- approve: the call goes to ``run_tools`` unchanged;
- edit: the call goes with the new arguments, and the model's message is
  rewritten to show the arguments that actually ran;
- reject: the call gets a ToolMessage saying it was rejected (and why), so
  the thread never holds a tool call without its answer (langgraph#4289).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, ToolCall, ToolMessage
from langchain_core.tools import BaseTool
from langgraph.runtime import Runtime
from langgraph.types import Command, Send, interrupt

from graph.context import Context, run_context
from graph.state import State
from graph.tool_markers import needs_approval

ACTIONS = ("approve", "reject", "edit")
APPROVAL_REQUEST = "tool_approval"
MAX_REASON_CHARACTERS = 2000

Action = Literal["approve", "reject", "edit"]


class InvalidDecision(ValueError):
    """A resume value that is not a valid approval decision; one line says why."""


@dataclass(frozen=True)
class Decision:
    """A human's answer to one approval request."""

    action: Action
    args: dict[str, Any] | None = None
    """The replacement arguments (``edit`` only)."""
    reason: str | None = None
    """Why (shown to the model on ``reject``)."""


def parse_decision(value: Any) -> Decision:
    """Read a resume value: ``{"action": ..., "args": {...}, "reason": ...}`` or a bare action."""
    if isinstance(value, str):
        value = {"action": value}
    if not isinstance(value, Mapping):
        raise InvalidDecision(
            "resume with {'action': 'approve' | 'reject' | 'edit', 'args': {...}, 'reason': '...'}, "
            f"got {type(value).__name__}"
        )
    unknown = set(value) - {"action", "args", "reason"}
    if unknown:
        raise InvalidDecision(f"unknown key(s) in the decision: {', '.join(sorted(unknown))}")
    action = value.get("action")
    if action not in ACTIONS:
        raise InvalidDecision(f"action must be one of approve, reject, edit; got {action!r}")
    args = value.get("args")
    if action == "edit":
        if not isinstance(args, Mapping):
            raise InvalidDecision("an edit needs 'args': a JSON object with the new arguments")
        args = dict(args)
    elif args is not None:
        raise InvalidDecision(f"'args' only goes with action 'edit', not {action!r}")
    reason = value.get("reason")
    if reason is not None:
        if not isinstance(reason, str):
            raise InvalidDecision(f"reason must be text, got {type(reason).__name__}")
        if len(reason) > MAX_REASON_CHARACTERS:
            raise InvalidDecision(f"reason is longer than {MAX_REASON_CHARACTERS} characters")
    return Decision(action=action, args=args, reason=reason)


def approval_request(
    call: ToolCall, tool: BaseTool | None, user_id: str | None = None
) -> dict[str, Any]:
    """The interrupt payload: what would happen, for whom, in data and in words.

    ``user_id`` is the run's (trusted) user: a resume in another process runs
    the call for that same user, never for whoever resumes it.
    """
    args_text = json.dumps(call["args"], ensure_ascii=False, sort_keys=True)
    what = (tool.description or "").strip().splitlines()[0] if tool is not None else ""
    description = f"The agent wants to run {call['name']} with {args_text}"
    if what:
        description += f" ({what})"
    return {
        "type": APPROVAL_REQUEST,
        "tool": call["name"],
        "tool_call_id": call["id"],
        "args": call["args"],
        "description": description + ".",
        "actions": list(ACTIONS),
        "user_id": user_id,
    }


def rejection_message(call: ToolCall, reason: str | None) -> ToolMessage:
    """The answer a rejected call gets, written for the model to act on."""
    text = f"Not done: a human reviewer rejected this {call['name']} call."
    if reason:
        text += f" Reason: {reason.strip().rstrip('.')}."
    text += " Do not call it again unless the user asks for it anew."
    return ToolMessage(text, tool_call_id=call["id"], name=call["name"], status="error")


def unapprovable_message(call: ToolCall) -> ToolMessage:
    """The answer to a sensitive call in a graph that cannot pause (no checkpointer)."""
    return ToolMessage(
        f"Not done: {call['name']} needs a human's approval, and this agent is running "
        "without saved memory, so it cannot pause to ask. Tell the user it could not be done.",
        tool_call_id=call["id"],
        name=call["name"],
        status="error",
    )


def review(
    state: State,
    tools_by_name: Mapping[str, BaseTool],
    user_id: str | None = None,
    *,
    can_pause: bool = True,
) -> Command[Any]:
    """Decide every tool call of the last message; pause (interrupt) on sensitive ones.

    Without a checkpointer (``can_pause`` False) a pause could never be
    resumed, so sensitive calls are refused instead: approval fails closed.
    """
    last = state.messages[-1] if state.messages else None
    if not isinstance(last, AIMessage) or not last.tool_calls:
        raise ValueError("review_tool_calls expects the model's message with tool calls last")
    to_run: list[ToolCall] = []
    final_calls: list[ToolCall] = []
    rejections: list[ToolMessage] = []
    edited = False
    for call in last.tool_calls:
        if not needs_approval(call["name"], tools_by_name, call["args"]):
            to_run.append(call)
            final_calls.append(call)
            continue
        if not can_pause:
            rejections.append(unapprovable_message(call))
            final_calls.append(call)
            continue
        decision = parse_decision(
            interrupt(approval_request(call, tools_by_name.get(call["name"]), user_id))
        )
        if decision.action == "reject":
            rejections.append(rejection_message(call, decision.reason))
            final_calls.append(call)
            continue
        if decision.action == "edit":
            call = ToolCall(
                name=call["name"], args=decision.args or {}, id=call["id"], type="tool_call"
            )
            edited = True
        to_run.append(call)
        final_calls.append(call)
    messages: list[Any] = []
    if edited:  # same message id: add_messages replaces it in place
        messages.append(last.model_copy(update={"tool_calls": final_calls}))
    messages.extend(rejections)
    goto: Sequence[Send] | str = [Send("run_tools", [call]) for call in to_run] or "call_model"
    return Command(update={"messages": messages} if messages else None, goto=goto)


def review_tool_calls_sync(
    state: State,
    runtime: Runtime[Context],
    *,
    tools: Sequence[BaseTool] = (),
    can_pause: bool = True,
) -> Command[Any]:
    """Pause for approval of sensitive tool calls; route the rest to run_tools."""
    user_id = run_context(runtime.context).user_id
    return review(state, {tool.name: tool for tool in tools}, user_id, can_pause=can_pause)


async def review_tool_calls(
    state: State,
    runtime: Runtime[Context],
    *,
    tools: Sequence[BaseTool] = (),
    can_pause: bool = True,
) -> Command[Any]:
    """Pause for approval of sensitive tool calls; route the rest to run_tools (async)."""
    user_id = run_context(runtime.context).user_id
    return review(state, {tool.name: tool for tool in tools}, user_id, can_pause=can_pause)
