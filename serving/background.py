"""Background runs: a response that keeps going without its HTTP connection, and survives its process.

The HTTP surface is databricks-ai-bridge's ``LongRunningAgentServer`` (so the
OpenAI client and Databricks' chat UI work unchanged):

- ``POST /responses`` (or ``/invocations``) with ``background: true`` plans the
  turn like any request (a bad one is still a 400/403/409), stores the response
  and returns at once: the response object (``status: in_progress``), or with
  ``stream: true`` the event stream followed from the log.
- ``GET /responses/{id}``: status and, once finished, the output.
  ``?stream=true&starting_after=N`` replays every stored event after N, then
  follows new ones until the run ends (``data: [DONE]`` when it completed).
- ``POST /responses/{id}/cancel``: the owner stops at the next event boundary
  (after the model call or tool in progress), answers the thread's unanswered
  tool calls as cancelled so the thread stays usable, and ends ``cancelled``.
- Runs past ``TASK_TIMEOUT_SECONDS`` end ``failed`` the same way, with the reason.

Where we differ from the bridge, and why:

- **Takeover continues the thread.** The bridge's new owner replays the request
  on a rotated conversation id with the old event log as prose. Ours continues
  the same thread from its last checkpoint (``graph.astream(None)``), the tool
  ledger keeps side effects exactly/at most once, and the event stream goes on
  from the last stored sequence number: no re-emitted events, no alias to track.
- **Ownership is the run's advisory lock** (``serving.events``), not a
  heartbeat: Postgres frees it the moment the owner's connection dies, so a
  scanner on any other process (every ``TAKEOVER_SCAN_SECONDS``) claims the run
  within about a second instead of the bridge's 10 s staleness window.
- **Events are numbered from 1.** The bridge numbers from 0 but reads
  ``starting_after=0`` as "from the start", so a client that saw only event 0
  gets it twice; from 1, ``starting_after=N`` always means "after N".
- **Cancel works** (the bridge answers 501).
- **SIGTERM** lets in-flight runs finish for ``BACKGROUND_DRAIN_SECONDS``, then
  hands the rest over: their locks are released and another process continues
  them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import aclosing, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from checkpointing import ThreadBusyError, amissing_tables
from graph.settings import Settings, SettingsError
from serving.events import (
    BACKGROUND_TABLES,
    RunConnection,
    StoredResponse,
    asetup_background_tables,
    claim_response,
    create_response,
    find_orphans,
    load_events,
    load_response,
    open_run_connection,
    request_cancel,
)
from serving.identity import resolve_user_id
from serving.responses import (
    MemoryResponsesAgent,
    OutputBuilder,
    Turn,
    _thread_view,
    plan_turn,
)

logger = logging.getLogger("memory_agent.background")

BACKGROUND_KEY = "background"
STREAM_KEY = "stream"
# A takeover may find the thread's lock still held for a moment by the dead owner's
# pooled connection (Postgres notices a dead client when it next reads from it).
THREAD_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class BackgroundSettings:
    """How background runs behave; the env names are the Databricks template's where it has them."""

    task_timeout_seconds: float = 3600.0
    """TASK_TIMEOUT_SECONDS: a run still going after this long ends ``failed``."""
    poll_interval_seconds: float = 1.0
    """POLL_INTERVAL_SECONDS: how often a stream follower reads the log for a run owned by
    another process (a run owned by this process wakes its followers at once)."""
    takeover_scan_seconds: float = 1.0
    """TAKEOVER_SCAN_SECONDS: how often each process looks for runs whose owner died."""
    drain_seconds: float = 10.0
    """BACKGROUND_DRAIN_SECONDS: on SIGTERM, how long in-flight runs may finish before
    they are handed over to another process."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackgroundSettings:
        env = os.environ if env is None else env
        values = {}
        for name, attribute in (
            ("TASK_TIMEOUT_SECONDS", "task_timeout_seconds"),
            ("POLL_INTERVAL_SECONDS", "poll_interval_seconds"),
            ("TAKEOVER_SCAN_SECONDS", "takeover_scan_seconds"),
            ("BACKGROUND_DRAIN_SECONDS", "drain_seconds"),
        ):
            text = env.get(name, "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                value = -1.0
            if not value > 0:
                raise SettingsError(f"{name} must be a positive number of seconds, got {text!r}")
            values[attribute] = value
        return cls(**values)


def _item_key(item: Mapping[str, Any]) -> tuple[str, str]:
    return (str(item.get("type")), str(item.get("id") or item.get("call_id") or ""))


@dataclass
class ResumableOutputBuilder(OutputBuilder):
    """The Responses stream of one background response, able to go on from a stored log.

    Seeded with the events a previous owner stored, it emits no second
    ``response.created``, keeps the output indexes going, finishes a message the
    previous owner had started streaming under the same index, and never finishes
    an item twice.
    """

    _started: bool = False
    _done: set[tuple[str, str]] = field(default_factory=set)

    def start(self) -> list[dict[str, Any]]:
        if self._started:
            return []
        self._started = True
        return super().start()

    def _finish(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        key = _item_key(item)
        if key in self._done:
            self._streaming.pop(str(item.get("id", "")), None)
            return []
        self._done.add(key)
        return super()._finish(item)

    @classmethod
    def from_log(
        cls, response_id: str, created_at: float, events: Iterable[Mapping[str, Any]]
    ) -> ResumableOutputBuilder:
        builder = cls(response_id=response_id, created_at=created_at)
        for event in events:
            kind = event.get("type")
            builder._started = builder._started or kind == "response.created"
            index = event.get("output_index")
            if isinstance(index, int):
                builder._next_index = max(builder._next_index, index + 1)
            item = event.get("item") or {}
            if kind == "response.output_item.added" and item.get("id"):
                builder._streaming[item["id"]] = index if isinstance(index, int) else 0
            elif kind == "response.output_item.done":
                builder._streaming.pop(str(item.get("id", "")), None)
                if item.get("status") != "incomplete":
                    builder._done.add(_item_key(item))
                    builder.items.append(dict(item))
        return builder

    def catch_up(self, messages: Iterable[BaseMessage]) -> list[dict[str, Any]]:
        """Finish the items of messages the checkpoint holds but the log does not."""
        return [
            event
            for message in messages
            for item in self._items_for(message)
            for event in self._finish(item)
        ]

    def close_unfinished(self) -> list[dict[str, Any]]:
        """End the messages a dead owner was streaming and nobody will finish."""
        events = []
        for item_id, index in list(self._streaming.items()):
            item = {
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "status": "incomplete",
                "content": [],
            }
            events.append(self._event("response.output_item.done", item=item, output_index=index))
        self._streaming.clear()
        return events


def _error(code: str, message: str) -> dict[str, Any]:
    return {"message": message, "type": "server_error", "code": code}


def _response_object(stored: StoredResponse, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Responses API object for ``GET /responses/{id}`` (the bridge's fields, and OpenAI's)."""
    output = [
        event["item"]
        for event in events
        if event.get("type") == "response.output_item.done"
        and (event.get("item") or {}).get("status") != "incomplete"
    ]
    body: dict[str, Any] = {
        "id": stored.response_id,
        "object": "response",
        "created_at": int(stored.created_at.timestamp()),
        "status": stored.status,
        "background": True,
        "error": stored.error,
        "incomplete_details": None,
        "output": output,
        "attempt_number": stored.attempt_number,
        "metadata": {},
    }
    completed = next((e for e in reversed(events) if e.get("type") == "response.completed"), None)
    if completed is not None:
        body["custom_outputs"] = completed.get("custom_outputs")
    return body


