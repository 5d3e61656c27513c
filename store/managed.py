"""Long-term memory in a Databricks managed memory store (Unity Catalog, Beta), as a LangGraph store.

A managed memory store holds *entries*, each named by a ``scope`` (whose memories
they are) and a ``path`` (``/memories/...``), with ``contents`` and a one-line
``description`` the service uses for retrieval. ``ManagedMemoryStore`` is a
``BaseStore`` over that REST API, so everything above the store (the tools, the
recall node, approvals, the CLI's ``memories`` commands) works unchanged:

* namespace ``("user_memories", <label>)`` -> scope = the user id (the label
  decoded; a hashed label, for ids over 200 characters, is used as it is), path
  ``/memories/<key>``. The user id comes from trusted code, exactly as for the
  Postgres store: the model never names a scope.
* namespace ``("shared_memories", <label>)`` -> scope = the configured shared
  scope id (``MEMORY_SHARED_SCOPE``), path ``/memories/shared/<key>``. A user
  whose id happened to equal the team's id still sees only ``/memories/<key>``
  entries as their own: the paths keep the two apart.
* anything else (the record of a user's threads, ``("user_threads", ...)``)
  stays in the Postgres store the checkpoints live in (``local``): it is
  bookkeeping of this agent, not memory.

The REST shapes are those of Databricks' Memory API reference and of the
managed-memory tools in Databricks' agent templates (entries under
``/api/2.1/unity-catalog/memory-stores/{full_name}/entries``; create is
``POST ?scope=`` with ``{path, contents, description}``, read
``GET :get?scope=&path=``, list ``GET ?scope=`` (paths and descriptions only),
change ``PATCH`` with ``{scope, path, description, replace_all: {contents}}``,
delete ``DELETE ?scope=&path=``, search ``POST :search?scope=`` with
``{query, top_k}``). The SDK 0.156 also ships a typed ``agent_kit`` client for
``/api/2.0/agents/memory-stores`` with another entry shape (actor_id,
content); we use the documented Unity Catalog endpoints, which Databricks' own
templates and documentation use, through the SDK's authenticated
``api_client.do`` (no hand-written auth). That client already retries 429 and
503 honouring ``Retry-After`` (databricks.sdk.retries, within the client's
retry timeout), so nothing here retries again.

What the service does not do, and how this store says so rather than pretends:

* Search is the service's (semantic with keyword boosting): no ``mode``
  (vector/lexical/hybrid), and the returned scores are not cosine similarities,
  so items carry ``score=None`` and a near-duplicate is never merged by
  similarity (a restated fact about the same subject still updates its memory).
* No revision history: a change replaces the entry; ``history`` is refused.
* Listing returns paths and descriptions only: a list costs one request per
  memory shown (plus one per page), a filter one per memory of the scope.
* A memory's value is kept exactly: ``contents`` holds its text and, when the
  value holds more than ``{"content": ...}`` (a subject, where it was saved
  from), a trailing HTML comment with the whole value as JSON, invisible in
  rendered markdown. Entries written by other agents (no comment) read as
  ``{"content": contents or description}``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from store.config import InvalidStoreName, StoreName, parse_store_name
from store.namespace import NAMESPACE_ROOT, SHARED_ROOT, decode_user_label

MEMORY_STORES_API = "/api/2.1/unity-catalog/memory-stores"
PERSONAL_PATH = "/memories/"
SHARED_PATH = "/memories/shared/"
VALUE_MARK = "<!-- memory-agent value: "
VALUE_END = " -->"
DESCRIPTION_CHARACTERS = 200
SEARCH_TOP_K_MAX = 50  # the documented maximum of entries:search's top_k
LIST_PAGE_SIZE = 200
ABORTED_ATTEMPTS = 3
PARALLEL_READS = 8
"""Entries read at once when listing (the SDK client's connection pool holds 20)."""
ABORTED_BACKOFF_SECONDS = 0.2
MEMORY_ROOTS = (NAMESPACE_ROOT, SHARED_ROOT)
# A key becomes the rest of a path: these characters stay as they are, the others
# are percent-encoded (so "a b" and "a%20b" are different keys and paths).
_KEY_SAFE = "@-_.~:+"

READ = "READ MEMORY STORE"
WRITE = "WRITE MEMORY STORE"
CREATE = "CREATE MEMORY STORE"
MANAGE = "MANAGE"


class ManagedMemoryError(RuntimeError):
    """A managed memory store refused or failed a call; the message is one line saying what to do."""


class StoreNotFound(ManagedMemoryError):
    """The memory store does not exist (or the caller may not know it does)."""


def grant_statements(store: StoreName, principal: str) -> list[str]:
    """What an owner runs so ``principal`` (the app's service principal) can use the store.

    USE CATALOG / USE SCHEMA are ordinary Unity Catalog SQL. The store's own privileges
    (READ_MEMORY_STORE, WRITE_MEMORY_STORE) are granted through Unity Catalog's
    permissions API on the MEMORY_STORE securable, as Databricks' managed-memory skill
    does (bundles and SQL grants do not cover the Beta securable yet).
    """
    changes = json.dumps(
        {"changes": [{"principal": principal, "add": ["READ_MEMORY_STORE", "WRITE_MEMORY_STORE"]}]}
    )
    return [
        f"GRANT USE CATALOG ON CATALOG {store.catalog} TO `{principal}`;",
        f"GRANT USE SCHEMA ON SCHEMA {store.catalog}.{store.schema} TO `{principal}`;",
        f"databricks api patch /api/2.1/unity-catalog/permissions/memory_store/{store.full_name}"
        f" --json '{changes}'",
    ]


# -- mapping between our namespaces/values and scopes/paths/entries ---------------------


def scope_and_path(namespace: tuple[str, ...], key: str | None = None) -> tuple[str, str]:
    """(scope, path prefix or full path) of ``namespace`` (and ``key``)."""
    if len(namespace) != 2 or namespace[0] not in MEMORY_ROOTS:
        raise ValueError(f"namespace {namespace!r} is not a memory namespace of a managed store")
    label = namespace[1]
    scope = decode_user_label(label) or label
    prefix = PERSONAL_PATH if namespace[0] == NAMESPACE_ROOT else SHARED_PATH
    if key is None:
        return scope, prefix
    if not key:
        raise ValueError("a memory key must not be empty")
    return scope, prefix + quote(key, safe=_KEY_SAFE)


def key_of(path: str, namespace: tuple[str, ...]) -> str | None:
    """The key an entry's path stands for in ``namespace``; None when it belongs elsewhere."""
    if namespace[0] == SHARED_ROOT:
        rest = path.removeprefix(SHARED_PATH) if path.startswith(SHARED_PATH) else None
    elif path.startswith(PERSONAL_PATH) and not path.startswith(SHARED_PATH):
        rest = path.removeprefix(PERSONAL_PATH)
    else:
        rest = None
    return unquote(rest) if rest else None


def text_of(value: dict[str, Any]) -> str:
    """The words of a value: its ``content``, or the value as JSON when it has none."""
    if isinstance(value.get("content"), str):
        return str(value["content"])
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def describe(text: str) -> str:
    """A one-line description: the text's first line, cut to DESCRIPTION_CHARACTERS."""
    line = " ".join(text.split())
    if len(line) <= DESCRIPTION_CHARACTERS:
        return line or "(memory)"
    return line[: DESCRIPTION_CHARACTERS - 1] + "…"


def encode_value(value: dict[str, Any]) -> tuple[str, str]:
    """(contents, description) holding ``value`` exactly (see the module docstring)."""
    text = text_of(value)
    contents = text
    if value != {"content": text}:
        encoded = json.dumps(value, ensure_ascii=False, sort_keys=True).replace("--", "\\u002d-")
        contents = f"{text}\n\n{VALUE_MARK}{encoded}{VALUE_END}"
    return contents, describe(text)


def decode_value(entry: dict[str, Any]) -> dict[str, Any]:
    """The value an entry holds: ours from its trailing comment, anyone else's as its text."""
    contents = str(entry.get("contents") or "")
    mark = contents.rfind(VALUE_MARK)
    if mark >= 0 and contents.endswith(VALUE_END):
        try:
            value = json.loads(contents[mark + len(VALUE_MARK) : -len(VALUE_END)])
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"content": contents or str(entry.get("description") or "")}


