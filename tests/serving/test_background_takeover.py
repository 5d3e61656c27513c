"""kill -9 the server running a background run, over and over: another server finishes it.

Several server processes (forked by tests/workers/server_forker.py, each a real
OS process) serve one database. Waves of background runs call slow
side-effecting tools (tests/serving/background_app.py); the test kills the
process that owns a run (``background_responses.owner``) with SIGKILL at
random moments, about half of them right inside a tool, and starts a
replacement each time. A client per run follows its stream with the OpenAI
client, reconnecting to any live server with ``starting_after`` = the last
sequence number it saw. In the end every run completed on its own thread, each
client saw every sequence number exactly once and in order, and the
side-effect table holds one row per transactional call id (at most one per
external one).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from openai import OpenAI

from tests.processes import fork_server, start_server_forker
from tests.serving.conftest import free_port
from tests.serving.test_background import background_env

KILLS = 20
RUNNING = 4
"""Background runs kept going at once."""
ROWS = 8
SERVERS = 4
DEADLINE_SECONDS = 150


@dataclass
class Child:
    port: int
    pid: int
    log: Path
    ready: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def tool_lines(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("tool-enter")


class Cluster:
    """Server processes on one database, forked on demand, stopped by pid."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.log_dir = log_dir
        self.forker = start_server_forker(env, log_dir)
        self.children: list[Child] = []
        self.lock = threading.Lock()

    def spawn(self) -> Child:
        port = free_port()
        child = Child(port, fork_server(self.forker, port), self.log_dir / f"server-{port}.log")
        with self.lock:
            self.children.append(child)
        return child

    def wait_ready(self, child: Child, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{child.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server on {child.port} did not start:\n{child.log.read_text()}")

    def live(self) -> list[Child]:
        with self.lock:
            return [child for child in self.children if child.alive()]

    def ready(self) -> list[Child]:
        ready = []
        for child in self.live():
            if not child.ready:
                with contextlib.suppress(httpx.TransportError):
                    child.ready = httpx.get(f"{child.url}/health", timeout=1).status_code == 200
            if child.ready:
                ready.append(child)
        return ready

    def kill(self, child: Child) -> None:
        os.kill(child.pid, signal.SIGKILL)
        while child.alive():
            time.sleep(0.01)

    def stop(self) -> None:
        for child in self.live():
            os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while self.live() and time.monotonic() < deadline:
            time.sleep(0.1)
        for child in self.live():
            os.kill(child.pid, signal.SIGKILL)
        assert self.forker.stdin is not None
        self.forker.stdin.close()
        self.forker.wait(timeout=30)


@dataclass
class Follower:
    """A client reading one run's stream, reconnecting wherever it can after each kill."""

    response_id: str
    cluster: Cluster
    numbers: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    reconnects: int = 0
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            servers = self.cluster.live()
            if not servers:
                time.sleep(0.1)
                continue
            client = OpenAI(
                base_url=random.choice(servers).url,
                api_key="not-used",
                max_retries=0,
                timeout=30,
            )
            try:
                last = self.numbers[-1] if self.numbers else 0
                for event in client.responses.retrieve(
                    self.response_id, stream=True, starting_after=last
                ):
                    self.numbers.append(event.sequence_number)
                    self.types.append(event.type)
                if self.types and self.types[-1] == "response.completed":
                    return
            except Exception:  # the server died under us: go on elsewhere
                pass
            self.reconnects += 1
            time.sleep(0.05)


def in_progress_owners(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT response_id, owner FROM background_responses WHERE status = 'in_progress'"
        ).fetchall()
    return {response_id: int(owner.rsplit(":", 1)[1]) for response_id, owner in rows}


def start_runs(cluster: Cluster, first: int, count: int) -> dict[str, str]:
    """Background runs spread over the ready servers; returns response id → thread id."""
    started = {}
    servers = cluster.ready()
    for n in range(first, first + count):
        thread_id = f"take-{n}"
        text = f"notify {thread_id}" if n % 3 == 0 else f"append {ROWS} {thread_id}"
        client = OpenAI(base_url=servers[n % len(servers)].url, api_key="x", max_retries=0)
        created = client.responses.create(
            model="agent",
            input=text,
            background=True,
            extra_body={"custom_inputs": {"thread_id": thread_id}},
        )
        started[created.id] = thread_id
    return started


@pytest.fixture(scope="module")
def database_url(module_database_url: str) -> str:
    return module_database_url


@pytest.fixture(scope="module")
def cluster(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("takeover")
    env = background_env(home, module_database_url, "0.15:0.4")
    env["BACKGROUND_DRAIN_SECONDS"] = "4"
    running = Cluster(env, home)
    try:
        for child in [running.spawn() for _ in range(SERVERS)]:
            running.wait_ready(child)
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_kill_9_the_owner_at_random_points_and_every_run_completes_once(
    cluster: Cluster, database_url: str
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    runs: dict[str, str] = {}
    followers: list[Follower] = []
    kills: list[str] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(kills) < KILLS and time.monotonic() < deadline:
        owners = in_progress_owners(database_url)
        if len(owners) < RUNNING:  # keep runs going: something to kill at any moment
            started = start_runs(cluster, len(runs), RUNNING - len(owners))
            runs.update(started)
            for response_id in started:
                follower = Follower(response_id, cluster)
                follower.start()
                followers.append(follower)
            continue
        by_pid = {child.pid: child for child in cluster.ready()}
        targets = [pid for pid in owners.values() if pid in by_pid]
        if not targets or len(by_pid) < 2:  # a run being taken over, or too few servers
            print()
            time.sleep(0.05)
            continue
        victim = by_pid[rng.choice(targets)]
        if len(kills) % 2:  # inside a tool: just after one starts
            seen = victim.tool_lines()
            until = time.monotonic() + 2
            while victim.tool_lines() == seen and time.monotonic() < until:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
        else:
            time.sleep(rng.uniform(0, 0.6))
        log = victim.log.read_text(errors="replace") if victim.log.exists() else ""
        last_line = [line for line in log.splitlines() if line.startswith("tool-")][-1:]
        cluster.kill(victim)
        kills.append(last_line[0].split(" ")[0] if last_line else "none")
        cluster.spawn()  # a replacement, ready in a second or two
    assert len(kills) >= KILLS, f"only {len(kills)} kills in time (seed {seed})"
    print(f"seed {seed}: {len(kills)} kills, {len(runs)} runs; last tool line: {Counter(kills)}")

    for follower in followers:
        assert follower.thread is not None
        follower.thread.join(timeout=max(1.0, deadline + 60 - time.monotonic()))

    with psycopg.connect(database_url) as conn:
        statuses = dict(
            conn.execute("SELECT response_id, status FROM background_responses").fetchall()
        )
        attempts = conn.execute("SELECT max(attempt_number) FROM background_responses").fetchone()
        rows = conn.execute(
            "SELECT thread_id, tool_call_id, tool FROM test_side_effects"
        ).fetchall()
        ledger = conn.execute(
            "SELECT thread_id, tool_call_id, state FROM tool_call_ledger"
        ).fetchall()
    assert {r: statuses[r] for r in runs} == dict.fromkeys(runs, "completed"), seed
    assert attempts is not None and attempts[0] > 1, "no run was ever taken over"
    for follower in followers:
        expected = list(range(1, len(follower.numbers) + 1))
        assert follower.numbers == expected, (seed, follower.response_id, follower.numbers)
        assert follower.types[-1] == "response.completed", (seed, follower.types[-3:])

    transactional = Counter((t, c) for t, c, tool in rows if tool == "append_row")
    external = Counter((t, c) for t, c, tool in rows if tool == "notify")
    assert set(transactional.values()) == {1}, (seed, transactional)
    assert set(external.values()) <= {1}, (seed, external)
    done = {(t, c) for t, c, state in ledger if state == "done"}
    assert set(transactional) <= done  # every effect that happened is recorded once
    client = OpenAI(base_url=cluster.ready()[0].url, api_key="x", max_retries=0)
    for response_id, thread_id in runs.items():
        answer = client.responses.retrieve(response_id).output[-1].content[0].text
        if int(thread_id.rsplit("-", 1)[1]) % 3 == 0:
            assert "notif" in answer or "Outcome unknown" in answer, answer  # at most once
            continue
        assert answer == f"done: appended {ROWS} rows for {thread_id}", (seed, answer)
        calls = [call for (thread, call) in transactional if thread == thread_id]
        assert len(calls) == ROWS, (seed, thread_id, calls)


def test_sigterm_finishes_a_short_run_and_hands_a_long_one_over(
    cluster: Cluster, database_url: str
) -> None:
    victim = cluster.ready()[0]
    client = OpenAI(base_url=victim.url, api_key="x", max_retries=0)
    started = {}
    for thread_id, text in (
        ("term-short", "append 1 term-short"),
        ("term-long", "append 12 term-long"),
    ):
        created = client.responses.create(
            model="agent",
            input=text,
            background=True,
            extra_body={"custom_inputs": {"thread_id": thread_id}},
        )
        started[thread_id] = created.id
    seen = victim.tool_lines()
    while victim.tool_lines() < seen + 2:
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGTERM)  # drain: 4 s, then hand over
    cluster.spawn()
    while victim.alive():
        time.sleep(0.05)

    survivor = OpenAI(base_url=cluster.ready()[0].url, api_key="x", max_retries=0)
    deadline = time.monotonic() + 90
    finished: dict[str, Any] = {}
    while len(finished) < 2 and time.monotonic() < deadline:
        for thread_id, response_id in started.items():
            response = survivor.responses.retrieve(response_id)
            if response.status != "in_progress":
                finished[thread_id] = response
        time.sleep(0.1)
    assert {t: r.status for t, r in finished.items()} == {
        "term-short": "completed",
        "term-long": "completed",
    }
    with psycopg.connect(database_url) as conn:
        attempts = dict(
            conn.execute(
                "SELECT thread_id, attempt_number FROM background_responses "
                "WHERE thread_id LIKE 'term-%'"
            ).fetchall()
        )
        rows = conn.execute(
            "SELECT tool_call_id FROM test_side_effects WHERE thread_id = 'term-long'"
        ).fetchall()
    assert attempts["term-short"] == 1  # finished during the drain, by its own process
    assert attempts["term-long"] >= 2  # handed over, continued elsewhere
    assert len(rows) == 12 and len(set(rows)) == 12
    assert (
        finished["term-long"].output[-1].content[0].text == "done: appended 12 rows for term-long"
    )
