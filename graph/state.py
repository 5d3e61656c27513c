"""The graph's state: small, typed, one reducer per field.

``messages`` is a ``DeltaChannel`` (langgraph 1.2, beta): a step saves only the
messages it adds, plus a full snapshot every ``MESSAGES_SNAPSHOT_EVERY``
updates, instead of the whole list at every step, so what a step writes does
not grow with the conversation. Threads saved before, with the whole list in
each checkpoint, read the same: a plain stored list seeds the channel.
The prompt is bounded separately: ``summary`` holds what was folded out of it
(``nodes.summarize_history``); the messages themselves are all kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from langchain_core.messages import AnyMessage

# LangGraph's batch reducer for messages in a DeltaChannel (dedup by id,
# RemoveMessage); add_messages takes one update at a time, which DeltaChannel
# cannot replay in batches. LangGraph gives ids to messages written to a
# DeltaChannel with this reducer, which it relies on. The channel is
# LangGraph's with the reducing calls keeping each list's id index between
# steps (checkpointing.message_reducer): the stock reducer re-indexed the
# whole conversation on every step.
from langgraph.graph.message import _messages_delta_reducer

from checkpointing.message_reducer import MessagesDeltaChannel

# Updates between full snapshots of ``messages`` (LangGraph's default): a read
# replays at most this many writes; a snapshot step writes the whole list.
MESSAGES_SNAPSHOT_EVERY = 100


@dataclass
class State:
    """What a thread remembers between steps (saved in every checkpoint)."""

    messages: Annotated[
        list[AnyMessage],
        MessagesDeltaChannel(_messages_delta_reducer, snapshot_frequency=MESSAGES_SNAPSHOT_EVERY),
    ] = field(default_factory=list)
    """The conversation: user, assistant and tool messages, in order (all of them)."""

    recalled_memories: list[str] = field(default_factory=list)
    """Long-term memories recalled for the latest user message, as short lines for the prompt."""

    summary: str = ""
    """Running summary of the older messages folded out of the prompt (empty: none folded)."""

    summarized_through: str | None = None
    """Id of the newest message the summary covers; the prompt carries the messages after it."""
