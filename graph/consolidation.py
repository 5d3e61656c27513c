"""Put consolidation's proposed deletions up for a human's approval, like the model's own.

``store.consolidation`` plans what to tidy; the deletions it proposes become one
paused thread per user: a message with one ``delete_memory`` call per memory,
entered as if the model had written it, so the graph's approval gate pauses on
each (``memory-agent pending`` lists them, ``memory-agent resume`` decides) and
an approved deletion runs through the tool, the ledger and the revision history
like any other.
"""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from graph.context import Context
from store.consolidation import Deletion
from store.namespace import encode_user_id


def propose_deletions(graph: Any, user_id: str, deletions: list[Deletion]) -> str | None:
    """Pause a new thread on the deletions' approval; return its id (None: nothing to ask)."""
    if not deletions:
        return None
    if graph.checkpointer is None:
        raise RuntimeError("proposing deletions needs saved threads (a checkpointer) to pause on")
    thread_id = f"consolidate-{encode_user_id(user_id)[:80]}-{uuid.uuid4().hex[:8]}"
    # The thread is the user's (checkpointing.ownership): made and resumed as that user.
    config = {"configurable": {"thread_id": thread_id, "user_id": user_id}}
    reasons = "; ".join(f"{d.key}: {d.reason} ({d.content[:60]})" for d in deletions)
    proposal = AIMessage(
        content=f"Consolidation proposes deleting {len(deletions)} memories: {reasons}",
        tool_calls=[
            {
                "name": "delete_memory",
                "args": {"key": d.key},
                "id": f"consolidate-{uuid.uuid4().hex}",
            }
            for d in deletions
        ],
    )
    request = HumanMessage(f"Consolidate the memories of {user_id}.")
    graph.update_state(config, {"messages": [request, proposal]}, as_node="call_model")
    graph.invoke(None, config, context=Context(user_id=user_id))
    return thread_id
