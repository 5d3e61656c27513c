"""How a tool says it is sensitive or has side effects: two keys in its ``metadata``.

- ``{"requires_approval": True}``: every call pauses the run for a human's
  approve / reject / edit before it executes (``nodes.review_tool_calls``).
- ``{"requires_approval_with": "key"}``: a call pauses only when it passes that
  argument (``save_memory`` with a key overwrites a memory; without one it adds).
- ``{"side_effects": "transactional" | "external"}``: the call is executed at
  most once per tool call id, whatever crashes and resumes happen
  (``checkpointing.tool_ledger``). ``transactional`` tools do their writes on
  ``current_tool_connection()``, inside the same Postgres transaction as the
  ledger record, so they happen exactly once; ``external`` tools (HTTP calls,
  e-mails) are recorded as started before they run, so a crash mid-call leaves
  them "outcome unknown" instead of running them twice.

The memory tools that overwrite or delete (``update_memory``, ``delete_memory``)
and anything that forgets a user are sensitive by name as well, so they pause even if a future version
forgets the metadata: approval must fail closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.tools import BaseTool

REQUIRES_APPROVAL = "requires_approval"
REQUIRES_APPROVAL_WITH = "requires_approval_with"
SIDE_EFFECTS = "side_effects"
SENSITIVE_TOOL_NAMES = frozenset(
    {"update_memory", "delete_memory", "forget_user", "forget_user_memories"}
)
# Sensitive by name when called with this argument, whatever the metadata says.
SENSITIVE_WITH_ARGUMENT = {"save_memory": "key"}

SideEffects = Literal["transactional", "external"]


def needs_approval(
    name: str, tools_by_name: Mapping[str, BaseTool], args: Mapping[str, Any] | None = None
) -> bool:
    """True if a call to the tool named ``name`` (with ``args``) must wait for a human's decision."""
    if name in SENSITIVE_TOOL_NAMES:
        return True
    tool = tools_by_name.get(name)
    metadata = (tool.metadata or {}) if tool is not None else {}
    if metadata.get(REQUIRES_APPROVAL):
        return True
    argument = metadata.get(REQUIRES_APPROVAL_WITH) or SENSITIVE_WITH_ARGUMENT.get(name)
    return bool(argument and args and args.get(argument))


def side_effects(tool: BaseTool | None) -> SideEffects | None:
    """The tool's side-effect kind, or None for a tool that only reads.

    A tool that needs approval and does not say otherwise counts as
    ``external``: what a human must approve is, by definition, consequential.
    """
    if tool is None:
        return None
    declared = (tool.metadata or {}).get(SIDE_EFFECTS)
    if declared in ("transactional", "external"):
        return declared
    if declared not in (None, False):
        raise ValueError(
            f"tool {tool.name!r}: metadata side_effects must be 'transactional' or 'external', "
            f"got {declared!r}"
        )
    if needs_approval(tool.name, {tool.name: tool}):
        return "external"
    return None
