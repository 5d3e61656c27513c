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

Databricks' chat UI calls the agent over loopback without those headers but
with ``X-Forwarded-Access-Token``, the signed-in user's on-behalf-of token.
Deployed, that token is verified by asking the workspace who it belongs to
(``WorkspaceClient(token=...).current_user.me()``, as Databricks' own
managed-memory code does); the answer is cached per token until the token
expires (or ``TOKEN_CACHE_SECONDS``), and a token the workspace refuses is a
401. No identity at all, deployed, is a 401 too (``IdentityRequired``).

One person, one id: the canonical user id is the workspace user name (the
email). The numeric user id and the emails ``current_user.me()`` reports are
remembered as aliases of it, so a client that sends the numeric id (as
app-templates#214 proposes for ``context.user_id``) reaches the same memories.

A header sent twice (two ``X-Forwarded-Email`` values, say) is refused: which
copy a proxy and an app each read is exactly where spoofing lives.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

# Email first: it is what Databricks' chat UI sends as context.user_id, so memories
# saved through the UI and through direct API calls land in one namespace.
FORWARDED_IDENTITY_HEADERS = (
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-user",
)
ACCESS_TOKEN_HEADER = "x-forwarded-access-token"
# Every header that says who the caller is: each may appear at most once.
IDENTITY_HEADERS = (*FORWARDED_IDENTITY_HEADERS, ACCESS_TOKEN_HEADER)
MAX_USER_ID_CHARACTERS = 256
# How long a token's user is trusted without asking again, when the token does not say
# when it expires (an opaque token); a JWT's own ``exp`` is used when it is earlier.
TOKEN_CACHE_SECONDS = 300
MAX_CACHED_TOKENS = 10_000
# Unicode categories refused in a user id: control characters, unpaired surrogates and
# format characters (zero-width spaces and joiners make look-alike ids).
REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Cf"})


class InvalidUserId(ValueError):
    """A user id that cannot name a user; the message says what is wrong in one line."""


class UnverifiedIdentity(ValueError):
    """An on-behalf-of token the workspace refused (expired, revoked, forged); one line."""


class IdentityUnavailable(RuntimeError):
    """The workspace could not be asked who a token belongs to; one line."""


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
    if any(unicodedata.category(character) in REFUSED_CATEGORIES for character in user_id):
        raise InvalidUserId(
            f"{source} contains a control character, an invisible format character "
            "or an unpaired surrogate"
        )
    return user_id


def refuse_duplicated_headers(header_pairs: list[tuple[str, str]]) -> None:
    """Raise ``InvalidUserId`` if an identity header appears more than once."""
    seen: set[str] = set()
    for name, _ in header_pairs:
        lowered = name.lower()
        if lowered in IDENTITY_HEADERS:
            if lowered in seen:
                raise InvalidUserId(f"header {lowered} is sent more than once")
            seen.add(lowered)


def _token_expiry(token: str) -> float | None:
    """The ``exp`` of a JWT, read without verifying it (only to bound the cache)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    expiry = payload.get("exp") if isinstance(payload, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


def workspace_user(token: str, host: str | None) -> dict[str, Any]:
    """``current_user.me()`` of ``token``: {"user_name", "id", "emails"}; raises on refusal."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config
    from databricks.sdk.errors import DatabricksError, PermissionDenied, Unauthenticated

    try:
        # auth_type="pat": only this token, never the app's own credentials from the env.
        config = Config(host=host, token=token, auth_type="pat", retry_timeout_seconds=15)
        me = WorkspaceClient(config=config).current_user.me()
    except (Unauthenticated, PermissionDenied):
        raise UnverifiedIdentity(
            "the forwarded access token was refused by the workspace"
        ) from None
    except (DatabricksError, OSError, ValueError) as exc:
        raise IdentityUnavailable(
            f"could not verify the forwarded access token ({type(exc).__name__})"
        ) from None
    emails = [str(e.value) for e in (me.emails or []) if getattr(e, "value", None)]
    if not me.user_name:
        raise UnverifiedIdentity("the workspace reports no user name for this token")
    return {"user_name": me.user_name, "id": me.id, "emails": emails}


class Identities:
    """Token → user (cached until expiry) and alias → canonical user id, for one process.

    ``lookup(token)`` asks the workspace; tests and other hosts can pass their own.
    """

    def __init__(
        self,
        host: str | None = None,
        lookup: Callable[[str, str | None], dict[str, Any]] = workspace_user,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.lookup = lookup
        self.clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._aliases: dict[str, str] = {}
        self._lock = threading.Lock()

    def canonical(self, user_id: str) -> str:
        """The canonical id of ``user_id`` (itself unless it is a known alias)."""
        with self._lock:
            return self._aliases.get(user_id, user_id)

    def learn(self, canonical: str, *aliases: Any) -> None:
        with self._lock:
            for alias in aliases:
                if alias and str(alias) != canonical:
                    self._aliases[str(alias)] = canonical

    def user_for_token(self, token: str) -> str:
        """The canonical user id the token belongs to (``UnverifiedIdentity`` if refused)."""
        key = hashlib.sha256(token.encode()).hexdigest()  # tokens are not kept in memory
        now = self.clock()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        expiry = _token_expiry(token)
        if expiry is not None and expiry <= now:
            raise UnverifiedIdentity("the forwarded access token has expired")
        me = self.lookup(token, self.host)
        user_id = validate_user_id(me["user_name"], "the token's user name")
        self.learn(user_id, me.get("id"), *me.get("emails", ()))
        until = min(expiry or now + TOKEN_CACHE_SECONDS, now + TOKEN_CACHE_SECONDS)
        with self._lock:
            if len(self._tokens) >= MAX_CACHED_TOKENS:
                self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
                if len(self._tokens) >= MAX_CACHED_TOKENS:
                    self._tokens.clear()
            self._tokens[key] = (user_id, until)
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
    identities: Identities | None = None,
) -> str | None:
    """The request's canonical user, or None (then the run has no long-term memory).

    Deployed: the forwarded identity headers, else the forwarded access token's
    user (``identities``), else a client-supplied id if trusted; None then
    means "no identity" and the caller answers 401.
    Local: the client-supplied id, else the forwarded headers (to rehearse a deployment).
    """
    if deployed:
        user_id = forwarded_user_id(headers)
        if user_id is not None and identities is not None:
            # The proxy's X-Forwarded-User (the numeric id, "<id>@<workspace>") names the
            # same person as the email: remember it as an alias of the canonical id.
            forwarded_user = _header(headers, "x-forwarded-user")
            identities.learn(user_id, forwarded_user, forwarded_user.split("@", 1)[0])
        if user_id is None and identities is not None:
            token = _header(headers, ACCESS_TOKEN_HEADER)
            if token:
                return identities.user_for_token(token)
        if user_id is None and trust_client_user_id:
            user_id = client_user_id(custom_inputs, context_user_id)
    else:
        user_id = client_user_id(custom_inputs, context_user_id) or forwarded_user_id(headers)
    if user_id is not None and identities is not None:
        return identities.canonical(user_id)
    return user_id


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v.strip() for k, v in headers.items() if k.lower() == name), "")
