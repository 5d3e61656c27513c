"""The ``memory-agent`` command line: chat, ask, threads, history, status, pending, resume,
fork, memories, forget-user, log-model.

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

    memories = commands.add_parser("memories", help="list, search or delete a user's memories")
    actions = memories.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the user's memories, newest first")
    searching = actions.add_parser("search", help="the user's memories most relevant to QUERY")
    searching.add_argument("query", help="what to look for")
    deleting = actions.add_parser("delete", help="delete one memory by key")
    deleting.add_argument("key", help="the memory's key (see `memories list`)")
    for action in (listing, searching, deleting):
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
    with open_agent() as graph:
        store = _require_store(graph)
        if args.action == "delete":
            deleted = memories.delete_memory(store, args.user, args.key)
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


def command_status(args: argparse.Namespace) -> int:
    from checkpointing import RUN_TABLES
    from database.health import target_health
    from graph.settings import Settings
    from serving.events import BACKGROUND_TABLES
    from setup_lakebase import STORE_TABLES

    settings = Settings.from_env()
    # The run tables (checkpoints, tool ledger) decide whether memory is available, as
    # for open_agent; the long-term store's and the background runs' are reported alongside.
    health = target_health(
        settings.database, required=RUN_TABLES, optional=(*STORE_TABLES, *BACKGROUND_TABLES)
    )
    if args.json:
        print(json.dumps(health.as_dict(), ensure_ascii=False))
    else:
        print("\n".join(health.lines()))
    return 0 if health.memory_available else EXIT_FAILED


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
    if user is not None and not user.strip():
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
        ThreadOfAnotherUser,
    )
    if isinstance(exc, bad_input):
        return _fail(_one_line(exc), EXIT_BAD_INPUT)
    return _fail(f"{_one_line(exc)} (set MEMORY_AGENT_DEBUG=1 for details)", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
