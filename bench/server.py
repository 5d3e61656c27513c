"""Benchmark the HTTP server: start-up, request latency, history resends, tracing cost.

``python -m bench.server`` starts ``python -m serving.server`` twice (with and
without MLflow tracing) on the embedded database with the offline model, in a
temporary MEMORY_AGENT_HOME, and prints medians of repeated requests made with
the OpenAI client. Figures, not assertions: compare the columns side by side.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(home: Path, tracing: bool) -> tuple[subprocess.Popen[bytes], str, float]:
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LAKEBASE_"))}
    env.update(MEMORY_AGENT_HOME=str(home), AGENT_MODEL="offline", PYTHONPATH=str(REPO))
    env.pop("DATABRICKS_APP_NAME", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "serving.server", "--port", str(port)]
    if not tracing:
        command.append("--no-tracing")
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.05)


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms"


def _measure(url: str, repeats: int) -> dict[str, str]:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="unused", max_retries=0)
    figures: dict[str, str] = {}

    def timed(**kwargs: Any) -> tuple[float, Any]:
        started = time.perf_counter()
        response = client.responses.create(model="agent", **kwargs)
        if kwargs.get("stream"):
            response = list(response)
        return time.perf_counter() - started, response

    client.responses.create(model="agent", input="warm up")
    fresh = [timed(input="hello")[0] for _ in range(repeats)]
    figures["new thread, one message"] = _median_ms(fresh)

    thread = {"custom_inputs": {"thread_id": f"bench-{uuid.uuid4()}"}}
    history: list[Any] = []
    only_new, resent = [], []
    for turn in range(repeats):
        text = f"my fact {turn} is value {turn}"
        elapsed, response = timed(input=text, extra_body=thread)
        only_new.append(elapsed)
        history += [{"role": "user", "content": text}]
        history += [item.model_dump(exclude_none=True) for item in response.output]
    figures[f"same thread, newest message only (turn 1..{repeats})"] = _median_ms(only_new)
    resend_thread = {"custom_inputs": {"thread_id": f"bench-{uuid.uuid4()}"}}
    resent_history: list[Any] = []
    for turn in range(repeats):
        text = f"my fact {turn} is value {turn}"
        elapsed, response = timed(
            input=[*resent_history, {"role": "user", "content": text}], extra_body=resend_thread
        )
        resent.append(elapsed)
        resent_history += [{"role": "user", "content": text}]
        resent_history += [item.model_dump(exclude_none=True) for item in response.output]
    figures[f"same thread, whole history resent (turn 1..{repeats})"] = _median_ms(resent)
    streamed = [timed(input="what time is it?", stream=True)[0] for _ in range(repeats)]
    figures["streamed, with a tool call"] = _median_ms(streamed)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__)
    parser.add_argument("--repeats", type=int, default=20, help="requests per figure")
    args = parser.parse_args(argv)
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-server-") as directory:
        for tracing in (False, True):
            label = "tracing on" if tracing else "tracing off"
            # The first start initialises the embedded database; time the second.
            process, url, _ = _start(Path(directory), tracing)
            if not tracing:
                process.terminate()
                process.wait()
                process, url, _ = _start(Path(directory), tracing)
            startup = None
            try:
                figures = _measure(url, args.repeats)
            finally:
                process.terminate()
                process.wait()
            process, url, startup = _start(Path(directory), tracing)
            process.terminate()
            process.wait()
            results[label] = {"start-up to /health": f"{startup * 1000:8.1f} ms", **figures}
    names = list(results["tracing off"])
    width = max(len(name) for name in names)
    print(f"{'median of ' + str(args.repeats):<{width}}  {'tracing off':>12}  {'tracing on':>12}")
    for name in names:
        print(
            f"{name:<{width}}  {results['tracing off'][name]:>12}  {results['tracing on'][name]:>12}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
