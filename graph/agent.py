"""The public entry point: open the configured backend and yield the compiled graph.

``open_agent()`` (sync) and ``aopen_agent()`` (async) read ``Settings`` once,
open the one pool the process shares, make sure the tables exist (the embedded
database and ``AUTO_SETUP=1`` create them; elsewhere that is the setup
script's job), and compile the graph with the Postgres checkpointer and the
long-term memory store (``store.postgres.MemoryStore`` on the same pool).

If memory cannot be had (no database, no tables), the graph is compiled
without a checkpointer and still answers, statelessly: one warning names the
cause and the fix, and ``graph.memory_available`` is False. With
``MEMORY_REQUIRED=1`` the same message is raised as ``MemoryUnavailableError``.
Long-term memory degrades the same way on its own: without its tables (or
with embeddings of another dimension than the stored vectors) the graph keeps
its checkpointer, has no store, and so binds no memory tools.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from checkpointing import (
    RUN_TABLES,
    AsyncMemoryAgentSaver,
    MemoryAgentSaver,
    ThreadLock,
    ThreadOwners,
    ToolCallLedger,
    amissing_tables,
    asetup_checkpoint_tables,
    asetup_thread_owners,
    asetup_tool_ledger,
    missing_tables,
    setup_checkpoint_tables,
    setup_thread_owners,
    setup_tool_ledger,
)
from database import Database, DatabaseUnavailable, aopen_database, open_database
from database.targets import EmbeddedTarget, LakebaseTarget, UrlTarget
from graph.builder import MemoryAgentGraph, build_graph
from graph.models import load_chat_model
from graph.settings import Settings
from graph.tools import BASE_TOOLS
from nodes.summarize_history import PromptBudget

logger = logging.getLogger("memory_agent")
_warned: set[str] = set()


class MemoryUnavailableError(RuntimeError):
    """Memory is required (MEMORY_REQUIRED=1) but cannot be had; one line with the fix."""


@dataclass(frozen=True)
class MemoryStatus:
    """Whether runs are saved, and if not, why and how to fix it."""

    available: bool
    backend: str
    problem: str | None = None
    fix: str | None = None

    def message(self) -> str:
        if self.available:
            return f"memory available: {self.backend}"
        return f"memory unavailable: {self.problem}. Answering without memory. Fix: {self.fix}"


def _fix_for_unreachable(settings: Settings) -> str:
    if (refused := _deployed_without_database(settings)) is not None:
        return str(refused.fix)
    target = settings.database
    if isinstance(target, LakebaseTarget):
        return (
            "check the LAKEBASE_* variables and Databricks authentication "
            "(DATABRICKS_HOST and a token or client id/secret); `python setup_lakebase.py --check` diagnoses"
        )
    if isinstance(target, UrlTarget):
        return "start that server or correct DATABASE_URL (unset it to use the embedded database)"
    return f"check that {target.home} is writable, or set MEMORY_AGENT_HOME to another folder"


def _fix_for_missing_tables(settings: Settings) -> str:
    return "run `python setup_lakebase.py` once (or set AUTO_SETUP=1 to create them at start)"


def _deployed_without_database(settings: Settings) -> MemoryStatus | None:
    """Deployed with no database configured: no embedded server (its data dies with the app).

    The app container's disk is wiped at every restart or redeploy, so an
    embedded Postgres there would "remember" until the next deploy and then
    silently forget; Databricks' own template turns memory off and says so.
    """
    if not (settings.serving.deployed and settings.is_embedded):
        return None
    return MemoryStatus(
        False,
        "no database",
        "deployed as a Databricks App with no database configured",
        "add a Lakebase database resource to the app (LAKEBASE_INSTANCE_NAME, or "
        "LAKEBASE_AUTOSCALING_ENDPOINT) or set DATABASE_URL",
    )


def _report(status: MemoryStatus, settings: Settings) -> None:
    if status.available:
        return
    message = status.message()
    if settings.memory_required:
        raise MemoryUnavailableError(message.replace("Answering without memory. ", ""))
    if message not in _warned:  # once per process, not once per graph
        _warned.add(message)
        logger.warning(message)


def _wants_setup(settings: Settings) -> bool:
    return isinstance(settings.database, EmbeddedTarget) or settings.auto_setup


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _status_for_tables(settings: Settings, database: Database, missing: list[str]) -> MemoryStatus:
    if missing:
        return MemoryStatus(
            available=False,
            backend=database.describe(),
            problem=f"tables {', '.join(missing)} are missing in {database.describe()}",
            fix=_fix_for_missing_tables(settings),
        )
    return MemoryStatus(available=True, backend=database.describe())


def _store_problem(settings: Settings, missing: list[str]) -> str | None:
    if not missing:
        return None
    return (
        f"long-term memory unavailable: tables {', '.join(missing)} are missing. "
        f"Fix: {_fix_for_missing_tables(settings)}"
    )


def _report_store_problem(problem: str, settings: Settings) -> None:
    if settings.memory_required:
        raise MemoryUnavailableError(problem)
    if problem not in _warned:
        _warned.add(problem)
        logger.warning(problem)


def _open_store(settings: Settings, database: Database) -> tuple[Any, str]:
    """The long-term memory store on the shared pool and a status line; None if unusable."""
    from store.postgres import MEMORY_TABLES, make_memory_store

    try:
        store = make_memory_store(database.pool, settings.memory)
        if _wants_setup(settings):
            store.setup()
        problem = _store_problem(settings, missing_tables(database.pool, MEMORY_TABLES))
        if problem is None:
            store.verify()  # a dimension mismatch is reported here, before any write
            if settings.memory.backend == "managed":
                return _managed(settings, store)
            return store, _store_available(settings)
    except Exception as exc:  # any failure to prepare storage means "no long-term memory"
        problem = f"long-term memory unavailable: {_first_line(exc)}"
    _report_store_problem(problem, settings)
    return None, problem


async def _aopen_store(settings: Settings, database: Database) -> tuple[Any, str]:
    """Async twin of ``_open_store``."""
    from store.postgres import MEMORY_TABLES, make_async_memory_store

    try:
        store = make_async_memory_store(database.pool, settings.memory)
        if _wants_setup(settings):
            await store.setup()
        problem = _store_problem(settings, await amissing_tables(database.pool, MEMORY_TABLES))
        if problem is None:
            await store.averify()
            if settings.memory.backend == "managed":
                managed = _wrap_managed(settings, store)
                await managed.averify()
                return managed, _managed_available(managed)
            return store, _store_available(settings)
    except Exception as exc:
        problem = f"long-term memory unavailable: {_first_line(exc)}"
    _report_store_problem(problem, settings)
    return None, problem


def _wrap_managed(settings: Settings, local: Any) -> Any:
    # Memories go to the managed store; the Postgres store stays for what is not memory
    # (the record of a user's threads), beside the checkpoints.
    from store.managed import make_managed_store

    return make_managed_store(settings.memory.managed_store, local=local)


def _managed(settings: Settings, local: Any) -> tuple[Any, str]:
    managed = _wrap_managed(settings, local)
    managed.verify()  # a missing store or a missing READ privilege is reported here
    return managed, _managed_available(managed)


def _managed_available(store: Any) -> str:
    return f"long-term memory available: {store.describe()}"


def _store_available(settings: Settings) -> str:
    memory = settings.memory
    return (
        f"long-term memory available: {memory.embeddings.describe()}, {memory.search_mode} search"
    )


def _memory_tools(settings: Settings) -> Any:
    from store.tools import make_memory_tools

    return make_memory_tools(settings.memory.dedup_threshold, settings.memory.shared_scope)


def _run_guards(database: Database) -> dict[str, Any]:
    """The ledger and the owner record on the work pool; the per-thread lock on its own
    sessions (database.connect)."""
    return {
        "ledger": ToolCallLedger(database.pool),
        "thread_lock": ThreadLock(database.lock_pool or database.pool),
        "thread_owners": ThreadOwners(database.pool),
    }


NO_DATABASE_FOR_STORE = "long-term memory unavailable: no database"


def _compile(
    settings: Settings,
    chat_model: BaseChatModel,
    tools: Sequence[BaseTool],
    status: MemoryStatus,
    checkpointer: Any,
    store: Any,
    store_status: str,
    guards: dict[str, Any],
    database: Database | None = None,
) -> MemoryAgentGraph:
    """Compile the graph on what was opened and label it with the memory status."""
    extraction = None
    if settings.memory.extract_after_turn and store is not None and checkpointer is not None:
        from store.extraction import ExtractionQueue

        extraction = ExtractionQueue(cast(Database, database).pool)
    graph = build_graph(
        checkpointer=checkpointer,
        store=store,
        model=chat_model,
        tools=[*BASE_TOOLS, *tools],
        user_tools=_memory_tools(settings),
        recall_limit=settings.memory.recall_limit,
        shared_scope=settings.memory.shared_scope,
        extraction=extraction,
        prompt_budget=PromptBudget(settings.prompt_tokens) if settings.prompt_tokens else None,
        **guards,
    )
    graph.extraction_queue = extraction
    graph.memory_available = status.available
    graph.memory_status = status.message()
    graph.long_term_memory_status = store_status
    return graph


@contextmanager
def open_agent(
    settings: Settings | None = None,
    *,
    model: BaseChatModel | None = None,
    workspace_client: Any = None,
    tools: Sequence[BaseTool] = (),
) -> Iterator[MemoryAgentGraph]:
    """Open the configured backend and yield the compiled graph; close everything on exit.

    ``with open_agent() as graph: graph.invoke({"messages": [...]}, config=...)``

    ``tools`` are added to the built-in ones (mark sensitive ones with
    ``metadata={"requires_approval": True}``, see ``graph.tool_markers``).
    """
    settings = settings or Settings.from_env()
    chat_model = model or load_chat_model(settings.model)
    with ExitStack() as stack:
        checkpointer = None
        guards: dict[str, Any] = {}
        database: Database | None = None
        try:
            if (refused := _deployed_without_database(settings)) is not None:
                raise DatabaseUnavailable(str(refused.problem))
            database = stack.enter_context(
                open_database(
                    settings.database,
                    workspace_client=workspace_client,
                    lock_pool_size=settings.max_concurrent_runs,
                )
            )
        except DatabaseUnavailable as exc:
            status = MemoryStatus(
                False, settings.database.describe(), str(exc), _fix_for_unreachable(settings)
            )
        else:
            try:
                # On a managed database a role granted only what the agent needs cannot
                # run CREATE TABLE IF NOT EXISTS even for tables that exist, so
                # AUTO_SETUP acts only when something is missing.
                if _wants_setup(settings) and (
                    settings.is_embedded or missing_tables(database.pool, RUN_TABLES)
                ):
                    setup_checkpoint_tables(database.pool)
                    setup_tool_ledger(database.pool)
                    setup_thread_owners(database.pool)
                status = _status_for_tables(
                    settings, database, missing_tables(database.pool, RUN_TABLES)
                )
            # Any failure to prepare storage means "no memory", reported once.
            except Exception as exc:
                status = MemoryStatus(
                    False, database.describe(), _first_line(exc), _fix_for_unreachable(settings)
                )
            if status.available:
                checkpointer = MemoryAgentSaver(
                    database.pool, keep_checkpoints=settings.keep_checkpoints
                )
                guards = _run_guards(database)
        _report(status, settings)
        store, store_status = (
            _open_store(settings, cast(Database, database))
            if status.available
            else (None, NO_DATABASE_FOR_STORE)
        )
        graph = _compile(
            settings, chat_model, tools, status, checkpointer, store, store_status, guards, database
        )
        if graph.extraction_queue is not None:
            from graph.extraction import TurnExtractor

            extractor = TurnExtractor(
                graph, graph.extraction_queue, chat_model, settings.memory.dedup_threshold
            )
            extractor.start()  # also does turns a process that died left queued
            stack.callback(extractor.stop)
            graph.extractor = extractor
        yield graph


@asynccontextmanager
async def aopen_agent(
    settings: Settings | None = None,
    *,
    model: BaseChatModel | None = None,
    workspace_client: Any = None,
    tools: Sequence[BaseTool] = (),
) -> AsyncIterator[MemoryAgentGraph]:
    """Async twin of ``open_agent``: the graph uses the async checkpointer and pool."""
    settings = settings or Settings.from_env()
    chat_model = model or load_chat_model(settings.model)
    async with AsyncExitStack() as stack:
        checkpointer = None
        guards: dict[str, Any] = {}
        database: Database | None = None
        try:
            if (refused := _deployed_without_database(settings)) is not None:
                raise DatabaseUnavailable(str(refused.problem))
            database = await stack.enter_async_context(
                aopen_database(
                    settings.database,
                    workspace_client=workspace_client,
                    lock_pool_size=settings.max_concurrent_runs,
                )
            )
        except DatabaseUnavailable as exc:
            status = MemoryStatus(
                False, settings.database.describe(), str(exc), _fix_for_unreachable(settings)
            )
        else:
            try:
                if _wants_setup(settings) and (
                    settings.is_embedded or await amissing_tables(database.pool, RUN_TABLES)
                ):
                    await asetup_checkpoint_tables(database.pool)
                    await asetup_tool_ledger(database.pool)
                    await asetup_thread_owners(database.pool)
                missing = await amissing_tables(database.pool, RUN_TABLES)
                status = _status_for_tables(settings, database, missing)
            except Exception as exc:
                status = MemoryStatus(
                    False, database.describe(), _first_line(exc), _fix_for_unreachable(settings)
                )
            if status.available:
                checkpointer = AsyncMemoryAgentSaver(
                    database.pool, keep_checkpoints=settings.keep_checkpoints
                )
                guards = _run_guards(database)
        _report(status, settings)
        store, store_status = (
            await _aopen_store(settings, cast(Database, database))
            if status.available
            else (None, NO_DATABASE_FOR_STORE)
        )
        graph = _compile(
            settings, chat_model, tools, status, checkpointer, store, store_status, guards, database
        )
        if graph.extraction_queue is not None:
            from graph.extraction import AsyncTurnExtractor

            extractor = AsyncTurnExtractor(
                graph, graph.extraction_queue, chat_model, settings.memory.dedup_threshold
            )
            extractor.start()
            stack.push_async_callback(extractor.stop)
            graph.extractor = extractor
        yield graph