class BackgroundRuns:
    """This process's share of the background runs: the ones it owns, and the takeover scanner."""

    def __init__(
        self, agent: MemoryResponsesAgent, pool: Any, settings: BackgroundSettings, serving: Any
    ) -> None:
        self.agent = agent
        self.pool = pool
        self.settings = settings
        self.serving = serving
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._scanner: asyncio.Task[None] | None = None
        self._scan_connection: Any = None

    # Starting ---------------------------------------------------------------

    async def start(self, turn: Turn, request: dict[str, Any]) -> StoredResponse:
        """Store a new response for ``turn`` and run it here, detached from the request."""
        graph = self.agent.graph
        snapshot = await graph.aget_state({"configurable": {"thread_id": turn.thread_id}})
        base_checkpoint = (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")
        base_messages = len((snapshot.values or {}).get("messages") or [])
        response_id = f"resp_{uuid.uuid4().hex}"
        conn = await open_run_connection(self.pool)
        try:
            run = await create_response(
                conn,
                response_id=response_id,
                thread_id=turn.thread_id,
                user_id=turn.user_id,
                request=request,
                base_checkpoint_id=base_checkpoint,
                base_messages=base_messages,
                owner=self.owner,
            )
        except BaseException:
            await conn.close()
            raise
        stored = await load_response(self.pool, response_id)
        assert stored is not None
        builder = ResumableOutputBuilder(
            response_id=response_id, created_at=stored.created_at.timestamp()
        )
        self._spawn(run, stored, turn, builder)
        return stored

    def _spawn(
        self,
        run: RunConnection,
        stored: StoredResponse,
        turn: Turn,
        builder: ResumableOutputBuilder,
    ) -> None:
        task = asyncio.create_task(
            self._drive(run, stored, turn, builder), name=f"background-{run.response_id}"
        )
        self._tasks[run.response_id] = task

    # Running ----------------------------------------------------------------

    async def _drive(
        self,
        run: RunConnection,
        stored: StoredResponse,
        turn: Turn,
        builder: ResumableOutputBuilder,
    ) -> None:
        """Run the turn to its end (or its cancel, timeout or failure), storing every event."""
        deadline = stored.created_at.timestamp() + self.settings.task_timeout_seconds
        try:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.time())):
                    finished = await self._stream(run, turn, builder)
            except TimeoutError:
                limit = f"{self.settings.task_timeout_seconds:g}"
                await self._stop(
                    run,
                    turn,
                    builder,
                    "failed",
                    _error(
                        "task_timeout",
                        f"the run took longer than TASK_TIMEOUT_SECONDS ({limit} s) and was stopped",
                    ),
                )
                return
            if finished:
                await run.finish("completed")
                return
            current = await load_response(self.pool, run.response_id)
            if (
                current
                and current.attempt_number == run.attempt
                and not current.finished
                and current.cancel_requested
            ):
                await self._stop(run, turn, builder, "cancelled", None)
            # Otherwise another process owns it now (our connection was lost): leave it be.
        except asyncio.CancelledError:
            raise  # shutdown: the lock goes with the connection and another process goes on
        except Exception as exc:
            logger.exception("background response %s failed", run.response_id)
            text = str(exc).strip().splitlines()
            await self._stop(
                run,
                turn,
                builder,
                "failed",
                _error("task_failed", text[0] if text else type(exc).__name__),
            )
        finally:
            self._tasks.pop(run.response_id, None)
            await run.close()
            self._wake(run.response_id)

    async def _stream(
        self, run: RunConnection, turn: Turn, builder: ResumableOutputBuilder
    ) -> bool:
        """Store the turn's events as they come; False when the log refuses one (cancel, lost)."""
        waited = 0.0
        while True:
            try:
                async with aclosing(self.agent.astream_turn(turn, builder)) as events:
                    async for event in events:
                        if not await run.append(event):
                            return False
                        self._wake(run.response_id)
                return True
            except ThreadBusyError:
                # Only raised as the graph starts, before it emitted anything.
                if waited >= THREAD_WAIT_SECONDS:
                    raise
                await asyncio.sleep(0.2)
                waited += 0.2

    async def _stop(
        self,
        run: RunConnection,
        turn: Turn,
        builder: ResumableOutputBuilder,
        status: str,
        error: dict[str, Any] | None,
    ) -> None:
        """End the run as ``status``, leaving its thread answerable (no tool call without a reply)."""
        reason = (
            "the run was cancelled"
            if status == "cancelled"
            else (error or {}).get("message", status)
        )
        try:
            added = await self._close_thread(turn, reason)
        except Exception:  # the response still ends; the thread is then left as a crash leaves it
            logger.exception("could not close the thread of %s", run.response_id)
            added = []
        events = builder.close_unfinished() + builder.on_update({"call_model": {"messages": added}})
        if status == "cancelled":
            events.append(
                {"type": "response.cancelled", "response": builder._response("cancelled")}
            )
        else:
            events.append({"type": "error", "error": error})
        for event in events:
            await run.append(event, closing=True)
        await run.finish(status, error)

    async def _close_thread(self, turn: Turn, reason: str) -> list[BaseMessage]:
        graph = self.agent.graph
        config = turn.config
        snapshot = await graph.aget_state(config)
        if not snapshot.tasks or snapshot.interrupts:
            return []  # finished, or paused for a decision: consistent as it is
        messages = (snapshot.values or {}).get("messages") or []
        last_ai = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
        answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
        added: list[BaseMessage] = [
            ToolMessage(
                f"Not done: {reason} before this call's result was recorded.",
                tool_call_id=call["id"],
                name=call["name"],
                status="error",
            )
            for call in (last_ai.tool_calls if last_ai else [])
            if call["id"] not in answered
        ]
        added.append(AIMessage(content=f"Stopped: {reason}."))
        # As the model's step, so the graph routes to its end and the next turn starts clean.
        await graph.aupdate_state(config, {"messages": added}, as_node="call_model")
        return added

    # Takeover ---------------------------------------------------------------

    async def _scan(self) -> None:
        while True:
            await asyncio.sleep(self.settings.takeover_scan_seconds)
            try:
                if self._scan_connection is None or self._scan_connection.closed:
                    self._scan_connection = await open_run_connection(self.pool)
                for response_id in await find_orphans(self._scan_connection, list(self._tasks)):
                    await self.take_over(response_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the scanner
                logger.warning("takeover scan failed; retrying", exc_info=True)

    async def take_over(self, response_id: str) -> bool:
        """Claim an orphaned response and continue its thread from the last checkpoint."""
        conn = await open_run_connection(self.pool)
        try:
            run = await claim_response(conn, response_id, self.owner)
        except BaseException:
            await conn.close()
            raise
        if run is None:
            await conn.close()
            return False
        try:
            stored = await load_response(self.pool, response_id)
            assert stored is not None
            logged = [event for _, event in await load_events(self.pool, response_id)]
            builder = ResumableOutputBuilder.from_log(
                response_id, stored.created_at.timestamp(), logged
            )
            try:
                turn, catch_up = await self._resumed_turn(stored)
            except Exception as exc:  # it cannot go on: end it, or every scan would retry it
                logger.exception("cannot continue background response %s", response_id)
                text = str(exc).strip().splitlines()
                error = _error("task_failed", text[0] if text else type(exc).__name__)
                await run.append({"type": "error", "error": error}, closing=True)
                await run.finish("failed", error)
                await run.close()
                return False
            for event in builder.catch_up(catch_up):
                if not await run.append(event):
                    break
        except BaseException:
            await run.close()
            raise
        logger.info("took over %s (attempt %d) from %s", response_id, run.attempt, stored.owner)
        self._spawn(run, stored, turn, builder)
        return True

    async def _resumed_turn(self, stored: StoredResponse) -> tuple[Turn, list[BaseMessage]]:
        """The turn that finishes ``stored`` from the thread's last checkpoint, and the
        messages the run already added that the log may lack."""
        graph = self.agent.graph
        snapshot = await graph.aget_state({"configurable": {"thread_id": stored.thread_id}})
        head = (snapshot.config or {}).get("configurable", {}).get("checkpoint_id")
        if head == stored.base_checkpoint_id:
            # Nothing of this run reached the thread: plan it again, as it was planned.
            request = self.serving.validator.validate_and_convert_request(stored.request)
            turn = plan_turn(
                request, _thread_view(snapshot), thread_id=stored.thread_id, user_id=stored.user_id
            )
            return turn, []
        messages = list((snapshot.values or {}).get("messages") or [])[stored.base_messages :]
        view = _thread_view(snapshot)
        if snapshot.tasks and not snapshot.interrupts:
            return Turn(stored.thread_id, stored.user_id, None, continues=True), messages
        return Turn(stored.thread_id, stored.user_id, None, waiting=view.pending), messages

    # Reading ----------------------------------------------------------------

    def _wake(self, response_id: str) -> None:
        wakeup = self._wakeups.pop(response_id, None)
        if wakeup is not None:
            wakeup.set()

    async def _wait(self, response_id: str) -> None:
        wakeup = self._wakeups.setdefault(response_id, asyncio.Event())
        with suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), self.settings.poll_interval_seconds)

    async def follow(self, response_id: str, starting_after: int) -> AsyncIterator[str]:
        """Server-sent events: every stored event after ``starting_after``, then new ones to the end."""
        last = starting_after
        deadline = time.monotonic() + self.settings.task_timeout_seconds + 60
        while time.monotonic() < deadline:
            stored = await load_response(self.pool, response_id)
            if stored is None:
                return
            # Status first: if it says finished, the events read next are all there are.
            for sequence, event in await load_events(self.pool, response_id, last):
                yield f"data: {json.dumps({**event, 'response_id': response_id}, ensure_ascii=False)}\n\n"
                last = sequence
            if stored.finished:
                if stored.status != "failed":
                    yield "data: [DONE]\n\n"
                return
            await self._wait(response_id)

    async def retrieve(self, response_id: str) -> dict[str, Any]:
        stored = await load_response(self.pool, response_id)
        if stored is None:
            raise HTTPException(status_code=404, detail=f"no response {response_id!r}")
        return _response_object(
            stored, [event for _, event in await load_events(self.pool, response_id)]
        )

    async def cancel(self, response_id: str) -> dict[str, Any]:
        stored = await load_response(self.pool, response_id)
        if stored is None:
            raise HTTPException(status_code=404, detail=f"no response {response_id!r}")
        if not stored.finished:
            await request_cancel(self.pool, response_id)
            task = self._tasks.get(response_id)
            if task is not None:  # ours: wait for the safe point, so the answer says "cancelled"
                await asyncio.wait({task}, timeout=self.settings.poll_interval_seconds * 5 + 5)
            else:
                deadline = time.monotonic() + self.settings.poll_interval_seconds * 5 + 5
                while time.monotonic() < deadline:
                    current = await load_response(self.pool, response_id)
                    if current is None or current.finished:
                        break
                    await asyncio.sleep(min(0.1, self.settings.poll_interval_seconds))
        return await self.retrieve(response_id)

    # Lifetime ---------------------------------------------------------------

    def begin(self) -> None:
        self._scanner = asyncio.create_task(self._scan(), name="background-takeover-scanner")

    async def aclose(self) -> None:
        """Stop scanning; let runs finish for ``drain_seconds``, then hand the rest over."""
        if self._scanner is not None:
            self._scanner.cancel()
            await asyncio.gather(self._scanner, return_exceptions=True)
        running = list(self._tasks.values())
        if running:
            logger.info(
                "waiting up to %g s for %d background run(s)",
                self.settings.drain_seconds,
                len(running),
            )
            _, pending = await asyncio.wait(running, timeout=self.settings.drain_seconds)
            for task in pending:
                task.cancel()  # its lock is released with its connection: another process goes on
            await asyncio.gather(*pending, return_exceptions=True)
        if self._scan_connection is not None:
            await self._scan_connection.close()


