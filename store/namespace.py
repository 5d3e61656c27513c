"""The one place a user id becomes a store namespace: ("user_memories", <encoded user id>).

LangGraph's Postgres store keeps a namespace as its labels joined with "." in
``store.prefix`` and rejects labels that contain "." or NUL, so a user id cannot
be used as a label as it is. The Databricks template maps ids with
``.replace(".", "-")``, which puts "a.b@x.com" and "a-b@x.com" in one namespace.

The encoding here is injective:

* Literal form: percent-encoding of the UTF-8 bytes, where only ASCII letters,
  digits and ``@ + - _`` stay as they are and every other byte (".", "%", "~",
  spaces, control and escape characters, all non-ASCII) becomes ``%XX``.
  Percent-decoding inverts it, so two different ids never share a label. Case is
  kept: "Alice" and "alice" are different users, as the identity provider said.
* Hashed form, for ids whose literal form is longer than ``MAX_LITERAL_LENGTH``:
  ``~sha256~<64 hex digits>`` of the UTF-8 id. ``store.prefix`` is part of a
  btree primary key whose entries must stay under about 2.7 kB, so a 10,000
  character id cannot be stored literally. "~" never appears in a literal form
  (it is always percent-encoded), so no literal id can produce a hashed label,
  and two long ids share a label only on a SHA-256 collision.
"""

from __future__ import annotations

import hashlib
import string

NAMESPACE_ROOT = "user_memories"
SHARED_ROOT = "shared_memories"
MAX_LITERAL_LENGTH = 200
HASHED_TAG = "~sha256~"

_KEPT_BYTES = frozenset((string.ascii_letters + string.digits + "@+-_").encode("ascii"))


class InvalidUserId(ValueError):
    """The user id cannot name a memory namespace (it is empty or not a string)."""


def encode_user_id(user_id: str) -> str:
    """Return the namespace label for ``user_id`` (see the module docstring)."""
    if not isinstance(user_id, str):
        raise InvalidUserId(f"user id must be a string, got {type(user_id).__name__}")
    if not user_id:
        raise InvalidUserId("user id must be a non-empty string")
    literal = "".join(
        chr(byte) if byte in _KEPT_BYTES else f"%{byte:02X}" for byte in user_id.encode("utf-8")
    )
    if len(literal) <= MAX_LITERAL_LENGTH:
        return literal
    return HASHED_TAG + hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def decode_user_label(label: str) -> str | None:
    """The user id behind a literal label, or None for a hashed one (it cannot be undone)."""
    if label.startswith(HASHED_TAG):
        return None
    raw = bytearray()
    index = 0
    while index < len(label):
        if label[index] == "%":
            raw.append(int(label[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(label[index]))
            index += 1
    return raw.decode("utf-8")


def user_namespace(user_id: str) -> tuple[str, str]:
    """The namespace holding ``user_id``'s memories; raises ``InvalidUserId`` for an empty id."""
    return (NAMESPACE_ROOT, encode_user_id(user_id))


def shared_namespace(scope_id: str) -> tuple[str, str]:
    """The namespace of a shared scope (a team's or organisation's knowledge), same encoding.

    The scope id comes from deployment configuration (``MEMORY_SHARED_SCOPE``), never
    from the model; only the admin path (``memory-agent shared``) writes there.
    """
    return (SHARED_ROOT, encode_user_id(scope_id))


def is_shared(namespace: tuple[str, ...]) -> bool:
    """True for a shared scope's namespace."""
    return bool(namespace) and namespace[0] == SHARED_ROOT
