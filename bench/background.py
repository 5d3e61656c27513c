"""Benchmark background runs: takeover time after kill -9, and the event log's cost per event.

``python -m bench --only background``

- **Takeover**: two server processes (the slow-tool test app of
  tests/serving/background_app.py, forked by tests/workers/server_forker.py) on
  one embedded database, with the default ``TAKEOVER_SCAN_SECONDS`` (1 s). Each
  round starts a long background run, kills its owner with SIGKILL mid-run and
  times how long until the other process has claimed it (``owner`` changes) and
  until the claimed run stores its next event. A replacement server is forked
  after each kill.
- **Event log**: storing one stream event with ``RunConnection.append`` (the
  fenced insert every background event goes through) against a plain INSERT of
  the same row into an identical unfenced table, interleaved in rounds, with
  events of two sizes (a text delta, a finished output item).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.common import bench_database, markdown_table, median, percentile, write_report

REPO = Path(__file__).resolve().parents[1]
DELTA_EVENT = {
    "type": "response.output_text.delta",
    "item_id": "msg_" + "0" * 32,
    "output_index": 3,
    "content_index": 0,
    "delta": "a few words of the answer ",
}
ITEM_EVENT = {
    "type": "response.output_item.done",
    "output_index": 4,
    "item": {
        "type": "message",
        "id": "msg_" + "1" * 32,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "word " * 80, "annotations": []}],
    },
}


def _spawn(forker: subprocess.Popen[str]) -> tuple[str, int]:
    from tests.processes import fork_server
    from tests.serving.conftest import free_port

    port = free_port()
    pid = fork_server(forker, port)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return url, pid
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def _row(conn: psycopg.Connection[Any], response_id: str) -> tuple[str, int, int]:
    row = conn.execute(
        "SELECT owner, attempt_number, (SELECT coalesce(max(sequence_number), 0) "
        "FROM background_events WHERE response_id = %s) FROM background_responses "
        "WHERE response_id = %s",
        (response_id, response_id),
    ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1]), int(row[2])


def takeover(database_url: str, rounds: int) -> dict[str, Any]:
    """Kill the owner of a running background run ``rounds`` times; time each takeover."""
    home = Path(tempfile.mkdtemp(prefix="bench-background-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAKEOVER_", "POLL_"))}
    env.update(
        DATABASE_URL=database_url,
        MEMORY_AGENT_HOME=str(home),
        AGENT_MODEL="offline",
        TOOL_SLEEP="0.2:0.3",
    )
    from tests.processes import start_server_forker

    forker = start_server_forker(env, home)
    servers = dict(_spawn(forker) for _ in range(2))  # url → pid
    claims: list[float] = []
    resumes: list[float] = []
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for n in range(rounds):
                url = random.choice(list(servers))
                created = httpx.post(
                    f"{url}/responses",
                    json={
                        "input": f"append 40 bench-{n}-{uuid.uuid4().hex[:6]}",
                        "background": True,
                    },
                    timeout=60,
                ).json()
                response_id = created["id"]
                while _row(conn, response_id)[2] < 4:  # running: a few events stored
                    time.sleep(0.02)
                owner, attempt, last = _row(conn, response_id)
                pid = int(owner.rsplit(":", 1)[1])
                killed_url = next(u for u, p in servers.items() if p == pid)
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
                del servers[killed_url]
                claimed = None
                while True:
                    _, attempt_now, last_now = _row(conn, response_id)
                    if claimed is None and attempt_now > attempt:
                        claimed = time.monotonic() - killed_at
                    if claimed is not None and last_now > last:
                        resumes.append(time.monotonic() - killed_at)
                        claims.append(claimed)
                        break
                    if time.monotonic() - killed_at > 60:
                        raise RuntimeError(f"{response_id} was not taken over in 60 s")
                    time.sleep(0.01)
                survivor = next(iter(servers))
                httpx.post(f"{survivor}/responses/{response_id}/cancel", timeout=60)
                new_url, new_pid = _spawn(forker)
                servers[new_url] = new_pid
    finally:
        for pid in servers.values():
            os.kill(pid, signal.SIGTERM)
        assert forker.stdin is not None
        forker.stdin.close()
        forker.wait(timeout=30)
    return {
        "rounds": rounds,
        "claim_seconds": claims,
        "resume_seconds": resumes,
    }


async def _event_log(database_url: str, events: int, rounds: int) -> dict[str, Any]:
    from psycopg_pool import AsyncConnectionPool

    from database.connect import CONNECTION_KWARGS
    from serving.events import asetup_background_tables, create_response

    async with AsyncConnectionPool(
        database_url, kwargs=CONNECTION_KWARGS, min_size=1, max_size=2, open=False
    ) as pool:
        await asetup_background_tables(pool)
        async with pool.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS plain_events "
                "(LIKE background_events INCLUDING DEFAULTS INCLUDING INDEXES)"
            )
        timings: dict[str, list[float]] = {}
        conn = await psycopg.AsyncConnection.connect(database_url, **CONNECTION_KWARGS)
        try:
            for round_number in range(rounds):
                for kind, event in (("delta", DELTA_EVENT), ("item", ITEM_EVENT)):
                    run = await create_response(
                        conn,
                        response_id=f"resp_bench_{round_number}_{kind}_{uuid.uuid4().hex}",
                        thread_id="bench",
                        user_id=None,
                        request={"input": []},
                        base_checkpoint_id=None,
                        base_messages=0,
                        owner="bench",
                    )
                    started = time.perf_counter()
                    for _ in range(events):
                        await run.append(event)
                    timings.setdefault(f"log {kind}", []).append(
                        (time.perf_counter() - started) / events
                    )
                    await run.finish("completed")  # not an orphan for the takeover part
                    plain_id = f"plain_{uuid.uuid4().hex}"
                    started = time.perf_counter()
                    for sequence in range(1, events + 1):
                        await conn.execute(
                            "INSERT INTO plain_events (response_id, sequence_number, "
                            "attempt_number, event) VALUES (%s, %s, 1, %s)",
                            (
                                plain_id,
                                sequence,
                                json.dumps({**event, "sequence_number": sequence}),
                            ),
                        )
                    timings.setdefault(f"plain {kind}", []).append(
                        (time.perf_counter() - started) / events
                    )
        finally:
            await conn.close()
    return {"events_per_round": events, "rounds": rounds, "seconds_per_event": timings}


def run(url: str | None = None, rounds: int = 20, events: int = 500) -> dict[str, Any]:
    with bench_database(url) as database_url:
        log = asyncio.run(_event_log(database_url, events, 5))
        report = takeover(database_url, rounds)
    report["event_log"] = log
    return report


def render(report: dict[str, Any]) -> str:
    claims, resumes = report["claim_seconds"], report["resume_seconds"]
    takeover_table = markdown_table(
        ["after kill -9", "median s", "p95 s", "max s", "rounds"],
        [
            [
                "claimed by the other process",
                median(claims),
                percentile(claims, 0.95),
                max(claims),
                len(claims),
            ],
            [
                "next event stored",
                median(resumes),
                percentile(resumes, 0.95),
                max(resumes),
                len(resumes),
            ],
        ],
    )
    timings = report["event_log"]["seconds_per_event"]
    rows = []
    for kind, size in (
        ("delta", len(json.dumps(DELTA_EVENT))),
        ("item", len(json.dumps(ITEM_EVENT))),
    ):
        logged, plain = median(timings[f"log {kind}"]), median(timings[f"plain {kind}"])
        rows.append([f"{kind} ({size} B)", logged * 1e6, plain * 1e6, logged / plain])
    log_table = markdown_table(
        ["event", "event log µs/event", "plain INSERT µs/event", "ratio"], rows
    )
    markdown = (
        "## Background runs\n\nTakeover (TAKEOVER_SCAN_SECONDS=1, default):\n\n"
        f"{takeover_table}\n\nEvent log cost (medians of {report['event_log']['rounds']} rounds "
        f"of {report['event_log']['events_per_round']} events, one connection, embedded Postgres):\n\n"
        f"{log_table}\n"
    )
    write_report("background", markdown, report)
    return markdown


if __name__ == "__main__":
    print(render(run()))
