"""Time travel on a thread: list its checkpoints, read one, replay from it, fork it.

- ``checkpoints(graph, thread)``: every checkpoint, newest first.
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
from checkpointing.threads import validate_thread_id


class ThreadExists(ValueError):
    """A fork's target thread already has history; one line."""


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": validate_thread_id(thread_id)}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
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
) -> RunnableConfig:
    """Branch from ``checkpoint_id``; returns the config of the new head checkpoint.

    Same thread (``to_thread`` None or equal): the branch becomes the thread's
    head, so the next run continues from it. New thread: the history up to the
    checkpoint is copied there first; ``to_thread`` must not have history yet.
    ``values`` (applied ``as_node``, default: as the node that wrote the
    checkpoint) edit the state of the branch, e.g. replace a message by id.
    """
    source = state_at(graph, thread_id, checkpoint_id)
    if to_thread is None or to_thread == thread_id:
        if values is None:
            # "__copy__": a sibling of the checkpoint with the same values and next steps.
            return graph.update_state(source.config, None, as_node="__copy__")
        return graph.update_state(source.config, values, as_node=as_node)
    target = _config(to_thread)
    lock = graph.thread_lock.hold(to_thread) if graph.thread_lock is not None else nullcontext()
    with lock:
        if graph.checkpointer.get_tuple(target) is not None:
            raise ThreadExists(
                f"thread {to_thread!r} already has history; fork into a new thread id"
            )
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
    return graph.update_state(head, values, as_node=as_node)
