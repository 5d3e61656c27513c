"""Real servers for the HTTP tests: `python -m serving.server` in its own OS process.

Each server listens on a free loopback port, uses its own database on the
session's embedded Postgres (or an unreachable one), and is stopped by pid
when its module's tests are done. Tests talk to it with the OpenAI client.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from database.embedded import EmbeddedPostgres
from tests.conftest import AGENT_ENV_VARS, fresh_database

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningServer:
    """A server process and how to reach it."""

    process: subprocess.Popen[bytes]
    base_url: str
    database_url: str | None
    log_path: Path

    def client(self, headers: Mapping[str, str] | None = None) -> OpenAI:
        # No retries: a retried request would hide a 5xx and run the turn twice.
        return OpenAI(
            base_url=self.base_url,
            api_key="not-used",
            max_retries=0,
            timeout=120,
            default_headers=dict(headers or {}),
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def base_env(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in AGENT_ENV_VARS}
    env["MEMORY_AGENT_HOME"] = str(home)
    env["AGENT_MODEL"] = "offline"
    env["PYTHONPATH"] = str(REPO)
    return env


def start_server(
    env: Mapping[str, str], log_path: Path, command: list[str], database_url: str | None
) -> RunningServer:
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=REPO,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(process, f"http://127.0.0.1:{port}", database_url, log_path)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"server did not start in {START_TIMEOUT_SECONDS} s:\n{server.log()}")


def start_agent_server(
    home: Path, database_url: str, command: list[str], **extra_env: str
) -> RunningServer:
    """A server on ``database_url`` that creates its tables at start, logging to home/server.log."""
    env = base_env(home)
    env.update(DATABASE_URL=database_url, AUTO_SETUP="1", **extra_env)
    return start_server(env, home / "server.log", command, database_url)


def stop_server(server: RunningServer) -> None:
    """Stop the server by its pid: SIGTERM (uvicorn closes the pool), then SIGKILL."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def module_database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database (pgvector installed) shared by one module's server, dropped after."""
    with fresh_database(pg_server, prefix="test_server") as url:
        yield url


def server_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "serving.server", *extra]


def approval_app_command() -> list[str]:
    """The server of tests/serving/approval_app.py (an approval-gated tool), run by uvicorn."""
    return [
        *(sys.executable, "-m", "uvicorn", "--factory"),
        *("tests.serving.approval_app:create_test_app", "--host", "127.0.0.1"),
    ]
