"""Delete threads: one by id, or every thread idle for more than some days (``sweep``).

The checkpoint side is ``checkpointing.cleanup``; this adds what the agent
keeps about a thread elsewhere (each user's record of the threads they talked
in, ``store.memories``) and holds the thread's lock while one thread is
deleted, so a run in progress is never cut from under itself.
"""

from __future__ import annotations

from typing import Any

from checkpointing.cleanup import ThreadDeletion, delete_threads, idle_threads
from store import memories


def _pool(graph: Any) -> Any:
    if graph.checkpointer is None:
        raise RuntimeError("this agent has no checkpointer: there are no threads to delete")
    return graph.checkpointer.conn


def _forget_records(graph: Any, report: ThreadDeletion) -> None:
    if graph.store is not None and report.thread_ids:
        report.rows["thread records"] = memories.forget_thread_records(
            graph.store, report.thread_ids
        )


def delete_thread(graph: Any, thread_id: str, *, dry_run: bool = False) -> ThreadDeletion:
    """Delete one thread (checkpoints, writes, blobs, ledger rows, user records); report counts.

    Raises ``ThreadBusyError`` while a run holds the thread.
    """
    pool = _pool(graph)
    if graph.thread_lock is None or dry_run:
        report = delete_threads(pool, [thread_id], dry_run=dry_run)
    else:
        with graph.thread_lock.hold(thread_id):
            report = delete_threads(pool, [thread_id])
    if not dry_run:
        _forget_records(graph, report)
    return report


def sweep_threads(graph: Any, older_than_days: float, *, dry_run: bool = False) -> ThreadDeletion:
    """Delete every thread whose newest checkpoint is older than ``older_than_days`` days."""
    if older_than_days < 0:
        raise ValueError("the age must be zero or more days")
    pool = _pool(graph)
    report = delete_threads(pool, idle_threads(pool, older_than_days), dry_run=dry_run)
    if not dry_run:
        _forget_records(graph, report)
    return report
