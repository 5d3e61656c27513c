"""The product's server with an offline model that streams its answers slowly, for the console tests.

The offline model answers in one piece, instantly; a browser test needs to
see tokens arrive and to reload the page while a run is still going. This
model gives the same answers and tool calls as the offline model, word by
word, ``CONSOLE_TEST_TOKEN_DELAY`` seconds apart (tool calls come whole).
Everything else is the real agent: ``aopen_agent`` on DATABASE_URL, memory
tools, approvals. Run it with
``uvicorn --factory tests.serving.console_app:create_test_app``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from graph.agent import aopen_agent
from graph.offline_model import OfflineChatModel, respond
from graph.settings import Settings
from serving.server import create_app


def _chunks(messages: list[BaseMessage], tool_names: tuple[str, ...]) -> list[AIMessageChunk]:
    answer = respond(messages, tool_names)
    if answer.tool_calls:
        return [
            AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": json.dumps(call["args"]),
                        "id": call["id"],
                        "index": index,
                        "type": "tool_call_chunk",
                    }
                    for index, call in enumerate(answer.tool_calls)
                ],
            )
        ]
    words = str(answer.content).split(" ")
    return [AIMessageChunk(content=word if i == 0 else f" {word}") for i, word in enumerate(words)]


class SlowStreamingOfflineModel(OfflineChatModel):
    """The offline model's answers, streamed a word at a time."""

    delay: float = 0.1

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in _chunks(messages, self.tool_names):
            time.sleep(self.delay)
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(messages, self.tool_names):
            await asyncio.sleep(self.delay)
            if run_manager is not None and isinstance(chunk.content, str) and chunk.content:
                await run_manager.on_llm_new_token(chunk.content, chunk=chunk)
            yield ChatGenerationChunk(message=chunk)


def create_test_app() -> FastAPI:
    model = SlowStreamingOfflineModel(
        delay=float(os.environ.get("CONSOLE_TEST_TOKEN_DELAY", "0.1"))
    )

    def open_graph(settings: Settings) -> AbstractAsyncContextManager[Any]:
        return aopen_agent(settings, model=model)

    return create_app(open_graph=open_graph, tracing=False)
