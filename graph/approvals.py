"""Approvals from the outside: which threads wait for a decision, and the decision to send.

``pending_approvals(graph)`` lists every thread paused at an approval request,
with what it would do; ``decision(...)`` builds the ``Command`` that resumes it.
A paused thread can be resumed by any process, at any later time:

    graph.invoke(decision("approve"), {"configurable": {"thread_id": "t1"}})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langgraph.types import Command

from checkpointing.browse import threads_waiting
from nodes.review_tool_calls import APPROVAL_REQUEST, parse_decision


@dataclass(frozen=True)
class PendingApproval:
    """One tool call waiting for a human's decision."""

    thread_id: str
    interrupt_id: str
    tool: str
    args: dict[str, Any]
    description: str
    tool_call_id: str
    user_id: str | None = None
    """The user the paused run was for (the call runs for this user on resume)."""
    since: str | None = None
    """When the thread paused (ISO 8601)."""


def pending_in_thread(graph: Any, thread_id: str) -> list[PendingApproval]:
    """The approval requests ``thread_id`` waits on (empty if it is not paused)."""
    snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
    found = []
    for pending in snapshot.interrupts:
        value = pending.value if isinstance(pending.value, dict) else {}
        if value.get("type") != APPROVAL_REQUEST:
            continue
        found.append(
            PendingApproval(
                thread_id=thread_id,
                interrupt_id=pending.id,
                tool=str(value.get("tool")),
                args=dict(value.get("args") or {}),
                description=str(value.get("description", "")),
                tool_call_id=str(value.get("tool_call_id")),
                user_id=value.get("user_id"),
                since=snapshot.created_at,
            )
        )
    return found


def pending_approvals(graph: Any, limit: int = 100) -> list[PendingApproval]:
    """Approval requests across threads, most recently paused first."""
    if graph.checkpointer is None:
        return []
    found: list[PendingApproval] = []
    for thread_id in threads_waiting(graph.checkpointer.conn, limit):
        found.extend(pending_in_thread(graph, thread_id))
    return found


def decision(
    action: str, *, args: dict[str, Any] | None = None, reason: str | None = None
) -> Command[Any]:
    """The ``Command`` that resumes a paused thread with ``action`` (approve, reject, edit)."""
    value: dict[str, Any] = {"action": action}
    if args is not None:
        value["args"] = args
    if reason is not None:
        value["reason"] = reason
    parse_decision(value)  # fail here, with the reason, rather than in the run
    return Command(resume=value)
