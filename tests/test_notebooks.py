"""The notebooks run top to bottom (embedded Postgres, offline model) with no cell erroring.

Each notebook makes its own MEMORY_AGENT_HOME and stops its own server in its
last cell; they are stored without outputs, and this test never writes them back.
"""

from __future__ import annotations

import os
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


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    # The kernel inherits this environment: clean_env has removed every agent variable.
    assert "DATABASE_URL" not in os.environ
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
