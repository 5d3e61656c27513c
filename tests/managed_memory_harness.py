"""A stand-in of Databricks' managed memory REST API, on 127.0.0.1, for the real databricks-sdk.

It serves the endpoints ``store.managed`` calls, with the request and response
shapes of Databricks' Memory API reference and its agent templates' managed
memory tools:

- stores: ``POST /api/2.1/unity-catalog/memory-stores`` ``{name, catalog_name,
  schema_name, description}``; ``GET .../memory-stores/{full_name}``.
- entries: ``POST .../entries?scope=`` ``{path, contents, description}``
  (create only: an existing path is 409 ``ALREADY_EXISTS``), ``GET
  .../entries:get?scope=&path=``, ``GET .../entries?scope=&page_size=&page_token=``
  (``{entries: [{path, description, has_contents}], next_page_token}``, the
  ``entries`` key absent when empty), ``PATCH .../entries`` ``{scope, path,
  description?, replace_all: {contents} | str_replace: {old_str, new_str}}``,
  ``DELETE .../entries?scope=&path=``, ``POST .../entries:search?scope=``
  ``{query, top_k}`` -> ``{results: [{memory_entry: {...}, score}]}``.
- errors as Databricks sends them, ``{"error_code", "message"}``: 401 without
  the token, 403 ``PERMISSION_DENIED`` naming the privilege the caller lacks,
  404 ``NOT_FOUND`` for a missing store or entry, 400
  ``INVALID_PARAMETER_VALUE`` for a bad name, path or body, and 429
  ``REQUEST_LIMIT_EXCEEDED`` with ``Retry-After`` while ``throttle`` is above
  zero, 409 ``ABORTED`` (a concurrent write) while ``abort_writes`` is, and 409
  ``ALREADY_EXISTS`` for a create on a taken path.

Search is a stand-in for the service's semantic retrieval with keyword
boosting: words shared with the query (contents and description), ties broken by
recency; it returns up to ``top_k`` entries of the scope, matching or not, as a
semantic search does. Timestamps are epoch milliseconds (``created_at``,
``updated_at``), as Unity Catalog securables carry them.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.loopback_http import LoopbackServer, LoopbackService

STORES = "/api/2.1/unity-catalog/memory-stores"
ALL_PRIVILEGES = frozenset({"CREATE MEMORY STORE", "READ MEMORY STORE", "WRITE MEMORY STORE"})
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class MemoryServiceState:
    """What the stand-in holds and counts; mutated under ``lock``."""

    user_name: str = "agent@example.com"
    privileges: set[str] = field(default_factory=lambda: set(ALL_PRIVILEGES))
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)
    entries: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    """(store full name, scope, path) -> entry."""
    throttle: int = 0
    """Answer this many more requests with 429 + Retry-After: 1."""
    throttled: int = 0
    abort_writes: int = 0
    """Answer this many more entry writes with 409 ABORTED (a concurrent-write conflict)."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    clock_ms: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now_ms(self) -> int:
        # Strictly increasing, so "most recently updated" never ties.
        self.clock_ms = max(self.clock_ms + 1, int(time.time() * 1000))
        return self.clock_ms


