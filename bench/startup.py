"""How long `memory-agent ask` takes from launch, and what lazy imports save.

Target (docs/design.md): on the embedded default with the offline model,
`memory-agent ask` returns within 3 s of launch once the database has started
once. Each figure is the median of several fresh processes, measured side by
side in one run; the machine is shared, so ratios matter more than absolutes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPEATS = 7
IMPORT_REPEATS = 5
HEAVY_MODULES = [
    "langgraph.graph",
    "graph.agent",
    "databricks.sdk",
    "mlflow",
    "databricks_langchain",
]


def _wall_time(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… failed: {result.stderr.strip()[-300:]}")
    return elapsed


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def run() -> dict[str, Any]:
    """Measure; returns a report for ``render``."""
    home = tempfile.mkdtemp(prefix="memory-agent-bench-startup-")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "LAKEBASE_", "PG"))
    }
    env.update({"MEMORY_AGENT_HOME": home, "AGENT_MODEL": "offline"})
    ask = [sys.executable, "-m", "cli.main", "ask", "What is my name?", "--thread", "bench"]
    first = _wall_time(ask, env)  # initdb + first start + table setup
    cold_server = [_wall_time(ask, env) for _ in range(REPEATS)]

    # With the server already up (another process holds it), a run only joins it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from database import open_database, EmbeddedTarget; from pathlib import Path\n"
            "with open_database(EmbeddedTarget(Path(sys.argv[1]))):\n    print('up', flush=True); sys.stdin.read()",
            home,
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "up"
        warm_server = [_wall_time(ask, env) for _ in range(REPEATS)]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)

    imports = {
        module: _median(
            [
                _wall_time([sys.executable, "-c", f"import {module}"], env)
                for _ in range(IMPORT_REPEATS)
            ]
        )
        for module in HEAVY_MODULES
    }
    baseline = _median(
        [_wall_time([sys.executable, "-c", "pass"], env) for _ in range(IMPORT_REPEATS)]
    )
    return {
        "first_run_s": first,
        "ask_server_started_per_run_s": _median(cold_server),
        "ask_server_already_up_s": _median(warm_server),
        "ask_p_max_s": max(cold_server + warm_server),
        "python_startup_s": baseline,
        "imports_s": {module: seconds - baseline for module, seconds in imports.items()},
        "repeats": REPEATS,
    }


def render(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = [
        "## CLI start-up (`memory-agent ask`, embedded Postgres, offline model)",
        "",
        f"medians of {report['repeats']} fresh processes; target: < 3 s once the database has started once",
        "",
        "| case | seconds |",
        "|---|---|",
        f"| very first run (initdb, first start, create tables) | {report['first_run_s']:.2f} |",
        f"| ask, embedded server started and stopped by the run | {report['ask_server_started_per_run_s']:.2f} |",
        f"| ask, embedded server already up (joined) | {report['ask_server_already_up_s']:.2f} |",
        f"| slowest single ask | {report['ask_p_max_s']:.2f} |",
        "",
        f"import cost over a bare interpreter ({report['python_startup_s']:.2f} s), median of fresh processes:",
        "",
        "| module | seconds | imported by `ask` on the default path? |",
        "|---|---|---|",
    ]
    on_path = {"langgraph.graph", "graph.agent"}
    for module, seconds in report["imports_s"].items():
        lines.append(
            f"| `{module}` | {seconds:.2f} | {'yes' if module in on_path else 'no (lazy)'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(run()))
