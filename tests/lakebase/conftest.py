"""Fixtures: a fake Lakebase (REST stand-in + real Postgres behind TLS), one per module.

Postgres must run as an unprivileged user when tests run as root, so its files
live in a directory of their own under the system temp dir rather than in
pytest's (root-only) tmp_path.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lakebase_harness import FakeLakebase


@pytest.fixture(scope="module")
def fake_lakebase() -> Iterator[FakeLakebase]:
    root = Path(tempfile.mkdtemp(prefix="fake-lakebase-"))
    fake = FakeLakebase(root)
    try:
        yield fake.start()
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def workspace_client(fake_lakebase: FakeLakebase) -> Any:
    """The real databricks-sdk WorkspaceClient, pointed at the stand-in."""
    return fake_lakebase.workspace_client()
