"""Start the worker programs of tests/workers as real OS processes and read their output."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class Worker:
    """A running ``python -m tests.workers.<name>`` with its stdout lines in a queue."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"tests.workers.{name}", *args],
            cwd=REPO,
            env={**env, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 120) -> str | None:
        """The next line starting with ``prefix``; None if the process ended or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    self._reader.join(timeout=5)
                    if self.lines.empty():
                        return None
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line
        return None

    def drain(self) -> list[str]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for the exit; returns (exit code, stderr)."""
        # stdout belongs to the reader thread; only stderr is read here.
        assert self.process.stderr is not None
        stderr = self.process.stderr.read()
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self.drain()
        self.process.stderr.close()
        return self.process.returncode, stderr

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no cleanup, no atexit, no finally
        self.process.wait()
        self._reader.join(timeout=5)
        self.drain()
        if self.process.stderr is not None:
            self.process.stderr.close()


def start_server_forker(env: dict[str, str], log_dir: Path) -> subprocess.Popen[str]:
    """``python -m tests.workers.server_forker LOG_DIR``, once it has imported everything."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.workers.server_forker", str(log_dir)],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def fork_server(forker: subprocess.Popen[str], port: int) -> int:
    """Have ``forker`` start a server on ``port``; returns its pid (it may not answer yet)."""
    assert forker.stdin is not None and forker.stdout is not None
    forker.stdin.write(f"spawn {port}\n")
    forker.stdin.flush()
    return int(forker.stdout.readline().split()[2])
