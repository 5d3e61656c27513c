"""Wire the nodes into a StateGraph and compile it; no node logic lives here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

# The one way to give a node both a sync and an async body (LangGraph's own
# ToolNode is built on it); a plain async function would make graph.invoke fail.
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.pregel._task_status import read_task_statuses
from langgraph.store.base import BaseStore
from langgraph.types import Command, Interrupt

from checkpointing.ownership import ThreadOfAnotherUser, ThreadOwners, check_owner, legacy_owner
from checkpointing.saver import reuse_head
from checkpointing.thread_lock import ThreadLock
from checkpointing.threads import thread_id_from_config
from checkpointing.tool_ledger import ToolCallLedger
from graph.context import Context
from graph.state import State
from graph.tools import BASE_TOOLS
from graph.validation import InvalidInput, validate_run
from nodes import (
    call_model,
    call_model_sync,
    recall_memories,
    recall_memories_sync,
    review_tool_calls,
    review_tool_calls_sync,
    route_model_output,
    run_tools,
)
from nodes.queue_extraction import queue_extraction, queue_extraction_sync
from nodes.recall_memories import DEFAULT_RECALL_LIMIT
from nodes.summarize_history import PromptBudget
from store.extraction import ExtractionQueue
from store.revisions import RUN_ID_KEY

DEFAULT_PROMPT_BUDGET = PromptBudget()


class MemoryAgentGraph(CompiledStateGraph[State, Context, State, State]):
    """The compiled graph, guarding each run before LangGraph touches the thread.

    ``invoke`` and ``ainvoke`` go through ``stream`` and ``astream``, and
    ``update_state`` through ``bulk_update_state``, so these overrides cover
    every entry point. For each run on a thread they:

    1. check the input (``validate_run``) before LangGraph persists it;
    2. hold the thread's advisory lock for the whole run (``thread_lock``):
       a second run gets ``ThreadBusyError``, or waits ``wait_for_thread``
       seconds (``graph.invoke(..., wait_for_thread=30)``);
    3. answer a new message on a thread that waits for an approval by first
       declining the pending call(s) (a rejection whose reason says the user
       moved on, so the model says so), then running the message: the thread
       is never stuck on a card nobody answers, and no tool call is left
       without its answer; refuse a resume when nothing waits, and resume at
       the thread's head even if the config names the head checkpoint (which
       LangGraph would otherwise replay, langgraph#7361);
    4. check the caller owns the thread (``checkpointing.ownership``), before
       anything else touches it: the user of ``context`` (or
       ``configurable["user_id"]``) must be the one the thread was started by,
       and a new thread is recorded as the caller's; an ``update_state`` is
       checked the same way;
    5. persist every step before the next starts (``durability="sync"`` unless
       the caller chooses): a tool call id must be saved before the tool runs,
       or a crash could make the model issue the same action under a new id.

    ``memory_available`` and ``memory_status`` say whether runs are saved.
    """

    memory_available: bool = False
    memory_status: str = "no checkpointer: runs are not saved"
    long_term_memory_status: str = "no store: no long-term memory"
    thread_lock: ThreadLock | None = None
    extraction_queue: ExtractionQueue | None = None
    extractor: Any = None
    """The fact-extraction worker beside this graph (graph.extraction), when extraction is on."""
    thread_owners: ThreadOwners | None = None
    chat_model: BaseChatModel | None = None
    """The model the graph calls, for one-off requests answered outside any thread."""

    def stream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        wait_for_thread: float | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        validate_run(input, config, needs_thread=self.checkpointer is not None)
        config = with_run_id(config)
        thread_id = thread_id_from_config(config)
        if thread_id is None or not isinstance(self.checkpointer, BaseCheckpointSaver):
            return super().stream(input, config, **kwargs)
        if kwargs.get("durability") is None:
            kwargs["durability"] = "sync"
        return self._guarded_stream(input, config or {}, thread_id, wait_for_thread, kwargs)

    def _guarded_stream(
        self,
        input: Any,
        config: RunnableConfig,
        thread_id: str,
        wait_for_thread: float | None,
        kwargs: dict[str, Any],
    ) -> Iterator[Any]:
        # A generator, so the lock is taken when the run starts and always released.
        lock = (
            self.thread_lock.hold(thread_id, wait_for_thread)
            if self.thread_lock is not None
            else nullcontext()
        )
        assert isinstance(self.checkpointer, BaseCheckpointSaver)
        with lock:
            saved = self.checkpointer.get_tuple(_head_of(config, thread_id))
            head = ThreadHead.of(saved)
            caller = _caller(config, kwargs)
            recorded = None
            if self.thread_owners is not None:
                recorded = self.thread_owners.owner(thread_id)
                check_owner(thread_id, _owner(recorded, head), caller)
            # One call is paused at a time: declining it may pause the message's next one.
            while (decline := _decline_for_new_message(head, input, config)) is not None:
                with reuse_head(saved):
                    yield from super().stream(decline, _head(config), **kwargs)
                saved = self.checkpointer.get_tuple(_head_of(config, thread_id))
                head = ThreadHead.of(saved)
            config = _checked_run(head, input, config, thread_id, kwargs)
            if self.thread_owners is not None and recorded is None:
                claimed = self.thread_owners.claim(thread_id, _owner(None, head) or caller)
                check_owner(thread_id, claimed, caller)
            with reuse_head(saved):  # the run starts from this read instead of reading again
                yield from super().stream(input, config, **kwargs)

    async def astream(
        self,
        input: Any,
        config: RunnableConfig | None = None,
        *,
        wait_for_thread: float | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        validate_run(input, config, needs_thread=self.checkpointer is not None)
        config = with_run_id(config)
        thread_id = thread_id_from_config(config)
        if thread_id is None or not isinstance(self.checkpointer, BaseCheckpointSaver):
            async for chunk in super().astream(input, config, **kwargs):
                yield chunk
            return
        if kwargs.get("durability") is None:
            kwargs["durability"] = "sync"
        config = config or {}
        checkpointer = self.checkpointer
        lock = (
            self.thread_lock.ahold(thread_id, wait_for_thread)
            if self.thread_lock is not None
            else nullcontext()
        )
        async with lock:
            saved = await checkpointer.aget_tuple(_head_of(config, thread_id))
            head = ThreadHead.of(saved)
            caller = _caller(config, kwargs)
            owners = self.thread_owners
            recorded = None
            if owners is not None:
                recorded = await owners.aowner(thread_id)
                check_owner(thread_id, _owner(recorded, head), caller)
            # One call is paused at a time: declining it may pause the message's next one.
            while (decline := _decline_for_new_message(head, input, config)) is not None:
                with reuse_head(saved):
                    async for chunk in super().astream(decline, _head(config), **kwargs):
                        yield chunk
                saved = await checkpointer.aget_tuple(_head_of(config, thread_id))
                head = ThreadHead.of(saved)
            config = _checked_run(head, input, config, thread_id, kwargs)
            if owners is not None and recorded is None:
                claimed = await owners.aclaim(thread_id, _owner(None, head) or caller)
                check_owner(thread_id, claimed, caller)
            with reuse_head(saved):
                async for chunk in super().astream(input, config, **kwargs):
                    yield chunk

    def owner_of(self, thread_id: str) -> str | None:
        """Who ``thread_id`` belongs to: a user id, ``""`` (ownerless), or None (no history).

        Without a ``thread_owners`` record: None (ownership is not tracked).
        """
        if self.thread_owners is None:
            return None
        recorded = self.thread_owners.owner(thread_id)
        if recorded is not None:
            return recorded
        return _owner(None, self.get_state({"configurable": {"thread_id": thread_id}}))

    async def aowner_of(self, thread_id: str) -> str | None:
        """Async twin of ``owner_of``."""
        if self.thread_owners is None:
            return None
        recorded = await self.thread_owners.aowner(thread_id)
        if recorded is not None:
            return recorded
        return _owner(None, await self.aget_state({"configurable": {"thread_id": thread_id}}))

    def bulk_update_state(
        self, config: RunnableConfig, supersteps: Sequence[Sequence[Any]]
    ) -> RunnableConfig:
        thread_id = thread_id_from_config(config)
        if thread_id is None:
            return super().bulk_update_state(config, supersteps)
        with self.thread_lock.hold(thread_id) if self.thread_lock else nullcontext():
            if self.thread_owners is not None:
                recorded = self.thread_owners.owner(thread_id)
                head = self.get_state(_head(config))
                caller = _caller(config, {})
                check_owner(thread_id, _owner(recorded, head), caller)
                if recorded is None:
                    self.thread_owners.claim(thread_id, _owner(None, head) or caller)
            return super().bulk_update_state(config, supersteps)

    async def abulk_update_state(
        self, config: RunnableConfig, supersteps: Sequence[Sequence[Any]]
    ) -> RunnableConfig:
        thread_id = thread_id_from_config(config)
        if thread_id is None:
            return await super().abulk_update_state(config, supersteps)
        async with self.thread_lock.ahold(thread_id) if self.thread_lock else nullcontext():
            if self.thread_owners is not None:
                recorded = await self.thread_owners.aowner(thread_id)
                head = await self.aget_state(_head(config))
                caller = _caller(config, {})
                check_owner(thread_id, _owner(recorded, head), caller)
                if recorded is None:
                    await self.thread_owners.aclaim(thread_id, _owner(None, head) or caller)
            return await super().abulk_update_state(config, supersteps)


def with_run_id(config: RunnableConfig | None) -> RunnableConfig:
    """``config`` with ``configurable["agent_run_id"]``: the caller's run id, or a new one.

    Memory revisions record the run a change came from (``store.tools.provenance``).
    Not ``configurable["run_id"]``: LangChain copies configurable values into the
    run's metadata, and LangGraph takes a run whose ``metadata["run_id"]`` equals the
    checkpoint's as a re-entry into that run (and ignores its input), which would
    swallow the message sent after a declined approval.
    """
    config = config or {}
    configurable = dict(config.get("configurable") or {})
    if configurable.get(RUN_ID_KEY) is None:
        given = configurable.get("run_id") or config.get("run_id")
        configurable[RUN_ID_KEY] = str(given or uuid.uuid4())
    return {**config, "configurable": configurable}


@dataclass(frozen=True)
class ThreadHead:
    """What the run guard needs of a thread's latest checkpoint, read without rebuilding its state.

    ``get_state`` would rebuild every channel (the whole conversation) only for
    the guard to look at the pending interrupts; the run then reads and
    rebuilds the thread again. The guard reads the checkpoint tuple once and
    hands it to the run (``checkpointing.saver.reuse_head``).
    """

    config: RunnableConfig
    metadata: Any
    interrupts: tuple[Interrupt, ...]

    @classmethod
    def of(cls, saved: CheckpointTuple | None) -> ThreadHead:
        if saved is None:
            return cls(config={}, metadata=None, interrupts=())
        # Interrupts of tasks that have not finished: the questions still waiting.
        waiting = tuple(
            interrupt
            for status in read_task_statuses(saved.pending_writes or ()).values()
            if not status.output
            for interrupt in status.interrupts
        )
        return cls(config=saved.config, metadata=saved.metadata, interrupts=waiting)


def _head(config: RunnableConfig) -> RunnableConfig:
    """``config`` without a checkpoint id: the thread's latest state."""
    configurable = {
        k: v for k, v in (config.get("configurable") or {}).items() if k != "checkpoint_id"
    }
    return {**config, "configurable": configurable}


