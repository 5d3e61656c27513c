"""What our LakebasePool extension buys, and what it costs: reconnects with and without rotation.

Against the fake Lakebase of the test suite (real databricks-sdk client, REST
stand-in, real Postgres behind TLS), for the bridge's ``LakebasePool`` alone
and for ours (``database.lakebase``), both with one pooled connection:

- reconnect: drain the pool, time the next query (a login with the cached token);
  this is the normal path, where our wrapper must cost nothing measurable;
- after rotation: rotate the token (the cached one is now refused), drain,
  time the next query. Ours mints a new token and succeeds; the bridge keeps
  offering the refused token until its 15-minute cache expires, so the query
  fails after the pool timeout (3 s here).

Medians of repeats; printed side by side and written to bench/results/lakebase_rotation.*.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import markdown_table, median, write_report

REPEATS = 7
BRIDGE_TIMEOUT = 3.0


def _timed_query(pool: Any) -> tuple[float, bool]:
    started = time.perf_counter()
    try:
        with pool.connection() as conn:
            conn.execute("SELECT 1")
    except Exception:
        return (time.perf_counter() - started) * 1000, False
    return (time.perf_counter() - started) * 1000, True


def _measure(fake: Any, pool: Any, repeats: int) -> dict[str, Any]:
    reconnect = []
    for _ in range(repeats):
        pool.drain()
        reconnect.append(_timed_query(pool)[0])
    rotated, failures = [], 0
    for _ in range(repeats):
        fake.rotate_token()
        pool.drain()
        elapsed, ok = _timed_query(pool)
        rotated.append(elapsed)
        failures += not ok
    return {
        "reconnect_ms": median(reconnect),
        "after_rotation_ms": median(rotated),
        "failed_after_rotation": f"{failures}/{repeats}",
    }


def run(repeats: int = REPEATS) -> dict[str, Any]:
    from databricks_ai_bridge.lakebase import LakebasePool

    from database import LakebaseTarget
    from database.lakebase import open_lakebase_pool
    from tests.lakebase_harness import FakeLakebase

    root = Path(tempfile.mkdtemp(prefix="fake-lakebase-bench-"))
    fake = FakeLakebase(root)
    try:
        fake.start()
        client = fake.workspace_client()
        ours = open_lakebase_pool(
            LakebaseTarget(instance_name="agent-memory"),
            workspace_client=client,
            min_size=1,
            max_size=1,
        )
        try:
            ours_result = _measure(fake, ours, repeats)
        finally:
            ours.close()
        bridge = LakebasePool(
            instance_name="agent-memory",
            workspace_client=client,
            min_size=1,
            max_size=1,
            timeout=BRIDGE_TIMEOUT,
        )
        try:
            bridge.pool.wait(timeout=10)
            bridge_result = _measure(fake, bridge.pool, max(3, repeats // 2))
        finally:
            bridge.close()
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {"repeats": repeats, "ours": ours_result, "bridge": bridge_result}


def render(report: dict[str, Any]) -> str:
    rows = [
        [name, r["reconnect_ms"], r["after_rotation_ms"], r["failed_after_rotation"]]
        for name, r in (("bridge LakebasePool", report["bridge"]), ("ours", report["ours"]))
    ]
    markdown = (
        "# Lakebase token rotation\n\n"
        "Median milliseconds for the first query after the pool was drained "
        f"({report['repeats']} repeats; the bridge's pool timeout is {BRIDGE_TIMEOUT:.0f} s).\n\n"
        + markdown_table(
            ["pool", "reconnect (ms)", "after token rotation (ms)", "failed after rotation"], rows
        )
        + "\n"
    )
    write_report("lakebase_rotation", markdown, report)
    return markdown
