"""The graph's state: small, typed, one reducer per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


@dataclass
class State:
    """What a thread remembers between steps (saved in every checkpoint)."""

    messages: Annotated[list[AnyMessage], add_messages] = field(default_factory=list)
    """The conversation: user, assistant and tool messages, in order."""

    recalled_memories: list[str] = field(default_factory=list)
    """Long-term memories recalled for the latest user message, as short lines for the prompt."""
