"""Start server processes of tests/serving/background_app.py in about a second each.

    python -m tests.workers.server_forker LOG_DIR

A server takes ~15 s to start on a busy 2-core machine, mostly imports; a test
that kill -9s servers twenty times cannot wait for that. This process imports
everything once, then forks one child per ``spawn PORT`` line read on stdin:
each child is a real OS process with its own pid, its own event loop, pool and
connections, serving the app with uvicorn on PORT and logging to
LOG_DIR/server-PORT.log. It prints ``spawned PORT PID``. The test stops the
children by pid; this process exits when its stdin closes.
"""

from __future__ import annotations

import os
import signal
import sys

import uvicorn

from tests.serving.background_app import create_test_app
from tests.workers.kit import _say


def _serve(port: int, log_dir: str) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    log = os.open(
        os.path.join(log_dir, f"server-{port}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdin.close()
    uvicorn.run(
        create_test_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )


def main(log_dir: str) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps killed children
    _say("ready")
    for line in sys.stdin:
        command, _, port = line.strip().partition(" ")
        if command != "spawn":
            continue
        pid = os.fork()
        if pid == 0:
            try:
                _serve(int(port), log_dir)
            finally:
                os._exit(0)
        _say(f"spawned {port} {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
