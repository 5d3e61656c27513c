"""The ``memory-agent`` command line: chat, ask, threads, history, status, pending, resume,
fork, memories (list, search, delete, history, restore), forget-user, shared, consolidate,
export-user, import-user, import-template-memories, delete-thread, sweep, log-model.

Imports are deferred to the command that needs them so that ``--help`` and
argument errors are instant and ``ask`` starts in about a second. Every
failure is one line on stderr and a non-zero exit code (1: the run failed,
2: the input was bad, 3: the thread is busy with another run);
MEMORY_AGENT_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUSY = 3
MAX_WAIT_SECONDS = 86_400


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument reported in one line (no usage block) and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"memory-agent: error: {self.prog}: {message}\n")


def _by_cli(source: str = "cli") -> Any:
    """Provenance of a change made from the command line (imported late: ``--help`` stays fast)."""
    from store.revisions import Provenance

    return Provenance(source=source)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="memory-agent",
        description="A LangGraph agent whose memory lives in Postgres.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chat = commands.add_parser("chat", help="talk interactively (Ctrl-D or /exit to leave)")
    chat.add_argument("--thread", help="thread id to continue (default: a new thread)")
    chat.add_argument("--user", help="user id for long-term memory")

    ask = commands.add_parser("ask", help="send one message and print the answer")
    ask.add_argument("message", help="the message to send")
    ask.add_argument("--thread", help="thread id to continue (default: a new thread)")
    ask.add_argument("--user", help="user id for long-term memory")
    ask.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    ask.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="if the thread is busy with another run, wait up to SECONDS (default: fail at once)",
    )

    threads = commands.add_parser("threads", help="list recent threads")
    threads.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    threads.add_argument("--json", action="store_true", help="print JSON")

    history = commands.add_parser("history", help="list a thread's checkpoints, newest first")
    history.add_argument("thread", help="thread id")
    history.add_argument("--at", metavar="CHECKPOINT", help="show the full state at one checkpoint")
    history.add_argument("--json", action="store_true", help="print JSON")

    status = commands.add_parser(
        "status", help="report the memory backend, server, tables and pool (exit 1: no memory)"
    )
    status.add_argument("--json", action="store_true", help="print JSON")

    pending = commands.add_parser("pending", help="list threads waiting for an approval")
    pending.add_argument("--limit", type=int, default=100, help="how many threads (default 100)")
    pending.add_argument("--json", action="store_true", help="print JSON")

    resume = commands.add_parser("resume", help="answer a thread's pending approval")
    resume.add_argument("thread", help="thread id")
    decision = resume.add_mutually_exclusive_group(required=True)
    decision.add_argument("--approve", action="store_true", help="run the call as proposed")
    decision.add_argument("--reject", action="store_true", help="do not run it (see --reason)")
    decision.add_argument("--edit", metavar="JSON", help="run it with these arguments instead")
    resume.add_argument("--reason", help="why (told to the model on --reject)")
    resume.add_argument(
        "--user", help="user id (default: the user the paused request was made for)"
    )
    resume.add_argument("--wait", type=float, metavar="SECONDS", help="wait if the thread is busy")
    resume.add_argument("--json", action="store_true", help="print a JSON object instead of text")

    fork = commands.add_parser(
        "fork", help="branch a thread from one of its checkpoints (see `history`)"
    )
    fork.add_argument("thread", help="thread id")
    fork.add_argument("checkpoint", help="checkpoint id to branch from")
    fork.add_argument(
        "--to",
        metavar="NEW_THREAD",
        help="copy into this new thread (default: branch inside the same thread)",
    )
    fork.add_argument("--user", help="user id forking (default: the user the thread belongs to)")
    fork.add_argument("--json", action="store_true", help="print JSON")

    memories = commands.add_parser(
        "memories", help="list, search, delete, see the history of, or restore a user's memories"
    )
    actions = memories.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the user's memories, newest first")
    searching = actions.add_parser("search", help="the user's memories most relevant to QUERY")
    searching.add_argument("query", help="what to look for")
    deleting = actions.add_parser("delete", help="delete one memory by key")
    deleting.add_argument("key", help="the memory's key (see `memories list`)")
    history = actions.add_parser("history", help="every change to one memory (or all of them)")
    history.add_argument("key", nargs="?", help="the memory's key (default: every memory)")
    restore = actions.add_parser("restore", help="make a memory hold what it held at REVISION")
    restore.add_argument("key", help="the memory's key")
    restore.add_argument("revision", type=int, help="the revision number (see `memories history`)")
    for action in (listing, searching, deleting, history, restore):
        action.add_argument("--user", required=True, help="whose memories")
        action.add_argument("--json", action="store_true", help="print JSON")
    for action in (listing, searching):
        action.add_argument("--limit", type=int, default=20, help="how many (default 20)")

    forget = commands.add_parser(
        "forget-user", help="delete all of a user's memories (and with --threads, their threads)"
    )
    forget.add_argument("user", help="the user id")
    forget.add_argument(
        "--threads", action="store_true", help="also delete every thread the user talked in"
    )
    forget.add_argument("--json", action="store_true", help="print JSON")

    shared = commands.add_parser(
        "shared",
        help="the shared scope's memories (team knowledge every user recalls): the admin path",
    )
    shared_actions = shared.add_subparsers(dest="action", required=True, metavar="ACTION")
    shared_add = shared_actions.add_parser("add", help="add (or update) one shared memory")
    shared_add.add_argument("content", help="the fact, e.g. 'the team standup is at 9:30'")
    shared_list = shared_actions.add_parser("list", help="the scope's memories, newest first")
    shared_list.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    shared_delete = shared_actions.add_parser("delete", help="delete one shared memory by key")
    shared_delete.add_argument("key", help="the memory's key (see `shared list`)")
    for action in (shared_add, shared_list, shared_delete):
        action.add_argument(
            "--scope", help="the scope id (default: MEMORY_SHARED_SCOPE, which users recall)"
        )
        action.add_argument("--json", action="store_true", help="print JSON")

    export = commands.add_parser(
        "export-user", help="print everything held about a user as JSON (memories, revisions)"
    )
    export.add_argument("user", help="the user id")
    export.add_argument("--threads", action="store_true", help="include the user's threads")
    import_user = commands.add_parser(
        "import-user", help="put back what export-user wrote (rows that exist are kept)"
    )
    import_user.add_argument("file", help="the JSON file export-user wrote ('-': stdin)")
    import_user.add_argument("--json", action="store_true", help="print JSON")
    template = commands.add_parser(
        "import-template-memories",
        help="move memories written by Databricks' LangGraph template into our namespaces",
    )
    template.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="USER",
        help="a user id to match template namespaces against (repeatable; known users are used too)",
    )
    template.add_argument("--dry-run", action="store_true", help="report; change nothing")
    template.add_argument("--json", action="store_true", help="print JSON")

    migrate = commands.add_parser(
        "migrate-memories",
        help="move memories between the Lakebase store and the managed memory store "
        "(DATABRICKS_MEMORY_STORE)",
    )
    migrate.add_argument(
        "--to", required=True, choices=("managed", "lakebase"), help="the backend to move them to"
    )
    migrate.add_argument(
        "--user",
        help="only this user (default: every user this database knows, and the shared scope)",
    )
    migrate.add_argument("--dry-run", action="store_true", help="count; change nothing")
    migrate.add_argument("--json", action="store_true", help="print JSON")

    consolidate = commands.add_parser(
        "consolidate",
        help="merge duplicates, resolve rival values and drop junk; deletions wait in `pending`",
    )
    consolidate.add_argument("--user", help="only this user (default: every user)")
    consolidate.add_argument("--dry-run", action="store_true", help="report; change nothing")
    consolidate.add_argument("--json", action="store_true", help="print JSON")

    delete_thread = commands.add_parser(
        "delete-thread", help="delete one thread: its checkpoints, ledger rows and user records"
    )
    delete_thread.add_argument("thread", help="thread id")
    sweep = commands.add_parser(
        "sweep", help="delete every thread idle for more than DAYS days (age-based cleanup)"
    )
    sweep.add_argument(
        "--threads-older-than",
        type=float,
        required=True,
        metavar="DAYS",
        help="age of a thread's newest checkpoint, in days",
    )
    for cleanup in (delete_thread, sweep):
        cleanup.add_argument(
            "--dry-run", action="store_true", help="report what would go; delete nothing"
        )
        cleanup.add_argument("--json", action="store_true", help="print JSON")

    log_model = commands.add_parser(
        "log-model",
        help="log the agent as an MLflow ResponsesAgent model (for Model Serving); print its URI",
    )
    log_model.add_argument(
        "--name", default="memory-agent", help="the model's name in the run (default memory-agent)"
    )
    log_model.add_argument(
        "--experiment",
        metavar="NAME_OR_ID",
        help="MLflow experiment (default: MLFLOW_EXPERIMENT_ID, else memory-agent)",
    )
    log_model.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _fail(message: str, code: int) -> int:
    print(f"memory-agent: error: {message}", file=sys.stderr)
    return code


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _preview(text: Any, width: int = 60) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _last_ai_text(messages: Sequence[Any]) -> str:
    from langchain_core.messages import AIMessage

    for message in reversed(messages):
        if isinstance(message, AIMessage) and message.content:
            return message.text if hasattr(message, "text") else str(message.content)
    return ""


def _run(graph: Any, run_input: Any, thread_id: str, user_id: str | None, **kwargs: Any) -> Any:
    from graph.context import Context

    config = {"configurable": {"thread_id": thread_id}}
    context = Context(user_id=user_id) if user_id is not None else None
    return graph.invoke(run_input, config, context=context, **kwargs)


def _outcome(result: Any) -> tuple[str, list[dict[str, Any]]]:
    """The answer text and any approval requests the run paused on."""
    pending = [
        {"interrupt_id": item.id, **item.value}
        for item in result.get("__interrupt__", [])
        if isinstance(item.value, dict)
    ]
    return _last_ai_text(result["messages"]) if not pending else "", pending


def _describe_pending(thread_id: str, pending: Sequence[dict[str, Any]]) -> str:
    lines = [f"Waiting for approval: {item['description']}" for item in pending]
    lines.append(
        f"Decide with: memory-agent resume {thread_id} --approve | --reject [--reason TEXT] "
        "| --edit JSON"
    )
    return "\n".join(lines)


def _new_or_given_thread(thread: str | None) -> str:
    from checkpointing.threads import resolve_thread_id, validate_thread_id

    if thread is not None:
        return validate_thread_id(thread)  # "" is an error, not a new thread
    return resolve_thread_id(None)


def command_ask(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from graph.settings import Settings

    settings = Settings.from_env()
    thread_id = _new_or_given_thread(args.thread)
    with open_agent(settings) as graph:
        result = _run(
            graph,
            {"messages": [("user", args.message)]},
            thread_id,
            args.user,
            wait_for_thread=args.wait,
        )
        answer, pending = _outcome(result)
        if args.json:
            payload = {
                "thread_id": thread_id,
                "user_id": args.user,
                "answer": answer,
                "pending": pending,
                "memory_available": graph.memory_available,
                "model": settings.model.describe(),
            }
            print(json.dumps(payload, ensure_ascii=False))
        else:
            print(answer if not pending else _describe_pending(thread_id, pending))
            if not args.thread and graph.memory_available:
                print(f"(thread {thread_id}; continue with --thread {thread_id})", file=sys.stderr)
    return 0


def command_chat(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from graph.settings import Settings
    from graph.validation import InvalidInput

    settings = Settings.from_env()
    thread_id = _new_or_given_thread(args.thread)
    with open_agent(settings) as graph:
        print(f"model:  {settings.model.describe()}")
        print(f"{graph.memory_status}")
        if graph.memory_available:
            print(f"thread: {thread_id}  (continue later: memory-agent chat --thread {thread_id})")
        print("Type a message; /exit or Ctrl-D to leave.")
        while True:
            try:
                text = input("you> ")
            except EOFError:
                print()
                break
            if text.strip() in {"/exit", "/quit"}:
                break
            if not text.strip():
                continue
            try:
                result = _run(graph, {"messages": [("user", text)]}, thread_id, args.user)
                answer, pending = _outcome(result)
                while pending:
                    result = _run(graph, _ask_decision(pending[0]), thread_id, args.user)
                    answer, pending = _outcome(result)
                print(f"agent> {answer}")
            except InvalidInput as exc:
                print(f"memory-agent: {exc}", file=sys.stderr)
        if graph.memory_available:
            print(
                f"thread {thread_id} saved; continue with: memory-agent chat --thread {thread_id}"
            )
        else:
            print("this conversation was not saved (memory unavailable; see the warning above)")
    return 0


def _open_for_browsing() -> Any:
    """The agent with the offline model: reading threads must not need (or import) a real model."""
    from graph.agent import open_agent
    from graph.offline_model import OfflineChatModel

    return open_agent(model=OfflineChatModel())


def _ask_decision(request: dict[str, Any]) -> Any:
    """Ask the person at the terminal to approve, reject or edit one request."""
    from graph.approvals import decision

    print(f"approval> {request['description']}")
    while True:
        try:
            reply = input("approve? [y]es / [n]o [reason] / [e]dit JSON: ").strip()
        except EOFError:
            reply = "n"
        word, _, rest = reply.partition(" ")
        try:
            if word.lower() in {"y", "yes", "approve"}:
                return decision("approve")
            if word.lower() in {"n", "no", "reject"}:
                return decision("reject", reason=rest.strip() or None)
            if word.lower() in {"e", "edit"}:
                return decision("edit", args=json.loads(rest))
        except ValueError as exc:  # bad JSON or a bad decision: ask again
            print(f"memory-agent: {_one_line(exc)}", file=sys.stderr)
            continue
        print("please answer y, n [reason] or e {json}", file=sys.stderr)


def _require_memory(graph: Any) -> None:
    if not graph.memory_available:
        from graph.agent import MemoryUnavailableError

        raise MemoryUnavailableError(graph.memory_status)


def command_threads(args: argparse.Namespace) -> int:
    from checkpointing.browse import recent_threads

    if args.limit < 1:
        return _fail("--limit must be at least 1", EXIT_BAD_INPUT)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        threads = recent_threads(graph.checkpointer.conn, args.limit)
        if args.json:
            print(json.dumps([t.__dict__ for t in threads], ensure_ascii=False))
            return 0
        if not threads:
            print("no threads yet")
        for thread in threads:
            print(
                f"{thread.thread_id}\t{thread.checkpoints} checkpoints\tupdated {thread.updated_at}"
            )
    return 0


def _snapshot_row(snapshot: Any) -> dict[str, Any]:
    messages = snapshot.values.get("messages", []) if snapshot.values else []
    last = messages[-1] if messages else None
    return {
        "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
        "parent_checkpoint_id": (snapshot.parent_config or {})
        .get("configurable", {})
        .get("checkpoint_id"),
        "step": snapshot.metadata.get("step") if snapshot.metadata else None,
        "source": snapshot.metadata.get("source") if snapshot.metadata else None,
        "created_at": snapshot.created_at,
        "next": list(snapshot.next),
        "waiting_for_approval": bool(snapshot.interrupts),
        "messages": len(messages),
        "last": f"{type(last).__name__}: {_preview(last.content)}" if last is not None else "",
    }


def _message_row(message: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"type": message.type, "content": message.content}
    for name in ("tool_calls", "tool_call_id", "status"):
        if getattr(message, name, None):
            row[name] = getattr(message, name)
    return row


def command_history(args: argparse.Namespace) -> int:
    from checkpointing.threads import validate_thread_id
    from graph.time_travel import checkpoints, state_at

    thread_id = validate_thread_id(args.thread)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        if args.at:
            snapshot = state_at(graph, thread_id, args.at)
            detail = {
                **_snapshot_row(snapshot),
                "state": {
                    "messages": [_message_row(m) for m in snapshot.values.get("messages", [])],
                    **{k: v for k, v in snapshot.values.items() if k != "messages"},
                },
                "pending": [i.value for i in snapshot.interrupts],
            }
            if args.json:
                print(json.dumps(detail, ensure_ascii=False, default=str))
                return 0
            print(
                f"checkpoint {detail['checkpoint_id']}  step {detail['step']}  "
                f"{detail['source']}  next={','.join(detail['next']) or '-'}"
            )
            for message in detail["state"]["messages"]:
                calls = "".join(
                    f" -> {c['name']}({json.dumps(c['args'], ensure_ascii=False)})"
                    for c in message.get("tool_calls", [])
                )
                print(f"  {message['type']:>6}: {_preview(message['content'], 100)}{calls}")
            for request in detail["pending"]:
                print(f"  waiting for approval: {request.get('description', request)}")
            return 0
        rows = [_snapshot_row(snapshot) for snapshot in checkpoints(graph, thread_id)]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False))
            return 0
        if not rows:
            return _fail(f"thread {thread_id!r} has no checkpoints", EXIT_FAILED)
        for row in rows:
            print(
                f"{row['checkpoint_id']}  step {row['step'] if row['step'] is not None else '?':>3}  "
                f"{row['source'] or '?':<6} "
                f"{row['messages']:>3} msgs  next={','.join(row['next']) or '-'}  {row['last']}"
            )
    return 0


def _require_store(graph: Any) -> Any:
    if graph.store is None:
        from graph.agent import MemoryUnavailableError

        raise MemoryUnavailableError(graph.long_term_memory_status)
    return graph.store


def command_memories(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store import memories

    if getattr(args, "limit", 1) < 1:
        return _fail("--limit must be at least 1", EXIT_BAD_INPUT)
    if not args.user:
        return _fail("--user must not be empty", EXIT_BAD_INPUT)
    if args.action in ("history", "restore"):
        return _memory_history(args)
    with open_agent() as graph:
        store = _require_store(graph)
        if args.action == "delete":
            deleted = memories.delete_memory(store, args.user, args.key, provenance=_by_cli())
            if args.json:
                print(json.dumps({"user_id": args.user, "key": args.key, "deleted": deleted}))
            elif deleted:
                print(f"deleted memory {args.key}")
            if not deleted:
                return _fail(f"user {args.user!r} has no memory with key {args.key!r}", EXIT_FAILED)
            return 0
        if args.action == "search":
            items = memories.search_memories(store, args.user, args.query, args.limit)
        else:
            items = memories.list_memories(store, args.user, args.limit)
        if args.json:
            rows = [
                {
                    "key": item.key,
                    "content": item.value.get("content"),
                    "score": item.score,
                    "updated_at": str(item.updated_at),
                }
                for item in items
            ]
            print(json.dumps(rows, ensure_ascii=False))
            return 0
        if not items:
            print(f"no memories for user {args.user!r}")
        for line in memories.memory_lines(items):
            print(line)
    return 0


def _revision_line(revision: Any) -> str:
    where = f" thread {revision.thread_id}" if revision.thread_id else ""
    where += f" run {revision.run_id}" if revision.run_id else ""
    now = revision.content if revision.value is not None else "(deleted)"
    was = f"  (was: {_preview(revision.previous_content)})" if revision.previous else ""
    return (
        f"[{revision.key}] r{revision.revision} {revision.action:<7} "
        f"{revision.created_at:%Y-%m-%d %H:%M:%S} {revision.source}{where}: {_preview(now)}{was}"
    )


def _memory_history(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store import memories

    if args.action == "restore" and args.revision < 1:
        return _fail("REVISION must be a revision number (1 or more)", EXIT_BAD_INPUT)
    with open_agent() as graph:
        store = _require_store(graph)
        if args.action == "history":
            found = memories.memory_history(store, args.user, args.key)
            if args.json:
                print(json.dumps([r.as_dict() for r in found], ensure_ascii=False))
                return 0
            if not found:
                return _fail(
                    f"user {args.user!r} has no recorded changes"
                    + (f" to memory {args.key!r}" if args.key else ""),
                    EXIT_FAILED,
                )
            for revision in found:
                print(_revision_line(revision))
            return 0
        try:
            saved = memories.restore_memory(
                store, args.user, args.key, args.revision, provenance=_by_cli()
            )
        except memories.NoSuchRevision as exc:
            return _fail(_one_line(exc), EXIT_BAD_INPUT)
        if args.json:
            print(json.dumps(saved.__dict__, ensure_ascii=False))
        else:
            print(f"restored memory {args.key} to revision {args.revision} (now r{saved.revision})")
    return 0


def command_forget_user(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store import memories

    if not args.user:
        return _fail("the user id must not be empty", EXIT_BAD_INPUT)
    with open_agent() as graph:
        store = _require_store(graph)
        threads = []
        if args.threads:
            # Only threads the user owns: having talked in one (the record) is not enough.
            candidates = set(memories.user_threads(store, args.user))
            if graph.thread_owners is not None:
                candidates.update(graph.thread_owners.threads_of(args.user))
            threads = sorted(t for t in candidates if graph.owner_of(t) == args.user)
        for thread_id in threads:
            graph.checkpointer.delete_thread(thread_id)  # type: ignore[union-attr]
        if args.threads:
            memories.forget_threads_record(store, args.user)
        deleted = memories.forget_user(store, args.user)
    if args.json:
        payload = {"user_id": args.user, "memories_deleted": deleted}
        if args.threads:
            payload["threads_deleted"] = len(threads)
        print(json.dumps(payload, ensure_ascii=False))
    else:
        done = f"deleted {deleted} memories"
        if args.threads:
            done += f" and {len(threads)} threads"
        print(f"{done} of user {args.user!r}")
    return 0


def command_shared(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from graph.settings import Settings
    from store import memories

    settings = Settings.from_env()
    scope = args.scope if args.scope is not None else settings.memory.shared_scope
    if not scope:
        return _fail("name the scope with --scope or set MEMORY_SHARED_SCOPE", EXIT_BAD_INPUT)
    if args.action == "list" and args.limit < 1:
        return _fail("--limit must be at least 1", EXIT_BAD_INPUT)
    with open_agent(settings) as graph:
        store = _require_store(graph)
        if args.action == "add":
            try:
                saved = memories.save_shared(
                    store, scope, args.content, provenance=_by_cli("admin")
                )
            except ValueError as exc:
                return _fail(_one_line(exc), EXIT_BAD_INPUT)
            if args.json:
                print(json.dumps({"scope": scope, **saved.__dict__}, ensure_ascii=False))
            else:
                verb = "updated" if saved.updated else "added"
                print(f"{verb} shared memory {saved.key} in scope {scope!r}")
            return 0
        if args.action == "delete":
            deleted = memories.delete_shared(store, scope, args.key, provenance=_by_cli("admin"))
            if args.json:
                print(json.dumps({"scope": scope, "key": args.key, "deleted": deleted}))
            elif deleted:
                print(f"deleted shared memory {args.key}")
            if not deleted:
                return _fail(f"scope {scope!r} has no memory with key {args.key!r}", EXIT_FAILED)
            return 0
        items = memories.list_shared(store, scope, args.limit)
        if args.json:
            rows = [{"key": i.key, "content": i.value.get("content")} for i in items]
            print(json.dumps(rows, ensure_ascii=False))
            return 0
        if not items:
            print(f"no shared memories in scope {scope!r}")
        for line in memories.memory_lines(items):
            print(line)
    return 0


def command_consolidate(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from graph.consolidation import propose_deletions
    from graph.settings import Settings
    from store.consolidation import apply_consolidation, plan_consolidation
    from store.transfer import known_user_ids

    if args.user is not None and not args.user:
        return _fail("--user must not be empty", EXIT_BAD_INPUT)
    settings = Settings.from_env()
    reports = []
    with open_agent(settings) as graph:
        store = _require_store(graph)
        _lakebase_only(store, "consolidate")
        users = [args.user] if args.user else sorted(known_user_ids(store))
        for user in users:
            plan = plan_consolidation(store, user, dedup_threshold=settings.memory.dedup_threshold)
            report: dict[str, Any] = {**plan.as_dict(), "changed": 0, "approval_thread": None}
            if not args.dry_run and not plan.empty:
                report["changed"] = apply_consolidation(store, plan)
                if plan.deletions:
                    _require_memory(graph)
                    report["approval_thread"] = propose_deletions(graph, user, plan.deletions)
            reports.append(report)
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "users": reports}, ensure_ascii=False))
        return 0
    for report in reports:
        deletions = report["deletions"]
        print(
            f"user {report['user_id']!r}: {len(report['subjects'])} subjects recorded, "
            f"{len(report['merges'])} merges, {len(deletions)} deletions proposed"
            + (" (dry run: nothing changed)" if args.dry_run else "")
        )
        for deletion in deletions:
            print(
                f"  delete {deletion['key']}: {deletion['reason']}: {_preview(deletion['content'])}"
            )
        if report["approval_thread"]:
            print(
                f"  waiting for approval in thread {report['approval_thread']}: see "
                f"`memory-agent pending`, decide with `memory-agent resume "
                f"{report['approval_thread']} --user {report['user_id']} --approve | --reject`"
            )
    if not reports:
        print("no users with memories")
    return 0


def command_export_user(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store.namespace import encode_user_id
    from store.transfer import export_user

    encode_user_id(args.user)  # an empty id is bad input, before opening anything
    with open_agent() as graph:
        store = _require_store(graph)
        data = export_user(_pool_of(store), args.user, threads=args.threads, memory_store=store)
    print(json.dumps(data, ensure_ascii=False, indent=1))
    return 0


def command_migrate_memories(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from graph.settings import Settings
    from store.config import InvalidStoreName, parse_store_name
    from store.managed import ManagedMemoryStore, make_managed_store
    from store.migration import migrate
    from store.namespace import encode_user_id, shared_namespace, user_namespace
    from store.transfer import known_user_ids

    settings = Settings.from_env()
    try:  # both checked before anything is opened
        parse_store_name(settings.memory.managed_store)
        if args.user is not None:
            encode_user_id(args.user)
    except InvalidStoreName as exc:
        return _fail(f"migrate-memories needs the managed store: {exc}", EXIT_BAD_INPUT)
    with open_agent(settings) as graph:
        store = _require_store(graph)
        lakebase = getattr(store, "local", store)
        managed = (
            store
            if isinstance(store, ManagedMemoryStore)
            else make_managed_store(settings.memory.managed_store, local=lakebase)
        )
        managed.verify()
        if args.user is not None:
            namespaces = [user_namespace(args.user)]
        else:
            namespaces = [user_namespace(user) for user in sorted(known_user_ids(lakebase))]
            if settings.memory.shared_scope:
                namespaces.append(shared_namespace(settings.memory.shared_scope))
        source, target = (lakebase, managed) if args.to == "managed" else (managed, lakebase)
        report = migrate(source, target, namespaces, to=args.to, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return 0
    verb = "would move" if args.dry_run else "moved"
    print(
        f"{verb} {report.total('found')} memories of {len(report.counts)} users/scopes to "
        f"{args.to}: {report.total('copied')} copied, {report.total('already_there')} already "
        f"there, {report.total('removed')} removed from the source"
    )
    return 0


def _lakebase_only(store: Any, command: str) -> None:
    from store.managed import ManagedMemoryStore

    if isinstance(store, ManagedMemoryStore):
        from graph.settings import SettingsError

        raise SettingsError(
            f"{command} works on the Lakebase backend only (it compares similarity scores or "
            "reads the Postgres tables); run it with MEMORY_BACKEND=lakebase"
        )


def _pool_of(store: Any) -> Any:
    # A managed store keeps the Postgres store beside it (thread records) as ``local``.
    return getattr(store, "local", store).conn


def command_import_user(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store.transfer import import_user

    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as handle:
                text = handle.read()
        data = json.loads(text)
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", EXIT_BAD_INPUT)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _fail(f"{args.file} is not JSON: {_one_line(exc)}", EXIT_BAD_INPUT)
    with open_agent() as graph:
        store = _require_store(graph)
        counts = import_user(_pool_of(store), data, memory_store=store)
    if args.json:
        print(json.dumps({"user_id": data["user_id"], "rows_added": counts}, ensure_ascii=False))
    else:
        added = ", ".join(f"{count} {table}" for table, count in counts.items())
        print(f"imported user {data['user_id']!r}: {added}")
    return 0


def command_import_template_memories(args: argparse.Namespace) -> int:
    from graph.agent import open_agent
    from store.transfer import import_template_memories

    if any(not user for user in args.user):
        return _fail("--user must not be empty", EXIT_BAD_INPUT)
    with open_agent() as graph:
        store = _require_store(graph)
        _lakebase_only(store, "import-template-memories")
        report = import_template_memories(store, users=args.user, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({**report.as_dict(), "dry_run": args.dry_run}, ensure_ascii=False))
        return 0
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {len(report.moved)} template memories")
    for label, key, user in report.moved:
        print(f"  {label}/{key} -> user {user!r}")
    for label in report.assumed:
        print(f"  note: no known user maps to {label!r}; taken as that user id")
    for label, users in report.collisions.items():
        print(
            f"  collision: template namespace {label!r} merged users "
            f"{', '.join(repr(u) for u in users)}; left alone (split it by hand)"
        )
    return 0


def _print_deletion(report: Any, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**report.as_dict(), "dry_run": dry_run}, ensure_ascii=False))
        return
    verb = "would delete" if dry_run else "deleted"
    rows = ", ".join(f"{count} {table}" for table, count in report.rows.items())
    print(f"{verb} {report.threads} thread(s): {rows or 'nothing'}")


def command_delete_thread(args: argparse.Namespace) -> int:
    from checkpointing.threads import validate_thread_id
    from graph.cleanup import delete_thread

    thread_id = validate_thread_id(args.thread)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        report = delete_thread(graph, thread_id, dry_run=args.dry_run)
    if not report.threads:
        return _fail(f"there is no thread {thread_id!r}", EXIT_FAILED)
    _print_deletion(report, args.dry_run, args.json)
    return 0


def command_sweep(args: argparse.Namespace) -> int:
    import math

    from graph.cleanup import sweep_threads

    days = args.threads_older_than
    if not math.isfinite(days) or days < 0:
        return _fail("--threads-older-than must be a number of days, 0 or more", EXIT_BAD_INPUT)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        report = sweep_threads(graph, days, dry_run=args.dry_run)
    _print_deletion(report, args.dry_run, args.json)
    return 0


def command_status(args: argparse.Namespace) -> int:
    from checkpointing import RUN_TABLES
    from database.health import target_health
    from graph.settings import Settings
    from serving.events import BACKGROUND_TABLES
    from setup_lakebase import MEMORY_TABLES

    settings = Settings.from_env()
    # The run tables (checkpoints, tool ledger) decide whether memory is available, as
    # for open_agent; long-term memory's and the background runs' are reported alongside.
    health = target_health(
        settings.database, required=RUN_TABLES, optional=(*MEMORY_TABLES, *BACKGROUND_TABLES)
    )
    managed = None
    if settings.memory.backend == "managed":
        from store.managed import managed_health

        managed = managed_health(settings.memory.managed_store)
    if args.json:
        report = health.as_dict()
        if managed is not None:
            report["long_term_memory"] = managed.as_dict()
        print(json.dumps(report, ensure_ascii=False))
    else:
        print("\n".join(health.lines()))
        if managed is not None:
            print("\n".join(managed.lines()))
    ok = health.memory_available and (managed is None or managed.ok)
    return 0 if ok else EXIT_FAILED


def command_pending(args: argparse.Namespace) -> int:
    from graph.approvals import pending_approvals

    if args.limit < 1:
        return _fail("--limit must be at least 1", EXIT_BAD_INPUT)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        found = pending_approvals(graph, args.limit)
        if args.json:
            print(json.dumps([p.__dict__ for p in found], ensure_ascii=False, default=str))
            return 0
        if not found:
            print("nothing is waiting for approval")
        for item in found:
            user = f"  user {item.user_id}" if item.user_id else ""
            print(f"{item.thread_id}\t{item.since}{user}\n  {item.description}")
    return 0


def command_resume(args: argparse.Namespace) -> int:
    from checkpointing.threads import validate_thread_id
    from graph.agent import open_agent
    from graph.approvals import decision, pending_in_thread
    from graph.validation import InvalidInput

    thread_id = validate_thread_id(args.thread)
    if args.reason is not None and not args.reject:
        return _fail("--reason goes with --reject", EXIT_BAD_INPUT)
    if args.edit is not None:
        try:
            new_args = json.loads(args.edit)
        except json.JSONDecodeError as exc:
            return _fail(
                f"--edit is not valid JSON: {exc.msg} (column {exc.colno})", EXIT_BAD_INPUT
            )
        if not isinstance(new_args, dict):
            return _fail("--edit must be a JSON object of arguments", EXIT_BAD_INPUT)
        command = decision("edit", args=new_args)
    elif args.reject:
        command = decision("reject", reason=args.reason)
    else:
        command = decision("approve")
    with open_agent() as graph:
        _require_memory(graph)
        waiting = pending_in_thread(graph, thread_id)
        if not waiting:
            raise InvalidInput(f"thread {thread_id!r} is not waiting for approval")
        # Whoever runs the CLI holds the database's credentials, so by default it acts
        # for the user the request was made for, named explicitly; the graph itself
        # never fills a user in for a caller without one.
        user_id = args.user if args.user is not None else waiting[0].user_id
        result = _run(graph, command, thread_id, user_id, wait_for_thread=args.wait)
        answer, pending = _outcome(result)
        if args.json:
            print(json.dumps({"thread_id": thread_id, "answer": answer, "pending": pending}))
        else:
            print(answer if not pending else _describe_pending(thread_id, pending))
    return 0


def command_fork(args: argparse.Namespace) -> int:
    from checkpointing.threads import validate_thread_id
    from graph.time_travel import fork

    thread_id = validate_thread_id(args.thread)
    target = validate_thread_id(args.to) if args.to else thread_id
    with _open_for_browsing() as graph:
        _require_memory(graph)
        # As for resume: the CLI's operator acts for the thread's owner unless told otherwise.
        user_id = args.user if args.user is not None else graph.owner_of(thread_id) or None
        head = fork(graph, thread_id, args.checkpoint, to_thread=target, user_id=user_id)
        checkpoint_id = head["configurable"]["checkpoint_id"]
        if args.json:
            print(json.dumps({"thread_id": target, "checkpoint_id": checkpoint_id}))
        else:
            print(f"forked {thread_id}@{args.checkpoint} -> {target}@{checkpoint_id}")
            print(f'continue with: memory-agent ask --thread {target} "..."')
    return 0


MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def command_log_model(args: argparse.Namespace) -> int:
    from graph.settings import Settings

    if not MODEL_NAME.match(args.name):
        return _fail(
            f"--name {args.name!r}: use letters, digits, '.', '_' or '-' (at most 128)",
            EXIT_BAD_INPUT,
        )
    if args.experiment is not None and not args.experiment.strip():
        return _fail("--experiment is empty: give an experiment name or id", EXIT_BAD_INPUT)
    settings = Settings.from_env()
    # MLflow is imported here only: `ask` and the other commands never pay for it.
    from serving.mlflow_model import ModelConfigError, log_agent_model

    try:
        logged = log_agent_model(settings, name=args.name, experiment=args.experiment)
    except ModelConfigError as exc:
        return _fail(_one_line(exc), EXIT_BAD_INPUT)
    if args.json:
        print(json.dumps(logged.__dict__, ensure_ascii=False))
        return 0
    for resource in logged.resources:
        print(f"resource: {resource['type']} {resource['name']}")
    for note in logged.notes:
        print(f"note: {note}")
    print(logged.model_uri)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ask": command_ask,
    "chat": command_chat,
    "threads": command_threads,
    "history": command_history,
    "memories": command_memories,
    "forget-user": command_forget_user,
    "shared": command_shared,
    "export-user": command_export_user,
    "import-user": command_import_user,
    "import-template-memories": command_import_template_memories,
    "migrate-memories": command_migrate_memories,
    "consolidate": command_consolidate,
    "delete-thread": command_delete_thread,
    "sweep": command_sweep,
    "status": command_status,
    "pending": command_pending,
    "resume": command_resume,
    "fork": command_fork,
    "log-model": command_log_model,
}


def _bad_argument(args: argparse.Namespace) -> str | None:
    """What is wrong with the parsed arguments, in one line, or None."""
    for name, value in vars(args).items():
        if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            # Python turns bytes that are not UTF-8 into lone surrogates (PEP 383);
            # Postgres cannot store them, and a message would be saved half-way.
            return f"--{name} is not valid UTF-8 text; send UTF-8"
    user = getattr(args, "user", None)
    if isinstance(user, str) and not user.strip():  # import-template-memories: a list
        return "--user must not be empty or blank"
    wait = getattr(args, "wait", None)
    if wait is not None and not (math.isfinite(wait) and 0 <= wait <= MAX_WAIT_SECONDS):
        return f"--wait must be a number of seconds between 0 and {MAX_WAIT_SECONDS}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    from graph.settings import load_env_file

    load_env_file()
    args = _parser().parse_args(argv)
    if (problem := _bad_argument(args)) is not None:
        return _fail(problem, EXIT_BAD_INPUT)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _exit_for(exc)


def _exit_for(exc: Exception) -> int:
    from checkpointing.copy_thread import CheckpointNotFound
    from checkpointing.ownership import ThreadOfAnotherUser
    from checkpointing.thread_lock import ThreadBusyError
    from checkpointing.threads import InvalidThreadId
    from graph.settings import SettingsError
    from graph.time_travel import ThreadExists
    from graph.validation import InvalidInput
    from nodes.review_tool_calls import InvalidDecision
    from store.namespace import InvalidUserId
    from store.transfer import InvalidExport

    if os.environ.get("MEMORY_AGENT_DEBUG"):
        raise exc
    if isinstance(exc, ThreadBusyError):
        return _fail(f"{_one_line(exc)}; try again, or pass --wait SECONDS", EXIT_BUSY)
    bad_input = (
        InvalidInput,
        InvalidThreadId,
        SettingsError,
        InvalidDecision,
        CheckpointNotFound,
        ThreadExists,
        InvalidExport,
        InvalidUserId,
        ThreadOfAnotherUser,
    )
    if isinstance(exc, bad_input):
        return _fail(_one_line(exc), EXIT_BAD_INPUT)
    return _fail(f"{_one_line(exc)} (set MEMORY_AGENT_DEBUG=1 for details)", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
