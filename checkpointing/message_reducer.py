"""The messages channel's reducer, without re-indexing the whole conversation on every step.

LangGraph's batch reducer for a ``DeltaChannel`` of messages
(``_messages_delta_reducer``) builds a dict of every message id on each call
to find the ones a write replaces: ~0.45 ms at 2,000 messages, four times per
agent turn (replaying the writes since the snapshot, the user's message, the
reply, ...), so the one part of a turn's Python that grew with the thread.

Here each list this reducer returns (and each snapshot copy the saver hands a
channel) is remembered with its id index, so the next call copies the index
(a C-level dict copy) instead of rebuilding it. Results are the stock
reducer's: writes are converted as the stock reducer converts them, and a
``RemoveMessage`` (or a state not yet typed) goes to LangGraph's reducer.
A remembered index is used only for a list equal to the one it was built
for; LangGraph never mutates a channel's value in place (the reducer returns
a new list each time), and nodes must not either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from langchain_core.messages import AnyMessage, BaseMessage, RemoveMessage, convert_to_messages
from langgraph._internal._typing import MISSING
from langgraph.channels.binop import _get_overwrite
from langgraph.channels.delta import DeltaChannel
from langgraph.graph.message import _messages_delta_reducer

# Lists remembered with their index, newest used last: the hot threads of a
# process (each entry holds its list, so this also bounds what it keeps alive).
INDEXED_LISTS = 64

# Keyed by (length, id of the last message): LangGraph hands the reducer
# shallow copies of a channel's list (``DeltaChannel.copy``), which hold the
# same message objects, so a copy finds its original's index; the entry keeps
# its list (and so that last message) alive, so the id cannot be reused while
# it is here, and the lists are compared (identity first, in C) before use.
_indexes: OrderedDict[tuple[int, int], tuple[list[Any], dict[str, int]]] = OrderedDict()
_lock = threading.Lock()


def _key(messages: list[Any]) -> tuple[int, int]:
    return (len(messages), id(messages[-1]))


def _lookup(messages: list[Any]) -> dict[str, int] | None:
    if not messages:
        return {}
    with _lock:
        entry = _indexes.get(_key(messages))
        if entry is None:
            return None
        _indexes.move_to_end(_key(messages))
    known, index = entry
    return index if known is messages or known == messages else None


def _remember(messages: list[Any], index: dict[str, int]) -> None:
    if not messages:
        return
    with _lock:
        _indexes[_key(messages)] = (messages, index)
        _indexes.move_to_end(_key(messages))
        while len(_indexes) > INDEXED_LISTS:
            _indexes.popitem(last=False)


def _build_index(messages: list[Any]) -> dict[str, int]:
    return {m.id: i for i, m in enumerate(messages) if m.id is not None}


def copy_messages(messages: list[Any]) -> list[Any]:
    """A copy of a stored message list the channel may own, its id index remembered.

    The index is never mutated (the reducer copies it before adding to it),
    so the original and its copies share one.
    """
    if messages and isinstance(messages[0], BaseMessage) and _lookup(messages) is None:
        _remember(messages, _build_index(messages))
    return list(messages)


def messages_delta_reducer(
    state: list[AnyMessage], writes: list[list[AnyMessage]]
) -> list[AnyMessage]:
    """LangGraph's ``_messages_delta_reducer`` (same results), reusing the state's id index."""
    flat: list[Any] = []
    for write in writes:
        if isinstance(write, list):
            flat.extend(write)
        else:
            flat.append(write)
    if state and not isinstance(state[0], BaseMessage):
        return _messages_delta_reducer(state, writes)  # raw stored input: the stock path
    messages = (
        flat
        if all(isinstance(m, BaseMessage) for m in flat)
        else convert_to_messages(flat)  # tuples, dicts: as the stock reducer converts them
    )
    if any(isinstance(m, RemoveMessage) for m in messages):
        return _messages_delta_reducer(state, writes)
    known = _lookup(state)
    index = dict(known) if known is not None else _build_index(state)
    result: list[Any] = list(state)
    for message in messages:
        position = None if message.id is None else index.get(message.id)
        if position is not None:
            result[position] = message
            continue
        if message.id is not None:
            index[message.id] = len(result)
        result.append(message)
    _remember(result, index)
    return result


class MessagesDeltaChannel(DeltaChannel):
    """LangGraph's ``DeltaChannel`` for messages, reducing with ``messages_delta_reducer``.

    Construct it like the stock one, ``MessagesDeltaChannel(_messages_delta_reducer,
    snapshot_frequency=N)``; LangGraph rebuilds it with the same arguments.
    """

    __slots__ = ()

    def _fast(self) -> Any:
        return messages_delta_reducer if self.reducer is _messages_delta_reducer else None

    def update(self, values: Any) -> bool:
        fast = self._fast()
        if not values or fast is None or any(_get_overwrite(v)[0] for v in values):
            return bool(super().update(values))
        base = self.typ() if self.value is MISSING else self.value
        self.value = fast(base, list(values))
        return True

    def replay_writes(self, writes: Any) -> None:
        values = [value for _, _, value in writes]
        fast = self._fast()
        if not values or fast is None or any(_get_overwrite(v)[0] for v in values):
            super().replay_writes(writes)
            return
        self.value = fast(self.value, values)