class _Failure(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            raise _Failure(400, "MALFORMED_REQUEST", "request body is not JSON") from None
        if not isinstance(body, dict):
            raise _Failure(400, "MALFORMED_REQUEST", "request body must be a JSON object")
        return body

    def _handle(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {name: values[-1] for name, values in parse_qs(url.query).items()}
        with state.lock:
            state.requests.append((method, path))
        if path == "/.well-known/databricks-config":  # the SDK's start-up probe
            host = self.headers["Host"]
            self._reply(200, {"oidc_endpoint": f"http://{host}/oidc", "workspace_id": "1"})
            return
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "invalid access token"})
            return
        with state.lock:
            if state.throttle > 0:
                state.throttle -= 1
                state.throttled += 1
                self._reply(
                    429,
                    {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "too many requests"},
                    {"Retry-After": "1"},
                )
                return
        with state.lock:
            if state.abort_writes > 0 and method != "GET" and "/entries" in path:
                state.abort_writes -= 1
                self._reply(409, {"error_code": "ABORTED", "message": "concurrent write, retry"})
                return
        try:
            with state.lock:
                status, body = self._route(method, path, query)
        except _Failure as failure:
            self._reply(failure.status, {"error_code": failure.code, "message": failure.message})
            return
        self._reply(status, body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- routing ---------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == STORES and method == "POST":
            return self._create_store(self._body())
        if not path.startswith(STORES + "/"):
            raise _Failure(404, "ENDPOINT_NOT_FOUND", f"no API at {path}")
        rest = path.removeprefix(STORES + "/")
        full_name, _, tail = rest.partition("/")
        if not tail:
            if method == "GET":
                self._require("READ MEMORY STORE", full_name)
                return 200, self._store(full_name)
            raise _Failure(405, "METHOD_NOT_ALLOWED", f"{method} {path}")
        self._store(full_name)
        if tail == "entries" and method == "POST":
            return self._create_entry(full_name, query, self._body())
        if tail == "entries" and method == "GET":
            return self._list(full_name, query)
        if tail == "entries" and method == "PATCH":
            return self._update(full_name, self._body())
        if tail == "entries" and method == "DELETE":
            return self._delete(full_name, query)
        if tail == "entries:get" and method == "GET":
            return 200, self._entry(full_name, query.get("scope"), query.get("path"))
        if tail == "entries:search" and method == "POST":
            return self._search(full_name, query, self._body())
        raise _Failure(404, "ENDPOINT_NOT_FOUND", f"no API at {method} {path}")

    def _require(self, privilege: str, on: str) -> None:
        if privilege not in self.server.state.privileges:
            kind = "Schema" if privilege == "CREATE MEMORY STORE" else "Memory Store"
            raise _Failure(
                403,
                "PERMISSION_DENIED",
                f"User does not have {privilege} on {kind} '{on}'.",
            )

    def _store(self, full_name: str) -> dict[str, Any]:
        parts = full_name.split(".")
        if len(parts) != 3 or not all(_NAME.match(part) for part in parts):
            raise _Failure(
                400, "INVALID_PARAMETER_VALUE", f"'{full_name}' is not a valid three-level name"
            )
        store = self.server.state.stores.get(full_name)
        if store is None:
            raise _Failure(404, "NOT_FOUND", f"Memory store '{full_name}' does not exist.")
        return store

    def _create_store(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        names = [body.get(field) for field in ("catalog_name", "schema_name", "name")]
        if not all(isinstance(n, str) and _NAME.match(n) for n in names):
            raise _Failure(
                400,
                "INVALID_PARAMETER_VALUE",
                "name, catalog_name and schema_name are required identifiers",
            )
        self._require("CREATE MEMORY STORE", f"{names[0]}.{names[1]}")
        full_name = ".".join(str(n) for n in names)
        state = self.server.state
        if full_name in state.stores:
            raise _Failure(409, "ALREADY_EXISTS", f"Memory store '{full_name}' already exists.")
        now = state.now_ms()
        store = {
            "name": names[2],
            "catalog_name": names[0],
            "schema_name": names[1],
            "full_name": full_name,
            "description": body.get("description", ""),
            "owner": state.user_name,
            "memory_store_id": secrets.token_hex(8),
            "created_at": now,
            "updated_at": now,
        }
        state.stores[full_name] = store
        return 200, store

    # -- entries ------------------------------------------------------------------

    @staticmethod
    def _check(scope: Any, path: Any) -> tuple[str, str]:
        if not isinstance(scope, str) or not scope:
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "scope is required")
        # The documented limits: /memories/..., at most 1024 characters, no whitespace or
        # control characters, no empty segment, no trailing "/".
        if (
            not isinstance(path, str)
            or not path.startswith("/memories/")
            or len(path) > 1024
            or "//" in path
            or path.endswith("/")
            or any(c.isspace() or ord(c) < 32 for c in path)
        ):
            raise _Failure(
                400,
                "INVALID_PARAMETER_VALUE",
                f"path {path!r} must start with /memories/, have no whitespace, control "
                "characters or empty segments, and be at most 1024 characters",
            )
        return scope, path

    def _entry(self, full_name: str, scope: Any, path: Any) -> dict[str, Any]:
        self._require("READ MEMORY STORE", full_name)
        scope, path = self._check(scope, path)
        entry = self.server.state.entries.get((full_name, scope, path))
        if entry is None:
            raise _Failure(404, "NOT_FOUND", f"No memory entry at {path} in this scope.")
        return entry

    def _create_entry(
        self, full_name: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        self._require("WRITE MEMORY STORE", full_name)
        scope, path = self._check(query.get("scope"), body.get("path"))
        contents = body.get("contents", "")
        description = body.get("description", "")
        if not isinstance(contents, str) or not isinstance(description, str):
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "contents and description are text")
        if not contents and not description:
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "contents or description is required")
        state = self.server.state
        if (full_name, scope, path) in state.entries:
            raise _Failure(409, "ALREADY_EXISTS", f"A memory entry already exists at {path}.")
        now = state.now_ms()
        entry = {
            "path": path,
            "contents": contents,
            "description": description,
            "has_contents": bool(contents),
            "created_at": now,
            "updated_at": now,
        }
        state.entries[(full_name, scope, path)] = entry
        return 200, entry

    def _list(self, full_name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self._require("READ MEMORY STORE", full_name)
        scope = query.get("scope")
        if not scope:
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "scope is required")
        size = int(query.get("page_size") or 100)
        start = int(query.get("page_token") or 0)
        paths = sorted(
            path
            for (store, s, path) in self.server.state.entries
            if store == full_name and s == scope
        )
        page = paths[start : start + size]
        body: dict[str, Any] = {}
        if page:
            body["entries"] = [
                {
                    key: self.server.state.entries[(full_name, scope, path)][key]
                    for key in ("path", "description", "has_contents", "created_at", "updated_at")
                }
                for path in page
            ]
        if start + size < len(paths):
            body["next_page_token"] = str(start + size)
        return 200, body

    def _update(self, full_name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._require("WRITE MEMORY STORE", full_name)
        entry = self._entry(full_name, body.get("scope"), body.get("path"))
        edits = [name for name in ("str_replace", "insert", "replace_all") if name in body]
        if len(edits) > 1 or (not edits and "description" not in body):
            raise _Failure(
                400,
                "INVALID_PARAMETER_VALUE",
                "give a description and/or exactly one of str_replace, insert, replace_all",
            )
        contents = entry["contents"]
        if "replace_all" in body:
            contents = str((body["replace_all"] or {}).get("contents", ""))
        elif "str_replace" in body:
            old = str(body["str_replace"].get("old_str", ""))
            if not old or contents.count(old) != 1:
                raise _Failure(400, "INVALID_PARAMETER_VALUE", "old_str must occur exactly once")
            contents = contents.replace(old, str(body["str_replace"].get("new_str", "")))
        elif "insert" in body:
            lines = contents.split("\n")
            at = body["insert"].get("insert_line", len(lines))
            lines.insert(int(at), str(body["insert"].get("insert_text", "")))
            contents = "\n".join(lines)
        entry.update(
            contents=contents,
            has_contents=bool(contents),
            description=body.get("description", entry["description"]),
            updated_at=self.server.state.now_ms(),
        )
        return 200, entry

    def _delete(self, full_name: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self._require("WRITE MEMORY STORE", full_name)
        scope, path = self._check(query.get("scope"), query.get("path"))
        if self.server.state.entries.pop((full_name, scope, path), None) is None:
            raise _Failure(404, "NOT_FOUND", f"No memory entry at {path} in this scope.")
        return 200, {}

    def _search(
        self, full_name: str, query: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        self._require("READ MEMORY STORE", full_name)
        scope = query.get("scope")
        text = body.get("query")
        if not scope or not isinstance(text, str) or not text.strip():
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "scope and query are required")
        top_k = int(body.get("top_k") or 10)
        if not 1 <= top_k <= 50:
            raise _Failure(400, "INVALID_PARAMETER_VALUE", "top_k must be between 1 and 50")
        wanted = set(_words(text))
        ranked = []
        for (store, s, _), entry in self.server.state.entries.items():
            if store != full_name or s != scope:
                continue
            words = _words(f"{entry['description']} {entry['contents']}")
            shared = sum(1 for word in words if word in wanted)
            score = shared / (len(words) ** 0.5) if words else 0.0
            ranked.append((score, entry["updated_at"], entry))
        ranked.sort(key=lambda row: (row[0], row[1]), reverse=True)
        results = [
            {"memory_entry": dict(entry), "score": round(score, 6)}
            for score, _, entry in ranked[:top_k]
        ]
        return 200, {"results": results}


class MemoryService(LoopbackService):
    """The stand-in, served on 127.0.0.1:<free port> from a thread; ``stop()`` ends it."""

    state: MemoryServiceState

    def __init__(self) -> None:
        super().__init__(_Handler, MemoryServiceState(), "memory-service-stand-in")

    def add_store(self, full_name: str) -> None:
        """Create a store as its owner would (not through the API)."""
        catalog, schema, name = full_name.split(".")
        with self.state.lock:
            now = self.state.now_ms()
            self.state.stores[full_name] = {
                "name": name,
                "catalog_name": catalog,
                "schema_name": schema,
                "full_name": full_name,
                "description": "",
                "owner": self.state.user_name,
                "memory_store_id": secrets.token_hex(8),
                "created_at": now,
                "updated_at": now,
            }

    def entries(self, full_name: str, scope: str) -> dict[str, dict[str, Any]]:
        """path -> entry of one scope (a copy)."""
        with self.state.lock:
            return {
                path: dict(entry)
                for (store, s, path), entry in self.state.entries.items()
                if store == full_name and s == scope
            }

    def environment(self) -> dict[str, str]:
        """The variables that point the SDK's default client here."""
        return {"DATABRICKS_HOST": self.url, "DATABRICKS_TOKEN": self.token}


@contextmanager
def memory_service() -> Iterator[MemoryService]:
    service = MemoryService()
    service.start()
    try:
        yield service
    finally:
        service.stop()