def _timestamp(entry: dict[str, Any], *names: str) -> datetime:
    # Unity Catalog securables carry epoch milliseconds; accept ISO text too.
    for name in names:
        raw = entry.get(name)
        if isinstance(raw, int | float):
            return datetime.fromtimestamp(raw / 1000, tz=UTC)
        if isinstance(raw, str) and raw:
            try:
                return datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                continue
    return datetime.now(UTC)


def _created(entry: dict[str, Any]) -> datetime:
    return _timestamp(entry, "created_at", "create_time")


def _updated(entry: dict[str, Any]) -> datetime:
    return _timestamp(entry, "updated_at", "update_time", "created_at", "create_time")


# -- the REST client ---------------------------------------------------------------------


class MemoryStoreClient:
    """The memory-store REST endpoints, through databricks-sdk's authenticated API client.

    Every error becomes a one-line ``ManagedMemoryError`` naming the privilege a
    403 lacks, the store a 404 misses, or what a 400 refused.
    """

    def __init__(self, store: StoreName, workspace_client: Any) -> None:
        self.store = store
        self.workspace_client = workspace_client
        self._entries = f"{MEMORY_STORES_API}/{store.full_name}/entries"

    def _do(
        self,
        privilege: str,
        method: str,
        path: str,
        *,
        missing_ok: bool = False,
        exists_ok: bool = False,
        **kwargs: Any,
    ) -> Any:
        from databricks.sdk.errors import (
            Aborted,
            AlreadyExists,
            DatabricksError,
            NotFound,
            PermissionDenied,
            ResourceAlreadyExists,
        )

        for attempt in range(ABORTED_ATTEMPTS):
            try:
                return self.workspace_client.api_client.do(method, path, **kwargs) or {}
            except Aborted as exc:
                # A concurrent write to the same entry: Databricks' managed-memory skill
                # calls ABORTED safe to retry, and the SDK's client does not (it retries
                # 429/503 only), so a few quick retries here.
                if attempt + 1 == ABORTED_ATTEMPTS:
                    raise ManagedMemoryError(
                        f"memory store {self.store.full_name}: ABORTED {ABORTED_ATTEMPTS} times "
                        f"(concurrent writes): {_one_line(exc)}"
                    ) from None
                time.sleep(ABORTED_BACKOFF_SECONDS * (attempt + 1))
            except (AlreadyExists, ResourceAlreadyExists) as exc:
                if exists_ok:
                    return None
                raise ManagedMemoryError(
                    f"memory store {self.store.full_name}: already exists: {_one_line(exc)}"
                ) from None
            except PermissionDenied as exc:
                on = (
                    f"schema {self.store.catalog}.{self.store.schema}"
                    if privilege == CREATE
                    else f"memory store {self.store.full_name}"
                )
                raise ManagedMemoryError(
                    f"permission denied: {privilege} on {on} is needed "
                    f"(`python setup_lakebase.py --memory-store` prints the grants to run); "
                    f"the service said: {_one_line(exc)}"
                ) from None
            except NotFound as exc:
                if missing_ok:
                    return None
                raise StoreNotFound(
                    f"memory store {self.store.full_name} not found ({_one_line(exc)}); create it "
                    "with `python setup_lakebase.py --memory-store` or fix DATABRICKS_MEMORY_STORE"
                ) from None
            except DatabricksError as exc:
                raise ManagedMemoryError(
                    f"memory store {self.store.full_name}: {exc.error_code or 'error'}: "
                    f"{_one_line(exc)}"
                ) from None
        raise AssertionError("unreachable")

    # -- the store ----------------------------------------------------------

    def get_store(self) -> dict[str, Any]:
        return dict(self._do(READ, "GET", f"{MEMORY_STORES_API}/{self.store.full_name}"))

    def create_store(self, description: str) -> dict[str, Any]:
        body = {
            "name": self.store.name,
            "catalog_name": self.store.catalog,
            "schema_name": self.store.schema,
            "description": description,
        }
        return dict(self._do(CREATE, "POST", MEMORY_STORES_API, body=body))

    # -- entries ------------------------------------------------------------

    def get_entry(self, scope: str, path: str) -> dict[str, Any] | None:
        # A missing entry is a 404, as a missing store is: the store is checked at open (verify).
        found = self._do(
            READ,
            "GET",
            f"{self._entries}:get",
            missing_ok=True,
            query={"scope": scope, "path": path},
        )
        return None if found is None else dict(found)

    def list_entries(self, scope: str) -> list[dict[str, Any]]:
        """Every entry of ``scope`` (path, description, has_contents), all pages."""
        entries: list[dict[str, Any]] = []
        query: dict[str, Any] = {"scope": scope, "page_size": LIST_PAGE_SIZE}
        while True:
            page = self._do(READ, "GET", self._entries, query=query)
            entries.extend(page.get("entries") or [])  # the key is absent when empty
            token = page.get("next_page_token")
            if not token:
                return entries
            query = {**query, "page_token": token}

    def create_entry(self, scope: str, path: str, contents: str, description: str) -> bool:
        """Create the entry; False when the path is taken (create is create-only)."""
        body = {"path": path, "contents": contents, "description": description}
        created = self._do(
            WRITE, "POST", self._entries, exists_ok=True, query={"scope": scope}, body=body
        )
        return created is not None

    def replace_entry(self, scope: str, path: str, contents: str, description: str) -> None:
        body = {
            "scope": scope,
            "path": path,
            "description": description,
            "replace_all": {"contents": contents},
        }
        self._do(WRITE, "PATCH", self._entries, body=body)

    def delete_entry(self, scope: str, path: str) -> None:
        self._do(WRITE, "DELETE", self._entries, query={"scope": scope, "path": path})

    def search(self, scope: str, query: str, top_k: int) -> list[dict[str, Any]]:
        body = {"query": query, "top_k": top_k}
        found = self._do(READ, "POST", f"{self._entries}:search", query={"scope": scope}, body=body)
        return list(found.get("results") or [])


