"""The ``memory-agent`` command line: chat, ask, threads, history.

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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "ask": command_ask,
    "chat": command_chat,
    "threads": command_threads,
    "history": command_history,
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
