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
