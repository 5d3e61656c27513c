"""Time travel on a thread: list its checkpoints, read one, replay from it, fork it.

- ``checkpoints(graph, thread)``: every checkpoint, newest first.
- ``needs_continuing(graph, thread)``: the last run stopped part-way (crash);
  ``graph.invoke(None, config)`` continues it.
- ``state_at(graph, thread, checkpoint)``: the state saved at one checkpoint.
- ``replay(graph, thread, checkpoint)``: run again from that checkpoint. LangGraph
  re-executes the steps after it as a new branch of the same thread; tool calls
  already recorded in the ledger return their recorded results instead of
  acting twice.
- ``fork(graph, thread, checkpoint, to_thread=None, values=None)``: branch from
  that checkpoint, optionally with edited values, in the same thread (the
  branch becomes the thread's head) or in a new thread (a copy of the history
  up to that checkpoint, see ``checkpointing.copy_thread``). The original
  checkpoints are never modified.

A resume always continues the thread's head: naming an older checkpoint in a
resume is refused (``MemoryAgentGraph``), because LangGraph would replay it
(langgraph#7361) instead of answering the pending approval.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot

from checkpointing.copy_thread import CheckpointNotFound, copy_checkpoints
from checkpointing.ownership import check_owner
from checkpointing.threads import validate_thread_id


class ThreadExists(ValueError):
    """A fork's target thread already has history; one line."""


def _config(
    thread_id: str, checkpoint_id: str | None = None, user_id: str | None = None
) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": validate_thread_id(thread_id)}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    if user_id is not None:
        configurable["user_id"] = user_id  # who makes the change (checkpointing.ownership)
    return {"configurable": configurable}


def checkpoints(graph: Any, thread_id: str) -> Iterator[StateSnapshot]:
    """The thread's checkpoints, newest first."""
    return graph.get_state_history(_config(thread_id))


def state_at(graph: Any, thread_id: str, checkpoint_id: str) -> StateSnapshot:
    """The state saved at ``checkpoint_id``; ``CheckpointNotFound`` if there is none."""
    snapshot = graph.get_state(_config(thread_id, checkpoint_id))
    if snapshot.metadata is None:
        raise CheckpointNotFound(f"thread {thread_id!r} has no checkpoint {checkpoint_id}")
    return snapshot


def needs_continuing(graph: Any, thread_id: str) -> bool:
    """True when the thread's last run stopped before finishing (a crash, a kill, a deploy).

    Continue such a thread with ``graph.invoke(None, config)``. A thread waiting
    for an approval is not counted: it needs a decision, not a push.

    This looks at ``snapshot.tasks``, not ``snapshot.next``: when a run dies
    right after a step whose only output is ``Send``s (our review node's), the
    step's writes are saved but the next checkpoint is not, and LangGraph then
    reports ``next == ()`` although ``invoke(None)`` still has work to do (found
    by the kill -9 test).
    """
    snapshot = graph.get_state(_config(thread_id))
    return bool(snapshot.tasks) and not snapshot.interrupts


def replay(graph: Any, thread_id: str, checkpoint_id: str, **kwargs: Any) -> Any:
    """Run the thread again from ``checkpoint_id`` (a new branch); returns the final state."""
    state_at(graph, thread_id, checkpoint_id)
    return graph.invoke(None, _config(thread_id, checkpoint_id), **kwargs)


def fork(
    graph: Any,
    thread_id: str,
    checkpoint_id: str,
    *,
    to_thread: str | None = None,
    values: dict[str, Any] | None = None,
    as_node: str | None = None,
    user_id: str | None = None,
) -> RunnableConfig:
    """Branch from ``checkpoint_id``; returns the config of the new head checkpoint.

    Same thread (``to_thread`` None or equal): the branch becomes the thread's
    head, so the next run continues from it. New thread: the history up to the
    checkpoint is copied there first; ``to_thread`` must not have history yet.
    ``values`` (applied ``as_node``, default: as the node that wrote the
    checkpoint) edit the state of the branch, e.g. replace a message by id.
    ``user_id`` is who forks: the source thread must be theirs
    (``checkpointing.ownership``), and a new thread belongs to the source's owner.
    """
    source = state_at(graph, thread_id, checkpoint_id)
    as_user = _config(thread_id, user_id=user_id)["configurable"]
    if to_thread is None or to_thread == thread_id:
        branch = {**source.config, "configurable": {**source.config["configurable"], **as_user}}
        if values is None:
            # "__copy__": a sibling of the checkpoint with the same values and next steps.
            return graph.update_state(branch, None, as_node="__copy__")
        return graph.update_state(branch, values, as_node=as_node)
    target = _config(to_thread)
    owners = getattr(graph, "thread_owners", None)
    lock = graph.thread_lock.hold(to_thread) if graph.thread_lock is not None else nullcontext()
    with lock:
        owner = None
        if owners is not None:
            owner = graph.owner_of(thread_id)
            check_owner(thread_id, owner, user_id)
        if graph.checkpointer.get_tuple(target) is not None or (
            owners is not None and owners.owner(to_thread) is not None
        ):
            raise ThreadExists(
                f"thread {to_thread!r} already has history; fork into a new thread id"
            )
        if owners is not None:
            owners.claim(to_thread, owner)
        head = copy_checkpoints(
            graph.checkpointer,
            thread_id,
            checkpoint_id,
            to_thread,
            extra_metadata={
                "forked_from": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}
            },
        )
    if values is None:
        return head
    branch = {**head, "configurable": {**head["configurable"], "user_id": user_id}}
    return graph.update_state(branch if user_id is not None else head, values, as_node=as_node)
