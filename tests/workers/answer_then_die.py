"""Answer one turn with fact extraction queued, print the answer, then die by SIGKILL.

    python -m tests.workers.answer_then_die USER THREAD MESSAGE

The agent is the real one (``open_agent`` on DATABASE_URL, MEMORY_EXTRACTION=1)
except that its extraction worker is stopped before the turn: the turn is
queued, the answer printed, and the process is killed before any extraction —
the window a crash between the answer and the extraction falls in.
"""

from __future__ import annotations

import os
import signal
import sys

from graph.agent import open_agent
from graph.context import Context
from tests.workers.kit import _say


def main(user: str, thread: str, message: str) -> int:
    with open_agent() as graph:
        assert graph.extractor is not None, "MEMORY_EXTRACTION=1 must be set"
        graph.extractor._stopping.set()  # no extraction in this process
        graph.extractor.queue.wake.set()
        graph.extractor._thread.join()
        result = graph.invoke(
            {"messages": [("user", message)]},
            {"configurable": {"thread_id": thread}},
            context=Context(user_id=user),
        )
        _say(f"answer: {result['messages'][-1].content}")
        os.kill(os.getpid(), signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