def _head_of(config: RunnableConfig, thread_id: str) -> RunnableConfig:
    """The config that reads ``thread_id``'s latest checkpoint (an int id as its string)."""
    head = _head(config)
    return {**head, "configurable": {**head["configurable"], "thread_id": thread_id}}


def _caller(config: RunnableConfig, kwargs: dict[str, Any]) -> str | None:
    """The user a run or state update is made by: its context's, else ``configurable``'s."""
    user_id = getattr(kwargs.get("context"), "user_id", None)
    if user_id is None:
        user_id = (config.get("configurable") or {}).get("user_id")
    return None if user_id is None else str(user_id)


def _owner(recorded: str | None, head: Any) -> str | None:
    """The thread's owner: the record, else (saved before records) the head's, else None (new)."""
    if recorded is not None:
        return recorded
    if head.metadata is None:
        return None  # no history: a new thread
    return legacy_owner(head.metadata)


DECLINED_FOR_NEW_MESSAGE = (
    "the user sent a new message instead of answering this request, so it was not run"
)


def _decline_for_new_message(head: Any, input: Any, config: RunnableConfig) -> Command | None:
    """The rejection of every pending call, when new input arrives on a waiting thread.

    (A run that names an older checkpoint forks from it and declines nothing.)
    """
    asked_id = (config.get("configurable") or {}).get("checkpoint_id")
    if not head.interrupts or input is None or isinstance(input, Command) or asked_id:
        return None
    decision = {"action": "reject", "reason": DECLINED_FOR_NEW_MESSAGE}
    return Command(resume={pending.id: decision for pending in head.interrupts})