def _pool_of(graph: Any) -> Any:
    pool = getattr(graph.checkpointer, "conn", None)
    return pool if hasattr(pool, "connection_class") else None


@asynccontextmanager
async def open_background_runs(
    agent: MemoryResponsesAgent, settings: Settings, background: BackgroundSettings, serving: Any
) -> AsyncIterator[BackgroundRuns | None]:
    """Background runs on the agent's database; None (and one warning) when they cannot be had."""
    from database.targets import EmbeddedTarget

    pool = _pool_of(agent.graph)
    if pool is None or not agent.graph.memory_available:
        yield None
        return
    missing = await amissing_tables(pool, BACKGROUND_TABLES)
    if missing and (isinstance(settings.database, EmbeddedTarget) or settings.auto_setup):
        await asetup_background_tables(pool)
        missing = await amissing_tables(pool, BACKGROUND_TABLES)
    if missing:
        logger.warning(
            "background runs unavailable: tables %s are missing. Fix: run `python setup_lakebase.py`",
            ", ".join(missing),
        )
        yield None
        return
    runs = BackgroundRuns(agent, pool, background, serving)
    runs.begin()
    try:
        yield runs
    finally:
        await runs.aclose()


async def wants_background(request: Request) -> bool:
    try:
        body = await request.json()
    except ValueError:
        return False  # MLflow's own handler answers the bad JSON
    return isinstance(body, dict) and body.get(BACKGROUND_KEY) is True


