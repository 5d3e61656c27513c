"""One run on a thread in its own process, for cross-process tests.

    python -m tests.workers.run_once URL THREAD MESSAGE [--wait SECONDS]
    python -m tests.workers.run_once URL THREAD --resume JSON
    python -m tests.workers.run_once URL THREAD --continue

Exit codes: 0 the run finished or paused, 3 the thread was busy, 2 bad input.
Prints the last message (or the pending approval) as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from langgraph.types import Command

from checkpointing import ThreadBusyError
from graph.validation import InvalidInput
from tests.workers.kit import _say, open_test_graph


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("thread")
    parser.add_argument("message", nargs="?")
    parser.add_argument("--wait", type=float)
    parser.add_argument("--resume")
    parser.add_argument("--continue", dest="continue_", action="store_true")
    args = parser.parse_args(argv)
    config = {"configurable": {"thread_id": args.thread}}
    run_input: Any = {"messages": [("user", args.message)]}
    if args.resume:
        run_input = Command(resume=json.loads(args.resume))
    elif args.continue_:
        run_input = None  # continue from the last checkpoint
    with open_test_graph(args.url) as graph:
        _say("ready")
        try:
            result = graph.invoke(run_input, config, wait_for_thread=args.wait)
        except ThreadBusyError as exc:
            print(exc, file=sys.stderr)
            return 3
        except InvalidInput as exc:
            print(exc, file=sys.stderr)
            return 2
        if result.get("__interrupt__"):
            _say(json.dumps({"pending": result["__interrupt__"][0].value}))
        else:
            _say(json.dumps({"answer": result["messages"][-1].content}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
