"""Health: one call (and `memory-agent status`) saying whether memory works, and why not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from checkpointing import CHECKPOINT_TABLES, setup_checkpoint_tables
from database import LakebaseTarget, UrlTarget, open_database
from database.health import atarget_health, check_health, target_health
from setup_lakebase import STORE_TABLES
from tests.lakebase_harness import FakeLakebase

ROOT = Path(__file__).resolve().parents[2]


def test_lakebase_health_reports_tables_pool_and_tokens(
    fake_lakebase: FakeLakebase, workspace_client: Any
) -> None:
    target = LakebaseTarget(instance_name="agent-memory")
    with open_database(target, workspace_client=workspace_client, min_size=1) as db:
        before = check_health(db, required=CHECKPOINT_TABLES, optional=STORE_TABLES)
        assert before.connected and not before.memory_available
        assert before.tables_missing == list(CHECKPOINT_TABLES)
        setup_checkpoint_tables(db.pool)
        fake_lakebase.rotate_token()
        db.pool.drain()
        after = check_health(db, required=CHECKPOINT_TABLES, optional=STORE_TABLES)
    assert after.memory_available
    assert after.backend == "lakebase" and after.server_version.startswith("18")
    assert after.tables_present == list(CHECKPOINT_TABLES)
    assert after.optional_missing == list(STORE_TABLES)
    assert after.pool["pool_max"] == 10 and after.pool["pool_size"] >= 1
    assert after.credentials is not None and after.credentials["refused"] >= 1
    assert "tokens:" in "\n".join(after.lines())


def test_unreachable_lakebase_is_a_report_not_an_exception(workspace_client: Any) -> None:
    health = target_health(
        LakebaseTarget(instance_name="missing-instance"),
        required=CHECKPOINT_TABLES,
        workspace_client=workspace_client,
    )
    assert not health.connected and not health.memory_available
    assert health.problem and "\n" not in health.problem
    assert health.as_dict()["memory_available"] is False


async def test_async_health_on_postgres(database_url: str) -> None:
    health = await atarget_health(UrlTarget(database_url), required=CHECKPOINT_TABLES)
    assert health.connected and health.backend == "postgres"
    assert health.tables_missing == list(CHECKPOINT_TABLES)


def test_status_command_in_a_real_process(subprocess_env: dict[str, str]) -> None:
    def status(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "status", *args],
            env=subprocess_env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    empty = status()
    assert empty.returncode == 1
    assert "memory:    unavailable" in empty.stdout
    assert "fix:       run `python setup_lakebase.py`" in empty.stdout
    setup = subprocess.run(
        [sys.executable, "setup_lakebase.py"],
        env=subprocess_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr
    ready = status("--json")
    assert ready.returncode == 0, ready.stderr
    report = json.loads(ready.stdout)
    assert report["memory_available"] is True and report["backend"] == "postgres"
    assert report["tables_missing"] == [] and report["optional_missing"] == []
    assert report["pool"]["pool_max"] >= 1
