"""The notebooks run top to bottom (embedded Postgres, offline model) with no cell erroring.

Each notebook makes its own MEMORY_AGENT_HOME and stops its own server in its
last cell; they are stored without outputs, and this test never writes them back.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_three_notebooks_stored_without_outputs() -> None:
    assert [path.name for path in NOTEBOOKS] == [
        "01_short_term_memory.ipynb",
        "02_long_term_memory.ipynb",
        "03_pause_resume_time_travel.ipynb",
    ]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def stop_servers_under(folder: Path) -> None:
    """Stop every embedded Postgres whose data directory is under ``folder``.

    A notebook stops its own server in its last cell; when an earlier cell
    fails, that cell never runs, so the test stops what the notebook started.
    """
    for pid_file in folder.rglob("postmaster.pid"):
        pid = int(pid_file.read_text().splitlines()[0])
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # Postgres' "fast" shutdown
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.read(path, as_version=4)
    # The kernel inherits this environment: clean_env has removed every agent variable.
    assert "DATABASE_URL" not in os.environ
    # The notebook makes its home with tempfile.mkdtemp: put it in a folder this test owns.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    try:
        client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    finally:
        stop_servers_under(tmp_path)