async def start_from_http(request: Request, runs: BackgroundRuns | None, server: Any) -> Any:
    """``POST /responses`` with ``background: true``: plan, store, start, answer at once."""
    from mlflow.genai.agent_server.utils import set_request_headers

    if runs is None:
        raise HTTPException(
            status_code=503,
            detail="background runs need the database, which is unavailable (see /memory/status)",
        )
    set_request_headers(dict(request.headers))
    data = dict(await request.json())
    streaming = bool(data.pop(STREAM_KEY, False))
    data.pop(BACKGROUND_KEY, None)
    try:
        request_data = server.validator.validate_and_convert_request(data)
    except ValueError as exc:
        raise HTTPException(
            status_code=400, detail=f"Invalid parameters for ResponsesAgent: {exc}"
        ) from None
    # Planned under the thread's lock (owner check included); the run task spawned in
    # this context joins that lock, so letting go here never leaves it unlocked.
    turn, held = await server._plan(request_data)
    try:
        stored = await runs.start(turn, request_data.model_dump(exclude_none=True))
    finally:
        await held.aclose()
    if streaming:
        return StreamingResponse(runs.follow(stored.response_id, 0), media_type="text/event-stream")
    return _response_object(stored, [])


def install_routes(
    app: FastAPI, runs: Callable[[], BackgroundRuns | None], settings: Settings
) -> None:
    """``GET /responses/{id}`` and ``POST /responses/{id}/cancel``."""

    def available() -> BackgroundRuns:
        current = runs()
        if current is None:
            raise HTTPException(
                status_code=503,
                detail="background runs need the database, which is unavailable (see /memory/status)",
            )
        return current

    async def check_caller(current: BackgroundRuns, response_id: str, request: Request) -> None:
        # A response answers only the user it was made for (as its thread does).
        stored = await load_response(current.pool, response_id)
        if stored is None or stored.user_id is None:
            return
        caller = resolve_user_id(
            dict(request.headers),
            None,
            None,
            deployed=settings.serving.deployed,
            trust_client_user_id=settings.serving.trust_client_user_id,
        )
        if caller is not None and caller != stored.user_id:
            raise HTTPException(status_code=404, detail=f"no response {response_id!r}")

    @app.get("/responses/{response_id}")
    async def retrieve_response(
        response_id: str,
        request: Request,
        stream: bool = Query(False, description="stream the events as server-sent events"),
        starting_after: int = Query(
            0, ge=0, description="replay the events after this sequence number"
        ),
    ) -> Any:
        current = available()
        await check_caller(current, response_id, request)
        if starting_after and not stream:
            raise HTTPException(
                status_code=400, detail="starting_after is only supported when stream=true."
            )
        if stream:
            if await load_response(current.pool, response_id) is None:
                raise HTTPException(status_code=404, detail=f"no response {response_id!r}")
            return StreamingResponse(
                current.follow(response_id, starting_after), media_type="text/event-stream"
            )
        return await current.retrieve(response_id)

    @app.post("/responses/{response_id}/cancel")
    async def cancel_response(response_id: str, request: Request) -> Any:
        current = available()
        await check_caller(current, response_id, request)
        return await current.cancel(response_id)


__all__ = [
    "BackgroundRuns",
    "BackgroundSettings",
    "ResumableOutputBuilder",
    "install_routes",
    "open_background_runs",
    "start_from_http",
    "wants_background",
]