def _checked_run(
    head: Any, input: Any, config: RunnableConfig, thread_id: str, kwargs: dict[str, Any]
) -> RunnableConfig:
    """Refuse runs that would corrupt the thread; return the config to run with.

    A resume runs only as the user the paused request was made for (recorded
    in it from the run's trusted context): any other caller, one without a
    user id included, is refused, so an approval can never apply a memory
    operation to another user's memories.
    """
    waiting = bool(head.interrupts)
    head_id = (head.config or {}).get("configurable", {}).get("checkpoint_id")
    asked_id = (config.get("configurable") or {}).get("checkpoint_id")
    if isinstance(input, Command) and input.resume is not None:
        if not waiting:
            raise InvalidInput(
                f"thread {thread_id!r} is not waiting for a decision; nothing to resume"
            )
        if asked_id is not None and asked_id != head_id:
            raise InvalidInput(
                f"checkpoint {asked_id} is not the latest of thread {thread_id!r}: a resume "
                "continues the latest one; fork the older checkpoint to branch from it"
            )
        _check_resuming_user(head, config, thread_id, kwargs)
        return _head(config)  # resuming at the head, never a replay (langgraph#7361)
    return config


def _check_resuming_user(
    head: Any, config: RunnableConfig, thread_id: str, kwargs: dict[str, Any]
) -> None:
    requested_for = {
        pending.value.get("user_id")
        for pending in head.interrupts
        if isinstance(pending.value, dict) and pending.value.get("user_id") is not None
    }
    caller = _caller(config, kwargs)
    # Never filled in for a caller without one: that would let anyone act as the user.
    if requested_for and requested_for != {caller}:
        raise ThreadOfAnotherUser(thread_id, "(the paused request's user)", caller)


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    *,
    model: BaseChatModel | None = None,
    tools: Sequence[BaseTool] = tuple(BASE_TOOLS),
    user_tools: Sequence[BaseTool] = (),
    ledger: ToolCallLedger | None = None,
    thread_lock: ThreadLock | None = None,
    thread_owners: ThreadOwners | None = None,
    recall_limit: int = DEFAULT_RECALL_LIMIT,
    shared_scope: str | None = None,
    extraction: ExtractionQueue | None = None,
    prompt_budget: PromptBudget | None = DEFAULT_PROMPT_BUDGET,
) -> MemoryAgentGraph:
    """Compile the agent graph with any checkpointer and store (None: stateless).

    ``tools`` are bound on every run; ``user_tools`` (the memory tools,
    ``store.tools.make_memory_tools()``) only on runs that have a user id and a store. ``model`` defaults to the
    offline model. Each turn starts by recalling up to ``recall_limit`` of the
    user's memories relevant to the latest message (and of ``shared_scope``'s, marked
    shared, when one is configured).
    ``ledger`` runs side-effecting tool calls at most once per call id;
    ``thread_lock`` allows one run at a time per thread and ``thread_owners``
    records and checks who each thread belongs to (all on the shared pool;
    without ``thread_owners`` only a resume's user is checked).
    With ``extraction`` each finished turn is queued there for fact extraction
    (``graph.extraction`` does it, after the answer).
    ``prompt_budget`` bounds what each model call is sent (None: every message).
    """
    if model is None:
        from graph.offline_model import OfflineChatModel

        model = OfflineChatModel()
    all_tools = (*tools, *user_tools)
    builder = StateGraph(State, context_schema=Context)
    builder.add_node(
        "recall_memories",
        RunnableCallable(
            recall_memories_sync,
            recall_memories,
            name="recall_memories",
            limit=recall_limit,
            shared_scope=shared_scope,
        ),
    )
    builder.add_node(
        "call_model",
        RunnableCallable(
            call_model_sync,
            call_model,
            name="call_model",
            model=model,
            tools=tuple(tools),
            user_tools=tuple(user_tools),
            budget=prompt_budget,
        ),
    )
    builder.add_node(
        "review_tool_calls",
        RunnableCallable(
            review_tool_calls_sync,
            review_tool_calls,
            name="review_tool_calls",
            tools=all_tools,
            can_pause=checkpointer is not None,
        ),
        destinations=("run_tools", "call_model"),
    )
    builder.add_node("run_tools", run_tools(all_tools, ledger))
    builder.add_edge(START, "recall_memories")
    builder.add_edge("recall_memories", "call_model")
    if extraction is None:
        builder.add_conditional_edges("call_model", route_model_output, ["review_tool_calls", END])
    else:
        builder.add_node(
            "queue_extraction",
            RunnableCallable(
                queue_extraction_sync, queue_extraction, name="queue_extraction", queue=extraction
            ),
        )
        builder.add_conditional_edges(
            "call_model",
            route_model_output,
            {"review_tool_calls": "review_tool_calls", END: "queue_extraction"},
        )
        builder.add_edge("queue_extraction", END)
    builder.add_edge("run_tools", "call_model")
    compiled = builder.compile(checkpointer=checkpointer, store=store, name="memory-agent")
    # StateGraph.compile has no hook for the compiled class; switching the class of
    # the fresh instance adds our run guards without copying compile's body.
    compiled.__class__ = MemoryAgentGraph
    assert isinstance(compiled, MemoryAgentGraph)
    compiled.thread_lock = thread_lock
    compiled.thread_owners = thread_owners
    compiled.chat_model = model
    return compiled
