"""Thread ids: what a valid one is, how one is chosen for a request, what threads exist."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any

MAX_THREAD_ID_CHARACTERS = 256


class InvalidThreadId(ValueError):
    """A thread id that cannot name a thread; the message says what is wrong in one line."""


def validate_thread_id(thread_id: object) -> str:
    """Return ``thread_id`` as a string if it can name a thread, else raise ``InvalidThreadId``.

    An int is read as its decimal string, as LangGraph does. Any printable unicode is kept exactly as given (no normalisation: two
    different strings are two different threads). Rejected: non-strings, empty
    or blank ids, control characters (NUL cannot be stored in Postgres text),
    unpaired surrogates (not encodable as UTF-8), and ids over 256 characters
    (the id is part of btree primary keys, whose entries are size-limited).
    """
    if isinstance(thread_id, int) and not isinstance(thread_id, bool):
        thread_id = str(thread_id)  # LangGraph itself reads an int thread id as its decimal string
    if not isinstance(thread_id, str):
        raise InvalidThreadId(f"thread_id must be a string, got {type(thread_id).__name__}")
    if not thread_id.strip():
        raise InvalidThreadId("thread_id must not be empty")
    if len(thread_id) > MAX_THREAD_ID_CHARACTERS:
        raise InvalidThreadId(
            f"thread_id is {len(thread_id)} characters long; the limit is {MAX_THREAD_ID_CHARACTERS}"
        )
    for position, character in enumerate(thread_id):
        category = unicodedata.category(character)
        if category == "Cc":
            raise InvalidThreadId(
                f"thread_id contains a control character (U+{ord(character):04X}) "
                f"at position {position}"
            )
        if category == "Cs":
            raise InvalidThreadId(
                f"thread_id contains an unpaired surrogate (U+{ord(character):04X}) "
                f"at position {position}"
            )
    return thread_id


def thread_id_from_config(config: Mapping[str, Any] | None) -> str | None:
    """The validated thread id in ``config["configurable"]``, or None if there is none."""
    configurable = (config or {}).get("configurable") or {}
    if "thread_id" not in configurable or configurable["thread_id"] is None:
        return None
    return validate_thread_id(configurable["thread_id"])


def resolve_thread_id(
    custom_inputs: Mapping[str, Any] | None = None, conversation_id: str | None = None
) -> str:
    """Pick a request's thread: custom_inputs.thread_id, else conversation_id, else a new UUID."""
    candidate = (custom_inputs or {}).get("thread_id") or conversation_id
    if candidate is None or candidate == "":
        return str(uuid.uuid4())
    return validate_thread_id(candidate)
