"""Check a run's input before LangGraph writes any of it to the thread.

LangGraph persists a run's input before reducers and nodes see it, so a
message that fails later (an int as content, say) stays in the thread and
breaks every later read of it. Rejecting bad input up front keeps the thread
exactly as it was.

The input rules live here, once, for every entry point (the graph's run guard
covers the Python API and the CLI; the HTTP server calls the same checks on
the whole request before planning a turn):

- no NUL byte (Postgres text cannot hold one) and no unpaired UTF-16
  surrogate (it cannot be encoded as UTF-8, so it cannot be stored);
- at most ``MAX_MESSAGE_CHARS`` characters of text per message (a megabyte
  message overflows Postgres' full-text query limits in memory recall);
- at most ``MAX_INPUT_ITEMS`` messages (or request items) per run.

Too much input raises ``InputTooLarge`` (HTTP 413); anything else
``InvalidInput`` (HTTP 400, CLI exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    convert_to_messages,
)
from langgraph.types import Command

from checkpointing.threads import InvalidThreadId, thread_id_from_config

MAX_MESSAGE_CHARS = 100_000
"""Characters of text one message may carry (about 25k tokens)."""
MAX_INPUT_ITEMS = 1_000
"""Messages one run (or items one HTTP request) may carry; chat UIs resend the history."""


class InvalidInput(ValueError):
    """A run's input cannot be accepted; the message says why in one line."""


class InputTooLarge(InvalidInput):
    """The input is over a size cap (HTTP 413)."""


def check_text(value: Any, where: str) -> int:
    """Refuse NUL bytes and unpaired surrogates in every string inside ``value``.

    ``value`` is a string or any JSON-like nesting of mappings and lists;
    returns how many characters of text it holds (keys excluded).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(f"{where} contains a NUL byte (\\u0000), which cannot be stored")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(
                f"{where} contains an unpaired UTF-16 surrogate, which is not valid text"
            ) from None
        return len(value)
    if isinstance(value, Mapping):
        for key in value:
            check_text(key, where)  # keys are stored too, but are not the text we cap
        return sum(check_text(item, where) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(check_text(item, where) for item in value)
    return 0


def check_item_count(count: int, what: str = "messages") -> None:
    """Refuse more than ``MAX_INPUT_ITEMS`` messages or request items."""
    if count > MAX_INPUT_ITEMS:
        raise InputTooLarge(f"too many {what}: {count} (at most {MAX_INPUT_ITEMS})")


def check_message_text(content: Any, where: str) -> None:
    """Apply the text rules and the per-message size cap to one message's content."""
    chars = check_text(content, where)
    if chars > MAX_MESSAGE_CHARS:
        raise InputTooLarge(
            f"{where} is too long: {chars} characters (at most {MAX_MESSAGE_CHARS})"
        )


def validate_run(input: Any, config: Mapping[str, Any] | None, *, needs_thread: bool) -> None:
    """Raise ``InvalidInput`` / ``InvalidThreadId`` unless the run can start safely.

    ``needs_thread``: the graph saves runs, so a thread id is required.
    """
    if thread_id_from_config(config) is None and needs_thread:
        raise InvalidThreadId(
            'a thread_id is required: pass config={"configurable": {"thread_id": "..."}}'
        )
    if input is None:
        return  # continuing a thread: nothing new is written
    if isinstance(input, Command):
        if input.resume is not None:
            validate_resume(input.resume)
        if input.update is not None:
            validate_update(input.update)
        return
    if not isinstance(input, Mapping):
        raise InvalidInput(
            f"input must be a mapping like {{'messages': [...]}}, got {type(input).__name__}"
        )
    validate_update(input)


# A run may only add messages: every other state field is the graph's own, and a
# wrong value written there (say recalled_memories=5) breaks every later step.
INPUT_FIELDS = frozenset({"messages"})


