"""The stock reference server for ``bench.serving``: built the way Databricks' template builds it.

Databricks' agent-langgraph-advanced template serves a LangGraph agent on
MLflow's ``AgentServer``: ``@invoke``/``@stream`` handlers, a checkpointer and
a store opened once in the app's lifespan (LangGraph's stock
``AsyncPostgresSaver`` and ``AsyncPostgresStore`` here, on one
``AsyncConnectionPool`` of the default size, as databricks-langchain's
Lakebase classes are), the graph compiled per request, the request's messages
sent as the run's input, no thread lock. The graph is ours (``build_graph``
with the offline model and the memory tools, no ledger, no lock), so the two
servers differ only in how they serve it.

    python -m bench.stock_server DATABASE_URL --port PORT
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mlflow.genai.agent_server import AgentServer, invoke, stream
from mlflow.types.responses import (
    ResponsesAgentRequest,
    ResponsesAgentResponse,
    to_chat_completions_input,
)

from graph.context import Context
from serving.responses import OutputBuilder


class _Resources:
    checkpointer: Any = None
    store: Any = None


_resources = _Resources()


def _graph() -> Any:
    from graph.builder import build_graph
    from graph.offline_model import OfflineChatModel
    from store.tools import make_memory_tools

    return build_graph(
        checkpointer=_resources.checkpointer,
        store=_resources.store,
        model=OfflineChatModel(),
        user_tools=make_memory_tools(),
    )


@stream()
async def stream_handler(request: ResponsesAgentRequest) -> AsyncIterator[dict[str, Any]]:
    custom_inputs = request.custom_inputs or {}
    thread_id = custom_inputs.get("thread_id") or str(uuid.uuid4())
    user_id = custom_inputs.get("user_id")
    config = {"configurable": {"thread_id": thread_id}}
    messages = to_chat_completions_input([item.model_dump() for item in request.input])
    builder = OutputBuilder()
    for event in builder.start():
        yield event
    async for mode, chunk in _graph().astream(
        {"messages": messages},
        config,
        context=Context(user_id=user_id),
        stream_mode=["messages", "updates"],
    ):
        events = (
            builder.on_message_chunk(*chunk) if mode == "messages" else builder.on_update(chunk)
        )
        for event in events:
            yield event
    yield builder.completed({"thread_id": thread_id, "user_id": user_id})


@invoke()
async def invoke_handler(request: ResponsesAgentRequest) -> ResponsesAgentResponse:
    items = [
        event["item"]
        async for event in stream_handler(request)
        if event["type"] == "response.output_item.done"
    ]
    return ResponsesAgentResponse(output=items, custom_outputs={})


def create_app(database_url: str) -> Any:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.store.postgres import AsyncPostgresStore
    from psycopg_pool import AsyncConnectionPool

    from database.connect import CONNECTION_KWARGS
    from store.embeddings import HashEmbeddings

    server = AgentServer("ResponsesAgent")
    app = server.app
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            database_url, kwargs=CONNECTION_KWARGS, max_size=10, open=False
        )
        await pool.open()
        try:
            _resources.checkpointer = AsyncPostgresSaver(pool)
            await _resources.checkpointer.setup()
            embeddings = HashEmbeddings()
            dims = len(embeddings.embed_query("dimension probe"))
            _resources.store = AsyncPostgresStore(
                pool,
                index={"dims": dims, "embed": embeddings, "fields": ["content"]},
            )
            await _resources.store.setup()
            async with outer(app) as state:
                yield state
        finally:
            await pool.close()

    app.router.lifespan_context = lifespan
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.stock_server")
    parser.add_argument("database_url")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.database_url), host="127.0.0.1", port=args.port, log_level="warning"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