def _one_line(exc: BaseException) -> str:
    # The service's own message; str() of an SDK error appends the client's configuration.
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text[:300] or type(exc).__name__


# -- the store ---------------------------------------------------------------------------


def _matches(value: dict[str, Any], filter: dict[str, Any] | None) -> bool:
    return all(value.get(name) == wanted for name, wanted in (filter or {}).items())


class ManagedMemoryStore(BaseStore):
    """A LangGraph store whose memories live in a Databricks managed memory store."""

    supports_history = False
    supports_search_modes = False

    def __init__(self, client: MemoryStoreClient, local: BaseStore | None = None) -> None:
        self.client = client
        self.local = local
        """The Postgres store for namespaces that are not memories (a user's thread record)."""

    @property
    def store_name(self) -> str:
        return self.client.store.full_name

    def describe(self) -> str:
        return (
            f"Databricks managed memory store {self.store_name} (the service's ranked search: "
            "no scores, no hybrid/vector/lexical modes, no revision history)"
        )

    def verify(self) -> None:
        """Check the store exists and can be read (one-line ManagedMemoryError otherwise)."""
        self.client.get_store()

    async def averify(self) -> None:
        await asyncio.to_thread(self.verify)

    # -- batch ----------------------------------------------------------------

    @staticmethod
    def _is_memory(op: Op) -> bool:
        if isinstance(op, ListNamespacesOp):
            # The service has no list of scopes: listing memory namespaces cannot be
            # answered, and answering from the Postgres tables would be wrong.
            for condition in op.match_conditions or ():
                if condition.match_type == "prefix" and tuple(condition.path[:1]) in {
                    (root,) for root in MEMORY_ROOTS
                }:
                    raise ManagedMemoryError(
                        "a managed memory store cannot list its users' scopes; this needs "
                        "MEMORY_BACKEND=lakebase"
                    )
            return False
        namespace = (
            op.namespace_prefix if isinstance(op, SearchOp) else getattr(op, "namespace", ())
        )
        return bool(namespace) and namespace[0] in MEMORY_ROOTS

    def _split(self, ops: Iterable[Op]) -> tuple[list[Op], list[int], list[Op], list[int]]:
        ours: list[Op] = []
        our_index: list[int] = []
        theirs: list[Op] = []
        their_index: list[int] = []
        for index, op in enumerate(ops):
            if self._is_memory(op):
                ours.append(op)
                our_index.append(index)
            else:
                theirs.append(op)
                their_index.append(index)
        if theirs and self.local is None:
            raise ValueError("this managed memory store holds memory namespaces only")
        return ours, our_index, theirs, their_index

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ours, our_index, theirs, their_index = self._split(ops)
        results: list[Result] = [None] * (len(ours) + len(theirs))
        for index, result in zip(our_index, [self._run(op) for op in ours], strict=True):
            results[index] = result
        if theirs:
            for index, result in zip(their_index, self.local.batch(theirs), strict=True):  # type: ignore[union-attr]
                results[index] = result
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ours, our_index, theirs, their_index = self._split(ops)
        results: list[Result] = [None] * (len(ours) + len(theirs))
        if ours:
            # The SDK's client is synchronous: its calls run in a worker thread.
            mine = await asyncio.to_thread(lambda: [self._run(op) for op in ours])
            for index, result in zip(our_index, mine, strict=True):
                results[index] = result
        if theirs:
            local = await self.local.abatch(theirs)  # type: ignore[union-attr]
            for index, result in zip(their_index, local, strict=True):
                results[index] = result
        return results

    def _run(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op.namespace, op.key)
        if isinstance(op, PutOp):
            self._put(op.namespace, op.key, None if op.value is None else dict(op.value))
            return None
        if isinstance(op, SearchOp):
            return self._search(op)
        raise TypeError(f"unsupported operation {type(op).__name__}")

    # -- operations -------------------------------------------------------------

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        scope, path = scope_and_path(namespace, key)
        entry = self.client.get_entry(scope, path)
        if entry is None:
            return None
        return Item(
            value=decode_value(entry),
            key=key,
            namespace=namespace,
            created_at=_created(entry),
            updated_at=_updated(entry),
        )

    def _put(self, namespace: tuple[str, ...], key: str, value: dict[str, Any] | None) -> None:
        scope, path = scope_and_path(namespace, key)
        if value is None:
            if self.client.get_entry(scope, path) is not None:
                self.client.delete_entry(scope, path)
            return
        contents, description = encode_value(value)
        # Create is create-only on the service: an existing path (or one another writer
        # created meanwhile) is changed with PATCH instead.
        if self.client.get_entry(scope, path) is None and self.client.create_entry(
            scope, path, contents, description
        ):
            return
        self.client.replace_entry(scope, path, contents, description)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        namespace = op.namespace_prefix
        scope, _ = scope_and_path(namespace)
        if op.query:
            found = self.client.search(scope, op.query, min(SEARCH_TOP_K_MAX, op.offset + op.limit))
            items: list[SearchItem] = []
            for row in found:
                entry = dict(row.get("memory_entry") or {})
                key = key_of(str(entry.get("path") or ""), namespace)
                if key is None:
                    continue
                value = decode_value(entry)
                if _matches(value, op.filter):
                    items.append(self._search_item(namespace, key, value, entry))
            return items[op.offset : op.offset + op.limit]
        listed = []
        for entry in self.client.list_entries(scope):
            key = key_of(str(entry.get("path") or ""), namespace)
            if key is not None:
                listed.append((key, entry))
        # Most recently updated first, as the Postgres store lists.
        listed.sort(key=lambda pair: (_updated(pair[1]), pair[0]), reverse=True)
        result: list[SearchItem] = []
        skipped = 0
        # The list gives no contents: each memory is read, a few at a time in parallel
        # (one request each), in recency order, until ``limit`` of them match.
        with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
            start = 0
            while start < len(listed) and len(result) < op.limit:
                wanted = op.limit - len(result) + (op.offset - skipped)
                chunk = listed[start : start + max(PARALLEL_READS, wanted)]
                start += len(chunk)
                paths = [str(entry["path"]) for _, entry in chunk]
                fulls = pool.map(lambda path: self.client.get_entry(scope, path), paths)
                for (key, entry), full in zip(chunk, fulls, strict=True):
                    if full is None or len(result) >= op.limit:
                        continue
                    value = decode_value(full)
                    if not _matches(value, op.filter):
                        continue
                    if skipped < op.offset:
                        skipped += 1
                        continue
                    result.append(self._search_item(namespace, key, value, {**entry, **full}))
        return result

    @staticmethod
    def _search_item(
        namespace: tuple[str, ...], key: str, value: dict[str, Any], entry: dict[str, Any]
    ) -> SearchItem:
        # score stays None: the service's relevance is a rank, not a similarity to compare
        # with MEMORY_DEDUP_THRESHOLD (module docstring).
        return SearchItem(
            namespace=namespace,
            key=key,
            value=value,
            created_at=_created(entry),
            updated_at=_updated(entry),
            score=None,
        )

    # -- what the CLI and transfer use -----------------------------------------

    def count(self, namespace: tuple[str, ...]) -> int:
        """How many memories ``namespace`` holds (one list, no reads of contents)."""
        scope, _ = scope_and_path(namespace)
        return sum(
            1
            for entry in self.client.list_entries(scope)
            if key_of(str(entry.get("path") or ""), namespace) is not None
        )

    def items(self, namespace: tuple[str, ...]) -> list[Item]:
        """Every memory of ``namespace`` with its value (one read per memory)."""
        return list(self.search(namespace, limit=1_000_000))


