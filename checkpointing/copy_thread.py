"""Copy a thread's history, up to one checkpoint, into another thread.

LangGraph forks only within a thread (``update_state`` on an older checkpoint
adds a branch there); it has no cross-thread copy. Re-creating just the state
in a new thread with ``update_state`` would lose what the checkpoint is
waiting for (its next nodes, pending sends, an approval request) and its
history. So we copy through the saver's own API: every ancestor of the
checkpoint, oldest first, with its channel values and pending writes. Going
through ``put``/``put_writes`` (not SQL on the tables) keeps the copy correct
across checkpoint-table migrations and works with any LangGraph saver.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple


class CheckpointNotFound(LookupError):
    """The thread has no checkpoint with that id; one line."""


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def lineage(
    saver: BaseCheckpointSaver[Any], thread_id: str, checkpoint_id: str
) -> list[CheckpointTuple]:
    """The checkpoint and its ancestors, oldest first."""
    chain: list[CheckpointTuple] = []
    next_id: str | None = checkpoint_id
    while next_id is not None:
        saved = saver.get_tuple(_config(thread_id, next_id))
        if saved is None:
            if not chain:
                raise CheckpointNotFound(f"thread {thread_id!r} has no checkpoint {next_id}")
            break  # pruned history: copy what is left
        chain.append(saved)
        parent = saved.parent_config
        next_id = parent["configurable"].get("checkpoint_id") if parent else None
    return list(reversed(chain))


def copy_checkpoints(
    saver: BaseCheckpointSaver[Any],
    source_thread: str,
    checkpoint_id: str,
    target_thread: str,
    extra_metadata: dict[str, Any] | None = None,
) -> RunnableConfig:
    """Copy ``checkpoint_id`` of ``source_thread`` and its ancestors into ``target_thread``.

    Returns the config of the copy of ``checkpoint_id`` (the new thread's head);
    ``extra_metadata`` is added to that checkpoint's metadata.
    """
    chain = lineage(saver, source_thread, checkpoint_id)
    parent_id: str | None = None
    head: RunnableConfig = _config(target_thread)
    for position, saved in enumerate(chain):
        metadata = dict(saved.metadata)
        if position == len(chain) - 1 and extra_metadata:
            metadata.update(extra_metadata)
        checkpoint = saved.checkpoint
        # All channel versions: the target thread has none of the values yet.
        head = saver.put(
            _config(target_thread, parent_id),
            checkpoint,
            metadata,  # type: ignore[arg-type]
            dict(checkpoint["channel_versions"]),
        )
        writes_by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        for task_id, channel, value in saved.pending_writes or []:
            writes_by_task[task_id].append((channel, value))
        for task_id, writes in writes_by_task.items():
            saver.put_writes(head, writes, task_id)
        parent_id = checkpoint["id"]
    return head
