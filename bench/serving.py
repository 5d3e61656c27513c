"""Serving under many users: our server against the stock reference, side by side.

``python -m bench --only serving`` starts ``python -m serving.server`` and
``python -m bench.stock_server`` (MLflow AgentServer, the same graph on
LangGraph's stock AsyncPostgresSaver and AsyncPostgresStore, see that module)
on two fresh databases of one embedded Postgres, with the offline model, and
drives both with N concurrent clients (N = 1, 8, 32, 128), each its own user
and thread, each sending ``--turns`` turns. The servers take turns (the order
alternates per round), each level is repeated ``--rounds`` times, and the
table shows medians: requests/s, p50 and p99 latency, errors (non-200,
an error event in a 200 stream, timeouts), plus the slowest ``/health`` and
``/memory/status`` answer seen while the load ran. Clients retry a 503 after
its ``Retry-After`` at most twice, as the OpenAI client does; those retries
are counted apart (a request that still fails is an error). Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import bench_database, markdown_table, median, percentile, write_report

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32, 128)
CLIENT_TIMEOUT_SECONDS = 120.0


@dataclass
class Sample:
    """One server at one level in one round."""

    requests: int = 0
    errors: int = 0
    retried: int = 0
    """503 answers retried after their Retry-After, as the OpenAI client does (2 at most)."""
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    slowest_health: float = 0.0
    slowest_status: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _start(command: list[str], home: Path, env_extra: dict[str, str]) -> tuple[Any, str]:
    import httpx

    from tests.serving.conftest import free_port  # the same helper the HTTP tests use

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEBASE_", "DATABRICKS_"))}
    env.update(MEMORY_AGENT_HOME=str(home), AGENT_MODEL="offline", PYTHONPATH=str(REPO))
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(env_extra)
    log = (home / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}; see {log.name}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command} did not start")


def _stop(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def _client(client: Any, run: str, user: int, turns: int, sample: Sample) -> None:
    import httpx

    for turn in range(turns):
        text = (
            f"remember that my code is {run}-{user}" if turn == 0 else f"what is my code? ({turn})"
        )
        payload = {
            "input": [{"role": "user", "content": text}],
            "custom_inputs": {"thread_id": f"t-{run}-{user}", "user_id": f"u-{run}-{user}"},
        }
        started = time.perf_counter()
        ok = False
        try:
            for attempt in range(3):
                response = await client.post("/responses", json=payload)
                if response.status_code != 503 or attempt == 2:
                    break
                sample.retried += 1
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            ok = response.status_code == 200 and "error" not in response.json()
        except (httpx.HTTPError, ValueError):
            pass
        sample.latencies.append(time.perf_counter() - started)
        sample.requests += 1
        sample.errors += 0 if ok else 1


async def _watch(client: Any, sample: Sample, has_status: bool, stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await client.get("/health")
        sample.slowest_health = max(sample.slowest_health, time.perf_counter() - started)
        if has_status:
            started = time.perf_counter()
            await client.get("/memory/status")
            sample.slowest_status = max(sample.slowest_status, time.perf_counter() - started)
        await asyncio.sleep(0.25)


async def _drive(url: str, clients: int, turns: int, has_status: bool) -> Sample:
    import httpx

    sample = Sample()
    run = uuid.uuid4().hex[:8]
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with (
        httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS, limits=limits) as client,
        httpx.AsyncClient(base_url=url, timeout=CLIENT_TIMEOUT_SECONDS) as watcher,
    ):
        stop = asyncio.Event()
        watching = asyncio.create_task(_watch(watcher, sample, has_status, stop))
        started = time.perf_counter()
        await asyncio.gather(*(_client(client, run, u, turns, sample) for u in range(clients)))
        sample.seconds = time.perf_counter() - started
        stop.set()
        await watching
    return sample


def run(
    *, url: str | None = None, turns: int = 3, rounds: int = 3, levels: tuple[int, ...] = LEVELS
) -> dict[str, Any]:
    """Measure both servers; return {level: {server: [Sample, ...]}}."""
    samples: dict[int, dict[str, list[Sample]]] = {n: {"ours": [], "stock": []} for n in levels}
    with (
        tempfile.TemporaryDirectory(prefix="bench-serving-") as directory,
        bench_database(url) as ours_url,
        bench_database(url) as stock_url,
    ):
        home = Path(directory)
        ours, ours_at = _start(
            [sys.executable, "-m", "serving.server", "--no-tracing"],
            home,
            {"DATABASE_URL": ours_url, "AUTO_SETUP": "1"},
        )
        try:
            stock, stock_at = _start(
                [sys.executable, "-m", "bench.stock_server", stock_url], home, {}
            )
            try:
                servers = {"ours": (ours_at, True), "stock": (stock_at, False)}
                for at, has_status in servers.values():  # warm both up
                    asyncio.run(_drive(at, 2, 2, has_status))
                for round_ in range(rounds):
                    for clients in levels:
                        order = ["ours", "stock"] if round_ % 2 == 0 else ["stock", "ours"]
                        for name in order:
                            at, has_status = servers[name]
                            sample = asyncio.run(_drive(at, clients, turns, has_status))
                            samples[clients][name].append(sample)
                            print(
                                f"round {round_ + 1} {name:5} {clients:3} clients: "
                                f"{sample.per_second:6.1f} req/s, {sample.errors} errors",
                                file=sys.stderr,
                            )
            finally:
                _stop(stock)
        finally:
            _stop(ours)
    return {"turns": turns, "rounds": rounds, "samples": samples}


def render(report: dict[str, Any]) -> str:
    rows = []
    data: dict[str, Any] = {}
    for clients, by_server in report["samples"].items():
        figures = {}
        for name, samples in by_server.items():
            latencies = [x for sample in samples for x in sample.latencies]
            figures[name] = {
                "rps": median([s.per_second for s in samples]),
                "p50": percentile(latencies, 0.5) * 1000,
                "p99": percentile(latencies, 0.99) * 1000,
                "errors": sum(s.errors for s in samples),
                "retried": sum(s.retried for s in samples),
                "requests": sum(s.requests for s in samples),
                "health": max(s.slowest_health for s in samples) * 1000,
                "status": max(s.slowest_status for s in samples) * 1000,
            }
        ours, stock = figures["ours"], figures["stock"]
        data[str(clients)] = figures
        rows.append(
            [
                clients,
                f"{ours['rps']:.1f}",
                f"{stock['rps']:.1f}",
                f"{ours['rps'] / stock['rps']:.2f}x" if stock["rps"] else "n/a",
                f"{ours['p50']:.0f} / {ours['p99']:.0f}",
                f"{stock['p50']:.0f} / {stock['p99']:.0f}",
                f"{ours['errors']} / {ours['requests']} ({ours['retried']})",
                f"{stock['errors']} / {stock['requests']} ({stock['retried']})",
                f"{ours['health']:.0f} / {ours['status']:.0f}",
                f"{stock['health']:.0f}",
            ]
        )
    table = markdown_table(
        [
            "clients",
            "ours req/s",
            "stock req/s",
            "ours/stock",
            "ours p50/p99 ms",
            "stock p50/p99 ms",
            "ours errors (503s retried)",
            "stock errors (503s retried)",
            "ours slowest /health, /memory/status ms",
            "stock slowest /health ms",
        ],
        rows,
    )
    heading = (
        f"Serving benchmark: {report['turns']} turns per client, median of "
        f"{report['rounds']} interleaved rounds (errors and latencies over all rounds)"
    )
    markdown = f"{heading}\n\n{table}\n"
    write_report("serving", markdown, {"turns": report["turns"], "levels": data})
    return markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    levels = tuple(int(n) for n in args.levels.split(","))
    print(render(run(url=args.url, turns=args.turns, rounds=args.rounds, levels=levels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
