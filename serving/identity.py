"""Who the user of an HTTP request is: the app's on-behalf-of identity, never the model.

Databricks Apps puts every request through a reverse proxy that authenticates
the caller and sets ``X-Forwarded-Email``, ``X-Forwarded-Preferred-Username``
and ``X-Forwarded-User``. Those headers are the only identity a deployed app
can trust: anything in the request body was written by the client, so a
client-supplied user id (``custom_inputs.user_id`` or ``context.user_id``) is
honoured only in local development or when the deployment says its callers
are trusted (``MEMORY_AGENT_TRUST_CLIENT_USER_ID=1``, e.g. Databricks' chat
UI calling the agent over loopback with the signed-in user in
``context.user_id``). Even then, a forwarded identity wins.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

# Email first: it is what Databricks' chat UI sends as context.user_id, so memories
# saved through the UI and through direct API calls land in one namespace.
FORWARDED_IDENTITY_HEADERS = (
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-user",
)
MAX_USER_ID_CHARACTERS = 256


class InvalidUserId(ValueError):
    """A user id that cannot name a user; the message says what is wrong in one line."""


def validate_user_id(user_id: object, source: str) -> str:
    """Return ``user_id`` if it can name a user, else raise ``InvalidUserId`` naming ``source``."""
    if not isinstance(user_id, str):
        raise InvalidUserId(f"{source} must be a string, got {type(user_id).__name__}")
    if not user_id.strip():
        raise InvalidUserId(f"{source} must not be empty")
    if len(user_id) > MAX_USER_ID_CHARACTERS:
        raise InvalidUserId(
            f"{source} is {len(user_id)} characters long; the limit is {MAX_USER_ID_CHARACTERS}"
        )
    if any(unicodedata.category(character) in {"Cc", "Cs"} for character in user_id):
        raise InvalidUserId(f"{source} contains a control character or an unpaired surrogate")
    return user_id


def forwarded_user_id(headers: Mapping[str, str]) -> str | None:
    """The identity the Databricks Apps proxy forwarded, or None."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in FORWARDED_IDENTITY_HEADERS:
        value = lowered.get(name, "").strip()
        if value:
            return validate_user_id(value, f"header {name}")
    return None


def client_user_id(custom_inputs: Mapping[str, Any] | None, context_user_id: Any) -> str | None:
    """The user id the client put in the body: custom_inputs.user_id, else context.user_id."""
    candidate = (custom_inputs or {}).get("user_id")
    if candidate is not None and candidate != "":
        return validate_user_id(candidate, "custom_inputs.user_id")
    if context_user_id is not None and context_user_id != "":
        return validate_user_id(context_user_id, "context.user_id")
    return None


def resolve_user_id(
    headers: Mapping[str, str],
    custom_inputs: Mapping[str, Any] | None,
    context_user_id: Any,
    *,
    deployed: bool,
    trust_client_user_id: bool,
) -> str | None:
    """The request's user, or None (then the run has no long-term memory).

    Deployed: the forwarded identity; a client-supplied id only if trusted.
    Local: the client-supplied id, else the forwarded headers (to rehearse a deployment).
    """
    if deployed:
        forwarded = forwarded_user_id(headers)
        if forwarded is not None or not trust_client_user_id:
            return forwarded
        return client_user_id(custom_inputs, context_user_id)
    return client_user_id(custom_inputs, context_user_id) or forwarded_user_id(headers)
