"""Entry points at the trust boundary: .env, a deployment without a database, CLI input."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graph.agent import MemoryUnavailableError, open_agent
from graph.settings import Settings
from tests.conftest import AGENT_ENV_VARS

REPO = Path(__file__).resolve().parent.parent


def _cli(args: list[bytes | str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in AGENT_ENV_VARS}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), "MEMORY_AGENT_HOME": str(cwd / "home"), **env},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
    )


# 9. Deployed with no database configured: no embedded server in the app container.
def test_deployed_without_a_database_runs_statelessly_or_fails_when_required(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"DATABRICKS_APP_NAME": "memory-agent", "MEMORY_AGENT_HOME": str(tmp_path / "home")}
    with caplog.at_level(logging.WARNING), open_agent(Settings.from_env(env)) as graph:
        assert graph.memory_available is False
        assert graph.checkpointer is None
        answer = graph.invoke({"messages": [("user", "my name is Ada")]})
        assert "Ada" in answer["messages"][-1].content
    assert not (tmp_path / "home").exists()  # no embedded data directory was made
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no database configured" in w and "\n" not in w for w in warnings)
    with (
        pytest.raises(MemoryUnavailableError, match="no database configured"),
        open_agent(Settings.from_env({**env, "MEMORY_REQUIRED": "1"})),
    ):
        pass


# 10. .env is read by the entry points; the environment wins over it.
def test_the_cli_reads_dotenv_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MEMORY_AGENT_KEEP_CHECKPOINTS=lots\n")
    from_file = _cli(["ask", "hi"], tmp_path)
    assert from_file.returncode == 2
    assert "MEMORY_AGENT_KEEP_CHECKPOINTS='lots'" in from_file.stderr
    (tmp_path / ".env").write_text("MEMORY_AGENT_KEEP_CHECKPOINTS=5\n")
    from_env = _cli(["ask", "hi"], tmp_path, MEMORY_AGENT_KEEP_CHECKPOINTS="many")
    assert from_env.returncode == 2
    assert "MEMORY_AGENT_KEEP_CHECKPOINTS='many'" in from_env.stderr


# 7. CLI: bad numbers, bad bytes and a blank user are exit 2 with one line, before any run.
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["ask", "hi", "--wait", "nan"], "--wait must be"),
        (["ask", "hi", "--wait", "-1"], "--wait must be"),
        (["ask", "hi", "--wait", "soon"], "invalid float value"),
        (["threads", "--limit", "many"], "invalid int value"),
        (["ask", "hi", "--user", "  "], "--user must not be empty"),
        ([b"ask", b"caf\xe9 au lait"], "not valid UTF-8"),
    ],
)
def test_cli_bad_input_is_exit_2_with_one_line(
    tmp_path: Path, args: list[bytes | str], says: str
) -> None:
    result = _cli(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "home").exists()  # refused before any database was started
