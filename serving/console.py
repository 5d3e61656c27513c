"""The browser console: a page at the app's root and the JSON API it reads.

``mount_console(app, settings, agent)`` adds, to the server's FastAPI app:

- ``GET /``, ``GET /threads/{id}``, ``GET /memories``: the console page
  (``serving/console_static/``, plain ES modules, no build step). A thread URL
  of another user answers 403 with the page, which then says so.
- ``/console/api/...``: status, the caller's threads, a thread's messages,
  checkpoints, the state at one checkpoint, fork, delete, memories (hybrid
  search with scores, edit, delete behind an approval), and a chat turn.

Every route resolves the caller exactly as ``/responses`` does
(``serving.identity.resolve_user_id``): deployed, the Apps proxy's
``X-Forwarded-*`` headers; locally, the user the page sends in
``X-Memory-Agent-User`` (the console's local-only user field). A thread
answers only the user of its latest run (403 otherwise), as for ``/responses``.

The chat turn (``POST /console/api/responses``) takes a Responses API request
and is planned by the same ``aprepare`` as ``/responses``; it differs in one
way: the run is a task of its own, so it finishes even when the tab that
started it is closed or reloaded (MLflow's stream handler runs inside the
request and is cancelled with it). A reloaded page sees ``running: true`` on
the thread and waits for the answer. When the server has background runs
(``GET /responses/{id}``), the page uses them instead and resumes the token
stream from the last event it saw; ``status.background_runs`` tells it which.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from mlflow.types.responses import ResponsesAgentRequest
from pydantic import ValidationError

from checkpointing.browse import athreads_of_user
from checkpointing.copy_thread import CheckpointNotFound, copy_checkpoints
from checkpointing.thread_lock import ThreadBusyError
from checkpointing.threads import InvalidThreadId, validate_thread_id
from graph.settings import Settings
from graph.tool_markers import needs_approval
from nodes.review_tool_calls import InvalidDecision, parse_decision
from serving.identity import InvalidUserId, resolve_user_id
from serving.responses import MemoryResponsesAgent, PendingApproval, RequestError
from store import memories
from store.namespace import user_namespace

logger = logging.getLogger("memory_agent.console")

STATIC = Path(__file__).with_name("console_static")
LOCAL_USER_HEADER = "x-memory-agent-user"
API = "/console/api"
MAX_LIST = 100
PREVIEW_CHARACTERS = 80
DELETE_MEMORY_TOOL = "delete_memory"
RUN_GRACE_SECONDS = 20.0


def _preview(text: str, width: int = PREVIEW_CHARACTERS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _text(message: BaseMessage) -> str:
    text = message.text
    return text if isinstance(text, str) else str(message.content)


def message_json(message: BaseMessage) -> dict[str, Any] | None:
    """A message as the page shows it (system messages are the server's, not shown)."""
    if isinstance(message, HumanMessage):
        return {"id": message.id, "role": "user", "text": _text(message)}
    if isinstance(message, AIMessage):
        return {
            "id": message.id,
            "role": "assistant",
            "text": _text(message),
            "tool_calls": [
                {"id": call["id"], "name": call["name"], "arguments": call["args"]}
                for call in message.tool_calls
            ],
        }
    if isinstance(message, ToolMessage):
        return {
            "id": message.id,
            "role": "tool",
            "name": message.name,
            "tool_call_id": message.tool_call_id,
            "status": message.status,
            "text": _text(message),
        }
    return None


def messages_json(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    return [shown for message in messages if (shown := message_json(message)) is not None]


def _pending_json(snapshot: Any) -> list[dict[str, Any]]:
    found = []
    for interrupt in snapshot.interrupts:
        approval = PendingApproval.from_interrupt(interrupt)
        found.append(
            {
                "id": approval.id,
                "tool": approval.tool,
                "arguments": _jsonable(approval.arguments),
                "description": approval.description(),
            }
        )
    return found


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _owner(snapshot: Any) -> str | None:
    # The rule of serving.responses: a thread belongs to the user of its latest run.
    messages = (snapshot.values or {}).get("messages") or []
    return (snapshot.metadata or {}).get("user_id") if messages else None


def _checkpoint_id(config: Mapping[str, Any] | None) -> str | None:
    return ((config or {}).get("configurable") or {}).get("checkpoint_id")


class Console:
    """The console's API on one running agent (looked up per request: the lifespan opens it)."""

    def __init__(self, settings: Settings, agent: Callable[[], MemoryResponsesAgent]) -> None:
        self.settings = settings
        self._agent = agent
        self._runs: set[asyncio.Task[None]] = set()

    @property
    def graph(self) -> Any:
        return self._agent().graph

    # Identity and ownership ------------------------------------------------

    def user_of(self, request: Request) -> str | None:
        """The caller, by the rules of /responses; the page's user field counts only locally."""
        local = request.headers.get(LOCAL_USER_HEADER)
        try:
            return resolve_user_id(
                request.headers,
                {"user_id": local} if local else None,
                None,
                deployed=self.settings.serving.deployed,
                trust_client_user_id=self.settings.serving.trust_client_user_id,
            )
        except InvalidUserId as exc:
            raise HTTPException(400, str(exc)) from None

    def _checkpointer(self) -> Any:
        if self.graph.checkpointer is None:
            raise HTTPException(503, self.graph.memory_status)
        return self.graph.checkpointer

    def _store(self) -> Any:
        if self.graph.store is None:
            raise HTTPException(503, self.graph.long_term_memory_status)
        return self.graph.store

    async def owned_snapshot(self, thread_id: str, user_id: str | None) -> Any:
        """The thread's head state; 404 if it has none, 403 if it is another user's."""
        self._checkpointer()
        try:
            config = {"configurable": {"thread_id": validate_thread_id(thread_id)}}
        except InvalidThreadId as exc:
            raise HTTPException(400, str(exc)) from None
        snapshot = await self.graph.aget_state(config)
        if snapshot.metadata is None:
            raise HTTPException(404, f"thread {thread_id!r} does not exist")
        # The owner record every write path keeps (checkpointing.ownership), when there is one.
        owner = (
            await self.graph.aowner_of(thread_id)
            if getattr(self.graph, "thread_owners", None) is not None
            else _owner(snapshot)
        )
        if owner not in (None, "", user_id) or (owner == "" and user_id is not None):
            raise HTTPException(403, f"thread {thread_id!r} belongs to another user")
        if owner is None and user_id is not None and self.settings.serving.deployed:
            # Deployed, a thread nobody owns is no signed-in user's to browse.
            raise HTTPException(403, f"thread {thread_id!r} belongs to another user")
        return snapshot

    async def running(self, thread_id: str) -> bool:
        lock = self.graph.thread_lock
        if lock is None:
            return False
        try:
            async with lock.ahold(thread_id):
                return False
        except ThreadBusyError:
            return True

    # Threads ---------------------------------------------------------------

    async def threads(self, user_id: str | None, limit: int) -> list[dict[str, Any]]:
        checkpointer = self._checkpointer()
        if user_id is None and self.settings.serving.deployed:
            return []  # deployed without a signed-in user: nobody's threads to list
        found = []
        for summary in await athreads_of_user(checkpointer.conn, user_id, limit):
            snapshot = await self.graph.aget_state(
                {"configurable": {"thread_id": summary.thread_id}}
            )
            shown = messages_json((snapshot.values or {}).get("messages") or [])
            first_user = next((m["text"] for m in shown if m["role"] == "user"), "")
            last_text = next((m["text"] for m in reversed(shown) if m["text"]), "")
            found.append(
                {
                    "thread_id": summary.thread_id,
                    "title": _preview(first_user, 48) or "(no messages)",
                    "preview": _preview(last_text),
                    "updated_at": summary.updated_at,
                    "checkpoints": summary.checkpoints,
                    "waiting_for_approval": bool(snapshot.interrupts),
                }
            )
        return found

    async def thread(self, thread_id: str, user_id: str | None) -> dict[str, Any]:
        snapshot = await self.owned_snapshot(thread_id, user_id)
        return {
            "thread_id": thread_id,
            "messages": messages_json((snapshot.values or {}).get("messages") or []),
            "pending": _pending_json(snapshot),
            "running": await self.running(thread_id),
            "updated_at": snapshot.created_at,
            "forked_from": (snapshot.metadata or {}).get("forked_from"),
        }

    async def checkpoints(self, thread_id: str, user_id: str | None) -> list[dict[str, Any]]:
        await self.owned_snapshot(thread_id, user_id)
        history = [
            snapshot
            async for snapshot in self.graph.aget_state_history(
                {"configurable": {"thread_id": thread_id}}, limit=200
            )
        ]
        by_id = {_checkpoint_id(s.config): s for s in history}
        rows = []
        for snapshot in history:
            parent = by_id.get(_checkpoint_id(snapshot.parent_config))
            messages = (snapshot.values or {}).get("messages") or []
            last = message_json(messages[-1]) if messages else None
            metadata = snapshot.metadata or {}
            rows.append(
                {
                    "checkpoint_id": _checkpoint_id(snapshot.config),
                    "parent_checkpoint_id": _checkpoint_id(snapshot.parent_config),
                    "step": metadata.get("step"),
                    "source": metadata.get("source"),
                    # The node that wrote it: what the parent checkpoint was about to run
                    # (an "input" checkpoint starts a run: its writer is the caller).
                    "node": ", ".join(parent.next)
                    if parent is not None and parent.next and metadata.get("source") == "loop"
                    else metadata.get("source"),
                    "next": list(snapshot.next),
                    "created_at": snapshot.created_at,
                    "messages": len(messages),
                    "preview": (
                        f"{last['role']}: {_preview(last['text'] or _calls_text(last))}"
                        if last
                        else ""
                    ),
                    "waiting_for_approval": bool(snapshot.interrupts),
                }
            )
        return rows

    async def state_at(
        self, thread_id: str, checkpoint_id: str, user_id: str | None
    ) -> dict[str, Any]:
        await self.owned_snapshot(thread_id, user_id)
        snapshot = await self.graph.aget_state(
            {"configurable": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}
        )
        if snapshot.metadata is None:
            raise HTTPException(404, f"thread {thread_id!r} has no checkpoint {checkpoint_id}")
        values = dict(snapshot.values or {})
        messages = values.pop("messages", [])
        return {
            "thread_id": thread_id,
            "checkpoint_id": checkpoint_id,
            "step": (snapshot.metadata or {}).get("step"),
            "created_at": snapshot.created_at,
            "next": list(snapshot.next),
            "messages": messages_json(messages),
            "values": _jsonable(values),
            "pending": _pending_json(snapshot),
        }

    async def fork(self, thread_id: str, checkpoint_id: str, user_id: str | None) -> dict[str, Any]:
        """Copy the history up to ``checkpoint_id`` into a new thread (owned like the source)."""
        await self.owned_snapshot(thread_id, user_id)
        checkpointer = self._checkpointer()
        new_thread = str(uuid.uuid4())
        metadata = {"forked_from": {"thread_id": thread_id, "checkpoint_id": checkpoint_id}}
        try:
            # The async saver's sync methods hand their work to the event loop, so the
            # saver-level copy (checkpointing.copy_thread) runs in a worker thread.
            head = await asyncio.to_thread(
                copy_checkpoints, checkpointer, thread_id, checkpoint_id, new_thread, metadata
            )
        except CheckpointNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return {"thread_id": new_thread, "checkpoint_id": _checkpoint_id(head)}

    async def delete_thread(self, thread_id: str, user_id: str | None) -> dict[str, Any]:
        await self.owned_snapshot(thread_id, user_id)
        checkpointer = self._checkpointer()
        lock = self.graph.thread_lock
        try:
            if lock is None:
                await checkpointer.adelete_thread(thread_id)
            else:
                async with lock.ahold(thread_id):
                    await checkpointer.adelete_thread(thread_id)
        except ThreadBusyError as exc:
            raise HTTPException(409, str(exc)) from None
        return {"thread_id": thread_id, "deleted": True}

    # Memories --------------------------------------------------------------

    def _memory_user(self, user_id: str | None) -> str:
        if user_id is None:
            raise HTTPException(
                400,
                "long-term memories belong to a user: sign in (deployed) or fill in the user field",
            )
        return user_id

    async def memories(
        self, user_id: str | None, query: str | None, limit: int
    ) -> list[dict[str, Any]]:
        store = self._store()
        user = self._memory_user(user_id)
        if query:
            items = await memories.asearch_memories(store, user, query, limit)
        else:
            items = await memories.alist_memories(store, user, limit)
        return [_memory_json(item) for item in items]

    async def edit_memory(self, user_id: str | None, key: str, content: Any) -> dict[str, Any]:
        store = self._store()
        user = self._memory_user(user_id)
        if not isinstance(content, str):
            raise HTTPException(400, "content must be text")
        existing = await store.aget(user_namespace(user), key)
        if existing is None:
            raise HTTPException(404, f"you have no memory with key {key!r}")
        # An edit keeps where the memory came from and says it was edited here.
        source = dict((existing.value or {}).get("source") or {})
        source["edited_in"] = "console"
        try:
            saved = await memories.asave_memory(store, user, content, key, source=source)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        item = await store.aget(user_namespace(user), saved.key)
        return _memory_json(item)

    async def delete_memory(self, user_id: str | None, key: str, approval: Any) -> dict[str, Any]:
        """Delete one memory once a human approved it: the rule the agent's tool follows."""
        store = self._store()
        user = self._memory_user(user_id)
        # The graph's gate decides by the tool's name and metadata; delete_memory is
        # sensitive by name, so this always asks (and keeps asking if that changes).
        if needs_approval(DELETE_MEMORY_TOOL, {}):
            if approval is None:
                raise HTTPException(
                    428,
                    'deleting a memory needs approval: send {"approval": "approve"} (or "reject")',
                )
            try:
                decision = parse_decision(approval)
            except InvalidDecision as exc:
                raise HTTPException(400, f"approval: {exc}") from None
            if decision.action == "edit":
                raise HTTPException(400, "approval: edit the memory instead of deleting it")
            if decision.action == "reject":
                return {"key": key, "deleted": False, "rejected": True}
        if not await memories.adelete_memory(store, user, key):
            raise HTTPException(404, f"you have no memory with key {key!r}")
        return {"key": key, "deleted": True}

    # Status ----------------------------------------------------------------

    def _said(self, status: str) -> str:
        # Deployed, the page says whether memory works, not where the database is or
        # what it answered (hosts, users, errors): that is for the app's log.
        if not self.settings.serving.deployed:
            return status
        verdict = status.split(":", 1)[0]
        return verdict if verdict.endswith(" available") else f"{verdict}: see the app's log"

    def status(self, user_id: str | None, app: FastAPI) -> dict[str, Any]:
        graph = self.graph
        model = self.settings.model
        return {
            "user_id": user_id,
            "deployed": self.settings.serving.deployed,
            "identity": "proxy" if self.settings.serving.deployed else "local",
            "model": model.describe(),
            "offline_model": model.kind == "offline",
            "memory_available": bool(graph.memory_available),
            "memory_status": self._said(graph.memory_status),
            "long_term_memory_available": graph.store is not None,
            "long_term_memory_status": self._said(graph.long_term_memory_status),
            "background_runs": any(
                getattr(route, "path", None) == "/responses/{response_id}" for route in app.routes
            ),
        }

    # Chat ------------------------------------------------------------------

    async def finish_runs(self, timeout: float = RUN_GRACE_SECONDS) -> None:
        """Wait for the turns still running (at shutdown); cancel what is left after ``timeout``."""
        if not self._runs:
            return
        _, unfinished = await asyncio.wait(set(self._runs), timeout=timeout)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)

    async def start_turn(self, request: Request) -> StreamingResponse:
        """Plan the turn as /responses does, run it as a task, stream its events."""
        try:
            body = await request.json()
            parsed = ResponsesAgentRequest.model_validate(body)
        except (ValueError, ValidationError) as exc:
            raise HTTPException(400, f"not a Responses API request: {_first_line(exc)}") from None
        agent = self._agent()
        try:
            turn = await agent.aprepare(parsed, dict(request.headers))
        except RequestError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        async def run() -> None:
            try:
                # One trace per turn, as MLflow's handler makes for /responses.
                with mlflow.start_span(name="console_turn") as span:
                    span.set_inputs(body)
                    async for event in agent.astream_turn(turn):
                        events.put_nowait(event)
            except Exception as exc:  # the page shows it; the log keeps the details
                logger.exception("console turn on thread %s failed", turn.thread_id)
                message = (
                    str(exc)
                    if isinstance(exc, ThreadBusyError | RequestError)
                    else "the run failed; see the server log"
                )
                events.put_nowait({"type": "error", "message": message})
            finally:
                events.put_nowait(None)

        task = asyncio.create_task(run(), name=f"console-turn-{turn.thread_id}")
        self._runs.add(task)  # a reference, so the run is not collected mid-way
        task.add_done_callback(self._runs.discard)

        async def stream() -> AsyncIterator[str]:
            while (event := await events.get()) is not None:
                yield f"data: {json.dumps(event, default=str)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")


