"""Drive threads to completion, resuming whatever a killed predecessor left unfinished.

    python -m tests.workers.crash_worker URL THREAD[,THREAD...] ROWS

Each thread's task is "append ROWS <thread>". A thread without checkpoints
gets the message; a thread with pending steps is continued with
``graph.invoke(None, config)``; a finished thread is skipped. Prints "ready"
once connected and "all-done" at the end; the test kills it at random points.
"""

from __future__ import annotations

import sys

from tests.workers.kit import _say, open_test_graph


def main(url: str, threads: list[str], rows: int) -> int:
    with open_test_graph(url) as graph:
        _say("ready")
        for thread_id in threads:
            config = {"configurable": {"thread_id": thread_id}}
            snapshot = graph.get_state(config)
            if not snapshot.values.get("messages"):
                graph.invoke({"messages": [("user", f"append {rows} {thread_id}")]}, config)
            elif snapshot.next:
                _say(f"resume {thread_id} at {','.join(snapshot.next)}")
                graph.invoke(None, config)
        _say("all-done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])))