def workspace_client() -> Any:
    """The SDK's client as the environment configures it (DATABRICKS_HOST + token, OAuth M2M
    for a Databricks App's service principal, or a CLI profile)."""
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient()


def make_managed_store(
    full_name: str | None, local: BaseStore | None = None, client: Any = None
) -> ManagedMemoryStore:
    """The managed store named ``full_name`` (validated first), on ``client`` or the
    environment's workspace client."""
    name = parse_store_name(full_name)
    return ManagedMemoryStore(MemoryStoreClient(name, client or workspace_client()), local)


LIMITS = (
    "search is the service's ranking: no scores, no MEMORY_SEARCH_MODE (hybrid/vector/lexical)",
    "near-duplicates are not merged by similarity (a fact about the same subject still updates)",
    "no revision history (memories history/restore need MEMORY_BACKEND=lakebase)",
    "listing reads each memory: one request per memory shown",
)
"""What the managed backend does not do that the Lakebase backend does (status, setup --check)."""


@dataclass
class ManagedHealth:
    """What ``memory-agent status`` and ``setup_lakebase.py --check`` report of a managed store."""

    store: str | None
    ok: bool = False
    problem: str | None = None
    limits: tuple[str, ...] = LIMITS

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": "managed",
            "store": self.store,
            "ok": self.ok,
            "problem": self.problem,
            "limits": list(self.limits),
        }

    def lines(self) -> list[str]:
        if self.ok:
            out = [
                f"[ok  ] long-term memory: managed memory store {self.store} (READ MEMORY STORE)"
            ]
        else:
            out = [
                f"[FAIL] long-term memory: managed memory store {self.store}",
                f"  fix: {self.problem}",
            ]
        out.append("  note: WRITE MEMORY STORE is checked at the first write")
        out.extend(f"  limit: {limit}" for limit in self.limits)
        return out


def managed_health(full_name: str | None, client: Any = None) -> ManagedHealth:
    """Whether the store is named right, exists and can be read (changes nothing)."""
    try:
        make_managed_store(full_name, client=client).verify()
    except (InvalidStoreName, ManagedMemoryError) as exc:
        return ManagedHealth(full_name, problem=_one_line(exc))
    except Exception as exc:  # no workspace configured, unreachable host: one line
        return ManagedHealth(full_name, problem=f"{type(exc).__name__}: {_one_line(exc)}")
    return ManagedHealth(full_name, ok=True)


def ensure_store(full_name: str | None, client: Any = None) -> bool:
    """Create the store unless it exists (needs CREATE MEMORY STORE on the schema); True when
    it was created."""
    store = make_managed_store(full_name, client=client)
    try:
        store.verify()
        return False
    except StoreNotFound:
        pass
    store.client.create_store("Long-term memory of the memory agent")
    return True
