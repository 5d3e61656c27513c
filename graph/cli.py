"""The ``memory-agent`` command line: chat, ask, threads, history, memories, forget-user.

Imports are deferred to the command that needs them so that ``--help`` and
argument errors are instant and ``ask`` starts in about a second. Every
failure is one line on stderr and a non-zero exit code (1: the run failed,
2: the input was bad); MEMORY_AGENT_DEBUG=1 shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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

    threads = commands.add_parser("threads", help="list recent threads")
    threads.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    threads.add_argument("--json", action="store_true", help="print JSON")

    history = commands.add_parser("history", help="list a thread's checkpoints, newest first")
    history.add_argument("thread", help="thread id")
    history.add_argument("--json", action="store_true", help="print JSON")

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


def _run_turn(graph: Any, text: str, thread_id: str, user_id: str | None) -> str:
    from graph.context import Context

    config = {"configurable": {"thread_id": thread_id}}
    result = graph.invoke({"messages": [("user", text)]}, config, context=Context(user_id=user_id))
    return _last_ai_text(result["messages"])


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
        answer = _run_turn(graph, args.message, thread_id, args.user)
        if args.json:
            payload = {
                "thread_id": thread_id,
                "user_id": args.user,
                "answer": answer,
                "memory_available": graph.memory_available,
                "model": settings.model.describe(),
            }
            print(json.dumps(payload, ensure_ascii=False))
        else:
            print(answer)
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
                print(f"agent> {_run_turn(graph, text, thread_id, args.user)}")
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
        threads = recent_threads(graph.checkpointer.conn, args.limit)  # type: ignore[union-attr]
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


def command_history(args: argparse.Namespace) -> int:
    from checkpointing.threads import validate_thread_id

    thread_id = validate_thread_id(args.thread)
    with _open_for_browsing() as graph:
        _require_memory(graph)
        rows = []
        for snapshot in graph.get_state_history({"configurable": {"thread_id": thread_id}}):
            messages = snapshot.values.get("messages", []) if snapshot.values else []
            last = messages[-1] if messages else None
            rows.append(
                {
                    "checkpoint_id": snapshot.config["configurable"]["checkpoint_id"],
                    "step": snapshot.metadata.get("step") if snapshot.metadata else None,
                    "source": snapshot.metadata.get("source") if snapshot.metadata else None,
                    "created_at": snapshot.created_at,
                    "next": list(snapshot.next),
                    "messages": len(messages),
                    "last": f"{type(last).__name__}: {_preview(last.content)}"
                    if last is not None
                    else "",
                }
            )
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
        threads = memories.user_threads(store, args.user) if args.threads else []
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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ask": command_ask,
    "chat": command_chat,
    "threads": command_threads,
    "history": command_history,
    "memories": command_memories,
    "forget-user": command_forget_user,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return _exit_for(exc)


def _exit_for(exc: Exception) -> int:
    from checkpointing.threads import InvalidThreadId
    from graph.settings import SettingsError
    from graph.validation import InvalidInput

    if os.environ.get("MEMORY_AGENT_DEBUG"):
        raise exc
    if isinstance(exc, InvalidInput | InvalidThreadId | SettingsError):
        return _fail(_one_line(exc), EXIT_BAD_INPUT)
    return _fail(f"{_one_line(exc)} (set MEMORY_AGENT_DEBUG=1 for details)", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
