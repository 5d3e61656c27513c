"""Extract durable facts from finished turns, after the answer, once per turn.

``nodes.queue_extraction`` records each finished turn (``store.extraction``);
``TurnExtractor`` (a thread beside a sync agent) and ``AsyncTurnExtractor`` (a
task beside an async one) claim those records, read the turn's user message
from the thread, find the facts in it and save them through
``store.memories.save_memory`` — the tools' path, so a new value of a known
subject updates it, a restatement changes nothing, and every change is a
revision attributed to the turn's thread and run (source ``extraction``).

Finding facts: with the offline model, the deterministic rules of
``store.extraction.facts_in``; with a real model, one extra model call that
lists the facts (LangMem's memory managers do the same after a conversation;
we do it per turn, as the Databricks skill asks). Turns left by a process that
died are picked up when the next process opens the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from store import memories
from store.config import DEFAULT_DEDUP_THRESHOLD
from store.extraction import ExtractionQueue, Turn, facts_in
from store.revisions import Provenance

logger = logging.getLogger("memory_agent")

EXTRACTION_PROMPT = """List the durable facts about the user stated in their message below:
preferences, circumstances, plans that will still hold next week. One fact per line, each
self-contained and in the first person as the user would say it ("my favourite colour is
green", "I live in Lyon"). Nothing else; reply NONE if there is no such fact."""
IDLE_WAIT_SECONDS = 2.0


def _user_text(messages: list[BaseMessage], turn_id: str) -> str | None:
    for message in messages:
        if isinstance(message, HumanMessage) and message.id == turn_id:
            return message.text if hasattr(message, "text") else str(message.content)
    return None


def _parse_listed(text: str) -> list[str]:
    lines = [line.strip().lstrip("-*0123456789. ").strip() for line in text.splitlines()]
    return [line for line in lines if line and line.upper() != "NONE"][:20]


class _Extraction:
    """What the sync and async extractors share: how facts are found and saved."""

    def __init__(
        self,
        graph: Any,
        queue: ExtractionQueue,
        model: BaseChatModel | None,
        dedup_threshold: float,
    ) -> None:
        from graph.offline_model import OfflineChatModel

        self.graph = graph
        self.queue = queue
        self.model = None if model is None or isinstance(model, OfflineChatModel) else model
        self.dedup_threshold = dedup_threshold
        self.turns_done = 0

    def _provenance(self, turn: Turn) -> Provenance:
        return Provenance(source="extraction", thread_id=turn.thread_id, run_id=turn.run_id)

    def _prompt(self, text: str) -> list[BaseMessage]:
        return [SystemMessage(EXTRACTION_PROMPT), HumanMessage(text)]


class TurnExtractor(_Extraction):
    """Extract facts from queued turns in a background thread (beside ``open_agent``)."""

    def __init__(
        self,
        graph: Any,
        queue: ExtractionQueue,
        model: BaseChatModel | None = None,
        dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    ) -> None:
        super().__init__(graph, queue, model, dedup_threshold)
        self._stopping = threading.Event()
        self._draining = False
        self._thread: threading.Thread | None = None

    def facts(self, text: str) -> list[str]:
        if self.model is None:
            return facts_in(text)
        reply = self.model.invoke(self._prompt(text))
        return _parse_listed(str(reply.content))

    def extract(self, turn: Turn) -> int:
        """Save the facts of one claimed turn; return how many memories changed."""
        state = self.graph.get_state({"configurable": {"thread_id": turn.thread_id}})
        text = _user_text(state.values.get("messages", []), turn.turn_id)
        changed = 0
        for fact in self.facts(text) if text else []:
            saved = memories.save_memory(
                self.graph.store,
                turn.user_id,
                fact,
                dedup_threshold=self.dedup_threshold,
                provenance=self._provenance(turn),
            )
            changed += not saved.unchanged
        return changed

    def run_pending(self) -> int:
        """Extract every queued turn now; return how many turns were done."""
        done = 0
        while not self._stopping.is_set() and (turn := self.queue.claim()) is not None:
            try:
                self.queue.finish(turn, self.extract(turn))
            except Exception:  # one turn's failure must not stop the others; retried later
                logger.exception("fact extraction failed for thread %s", turn.thread_id)
                continue
            done += 1
        self.turns_done += done
        return done

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.queue.wake.clear()
            try:
                self.run_pending()
            except Exception:
                logger.exception("fact extraction worker: database unavailable; retrying")
            if self._draining:
                return
            self.queue.wake.wait(IDLE_WAIT_SECONDS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="memory-extraction", daemon=True)
        self._thread.start()

    def stop(self, drain_seconds: float = 10.0) -> None:
        """Finish what is queued (for up to ``drain_seconds``), then stop the thread.

        A turn still queued after that stays queued for the next process.
        """
        if self._thread is None:
            return
        self._draining = True
        self.queue.wake.set()
        self._thread.join(timeout=drain_seconds)
        self._stopping.set()  # between turns: a turn in progress is finished, never cut
        self._thread.join()
        self._thread = None


class AsyncTurnExtractor(_Extraction):
    """Extract facts from queued turns in an asyncio task (beside ``aopen_agent``)."""

    def __init__(
        self,
        graph: Any,
        queue: ExtractionQueue,
        model: BaseChatModel | None = None,
        dedup_threshold: float = DEFAULT_DEDUP_THRESHOLD,
    ) -> None:
        super().__init__(graph, queue, model, dedup_threshold)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._draining = False

    async def facts(self, text: str) -> list[str]:
        if self.model is None:
            return facts_in(text)
        reply = await self.model.ainvoke(self._prompt(text))
        return _parse_listed(str(reply.content))

    async def extract(self, turn: Turn) -> int:
        state = await self.graph.aget_state({"configurable": {"thread_id": turn.thread_id}})
        text = _user_text(state.values.get("messages", []), turn.turn_id)
        changed = 0
        for fact in await self.facts(text) if text else []:
            saved = await memories.asave_memory(
                self.graph.store,
                turn.user_id,
                fact,
                dedup_threshold=self.dedup_threshold,
                provenance=self._provenance(turn),
            )
            changed += not saved.unchanged
        return changed

    async def run_pending(self) -> int:
        done = 0
        while not self._stopping and (turn := await self.queue.aclaim()) is not None:
            try:
                await self.queue.afinish(turn, await self.extract(turn))
            except Exception:
                logger.exception("fact extraction failed for thread %s", turn.thread_id)
                continue
            done += 1
        self.turns_done += done
        return done

    async def _loop(self) -> None:
        while not self._stopping:
            self.queue.wake.clear()
            try:
                await self.run_pending()
            except Exception:
                logger.exception("fact extraction worker: database unavailable; retrying")
            if self._draining:
                return
            # The queue's event is a threading.Event: poll it without blocking the loop.
            for _ in range(int(IDLE_WAIT_SECONDS / 0.05)):
                if self.queue.wake.is_set() or self._stopping:
                    break
                await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self, drain_seconds: float = 10.0) -> None:
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.run_pending(), drain_seconds)
        except TimeoutError:
            logger.warning(
                "fact extraction: turns still queued at shutdown; the next start does them"
            )
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