def validate_update(update: Any) -> None:
    """Check the fields a run's input (or ``Command(update=...)``) writes to the thread."""
    pairs = isinstance(update, Sequence) and all(
        isinstance(i, tuple) and len(i) == 2 for i in update
    )
    if isinstance(update, Mapping) or pairs:
        fields = dict(update)
    else:
        raise InvalidInput(
            f"an update must be a mapping like {{'messages': [...]}}, got {type(update).__name__}"
        )
    unknown = sorted(str(name) for name in fields if name not in INPUT_FIELDS)
    if unknown:
        raise InvalidInput(
            f"input field(s) {', '.join(unknown)} cannot be set by a caller; a run takes only 'messages'"
        )
    if "messages" in fields:
        validate_messages(fields["messages"])


def validate_resume(resume: Any) -> None:
    """Check a resume value is an approval decision (or a mapping of interrupt id to one).

    Checked before the run: LangGraph saves the resume value first, and a bad
    one saved would be replayed into the paused node on every later attempt.
    """
    from nodes.review_tool_calls import InvalidDecision, parse_decision

    check_text(resume, "the resume value")
    decisions = resume
    if isinstance(resume, Mapping) and resume and "action" not in resume:
        decisions = list(resume.values())  # {interrupt_id: decision, ...}
    try:
        for decision in decisions if isinstance(decisions, list) else [decisions]:
            parse_decision(decision)
    except InvalidDecision as exc:
        raise InvalidInput(f"invalid resume value: {exc}") from None


def validate_messages(messages: Any) -> list[BaseMessage]:
    """Convert ``messages`` to LangChain messages, rejecting empty or non-text user content."""
    if isinstance(messages, str | BaseMessage | Mapping | tuple):
        messages = [messages]
    if not isinstance(messages, Sequence):
        raise InvalidInput(f"messages must be a list, got {type(messages).__name__}")
    if not messages:
        raise InvalidInput("messages must not be empty")
    check_item_count(len(messages))
    for position, message in enumerate(messages, start=1):
        content = _raw_content(message)
        if content is not None and not isinstance(content, str | list):
            raise InvalidInput(
                f"message {position}: content must be text or a list of content blocks, "
                f"got {type(content).__name__}"
            )
        check_message_text(content, f"message {position}")
    try:
        converted = convert_to_messages(messages)
    except (ValueError, TypeError, NotImplementedError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"messages could not be read: {first_line}") from exc
    for position, message in enumerate(converted, start=1):
        if isinstance(message, HumanMessage) and not _has_text(message.content):
            raise InvalidInput(f"message {position} is empty; send some text")
    _check_tool_pairs(converted)
    return converted


def _check_tool_pairs(messages: Sequence[BaseMessage]) -> None:
    """Tool calls and tool results in an input must answer each other.

    Model endpoints reject a conversation with a tool call left unanswered or a
    tool result that answers nothing, so such an input would break every later
    turn of the thread.
    """
    open_calls: dict[str, int] = {}
    for position, message in enumerate(messages, start=1):
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                open_calls[str(call.get("id"))] = position
        elif (
            isinstance(message, ToolMessage) and open_calls.pop(message.tool_call_id, None) is None
        ):
            raise InvalidInput(
                f"message {position} is a tool result for {message.tool_call_id!r}, "
                "which no earlier message in the input calls"
            )
    if open_calls:
        call_id, position = next(iter(open_calls.items()))
        raise InvalidInput(
            f"message {position} calls tool {call_id!r} but the input has no result for it"
        )


def _raw_content(message: Any) -> Any:
    if isinstance(message, str):
        return message
    if isinstance(message, BaseMessage):
        return message.content
    if isinstance(message, Mapping):
        return message.get("content")
    if isinstance(message, tuple) and len(message) == 2:
        return message[1]
    return None


def _has_text(content: str | list[Any]) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    for block in content:
        if isinstance(block, str) and block.strip():
            return True
        if isinstance(block, Mapping) and block.get("type") != "text":
            return True  # an image or file block is content even without text
        if isinstance(block, Mapping) and str(block.get("text", "")).strip():
            return True
    return False