def _calls_text(message: Mapping[str, Any]) -> str:
    calls = message.get("tool_calls") or []
    return ", ".join(f"{call['name']}(…)" for call in calls)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _memory_json(item: Any) -> dict[str, Any]:
    value = item.value if isinstance(item.value, dict) else {"content": item.value}
    return {
        "key": item.key,
        "content": str(value.get("content", "")),
        "score": getattr(item, "score", None),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
        "source": value.get("source"),
    }


def _limit(raw: str | None, default: int = 30) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"limit must be a whole number, got {raw!r}") from None
    if not 1 <= value <= MAX_LIST:
        raise HTTPException(400, f"limit must be between 1 and {MAX_LIST}")
    return value


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def mount_console(
    app: FastAPI, settings: Settings, agent: Callable[[], MemoryResponsesAgent]
) -> Console:
    """Serve the console page at ``/`` and its JSON API under ``/console/api``."""
    console = Console(settings, agent)
    index = STATIC / "index.html"
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with serve(app) as state:
            yield state
            # Turns started from the console finish before the agent and its pool close.
            await console.finish_runs()

    app.router.lifespan_context = lifespan

    def page(status: int = 200) -> FileResponse:
        return FileResponse(index, status_code=status, headers={"Cache-Control": "no-store"})

    @app.get("/", include_in_schema=False)
    async def console_page() -> FileResponse:
        return page()

    @app.get("/memories", include_in_schema=False)
    async def memories_page() -> FileResponse:
        return page()

    @app.get("/threads/{thread_id}", include_in_schema=False)
    async def thread_page(thread_id: str, request: Request) -> FileResponse:
        # The page itself answers 403 for another user's thread, not only its API calls.
        try:
            await console.owned_snapshot(thread_id, console.user_of(request))
        except HTTPException as exc:
            if exc.status_code == 403:
                return page(403)
        return page()

    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get(f"{API}/status")
    async def status(request: Request) -> Mapping[str, Any]:
        return console.status(console.user_of(request), app)

    @app.get(f"{API}/threads")
    async def threads(request: Request, limit: str | None = None) -> list[dict[str, Any]]:
        return await console.threads(console.user_of(request), _limit(limit))

    @app.get(f"{API}/threads/{{thread_id}}")
    async def thread(thread_id: str, request: Request) -> Mapping[str, Any]:
        return await console.thread(thread_id, console.user_of(request))

    @app.delete(f"{API}/threads/{{thread_id}}")
    async def delete_thread(thread_id: str, request: Request) -> Mapping[str, Any]:
        return await console.delete_thread(thread_id, console.user_of(request))

    @app.get(f"{API}/threads/{{thread_id}}/checkpoints")
    async def checkpoints(thread_id: str, request: Request) -> list[dict[str, Any]]:
        return await console.checkpoints(thread_id, console.user_of(request))

    @app.get(f"{API}/threads/{{thread_id}}/checkpoints/{{checkpoint_id}}")
    async def state_at(thread_id: str, checkpoint_id: str, request: Request) -> Mapping[str, Any]:
        return await console.state_at(thread_id, checkpoint_id, console.user_of(request))

    @app.post(f"{API}/threads/{{thread_id}}/checkpoints/{{checkpoint_id}}/fork")
    async def fork(thread_id: str, checkpoint_id: str, request: Request) -> Mapping[str, Any]:
        return await console.fork(thread_id, checkpoint_id, console.user_of(request))

    @app.get(f"{API}/memories")
    async def list_memories(
        request: Request, query: str | None = None, limit: str | None = None
    ) -> list[dict[str, Any]]:
        return await console.memories(console.user_of(request), query, _limit(limit, 20))

    @app.put(f"{API}/memories/{{key}}")
    async def edit_memory(key: str, request: Request) -> Mapping[str, Any]:
        body = await _json_body(request)
        return await console.edit_memory(console.user_of(request), key, body.get("content"))

    @app.delete(f"{API}/memories/{{key}}")
    async def delete_memory(key: str, request: Request) -> Mapping[str, Any]:
        body = await _json_body(request) if await request.body() else {}
        return await console.delete_memory(console.user_of(request), key, body.get("approval"))

    @app.post(f"{API}/responses")
    async def responses(request: Request) -> StreamingResponse:
        return await console.start_turn(request)

    return console
