"""The database package: embedded server lifecycle, pools, and unreachable targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from database import DatabaseUnavailable, EmbeddedTarget, UrlTarget, open_database
from database.targets import redact_url


def test_url_target_pool_runs_queries(database_url: str) -> None:
    with open_database(UrlTarget(database_url)) as db, db.pool.connection() as conn:
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
    assert row is not None and row["extversion"].startswith("0.")


def test_unreachable_url_raises_one_line_reason(tmp_path: Path) -> None:
    missing_socket_dir = tmp_path / "no-server-here"
    missing_socket_dir.mkdir()
    url = f"postgresql://postgres@/x?host={missing_socket_dir}&connect_timeout=2"
    with pytest.raises(DatabaseUnavailable) as excinfo, open_database(UrlTarget(url)):
        pass
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith("cannot connect to Postgres at")


def test_embedded_target_keeps_data_between_runs(tmp_path: Path) -> None:
    target = EmbeddedTarget(tmp_path / "home")
    with open_database(target) as db, db.pool.connection() as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    with open_database(target) as db, db.pool.connection() as conn:
        row = conn.execute("SELECT v FROM kept").fetchone()
    assert row == {"v": 42}


def test_embedded_server_stops_when_last_handle_closes(tmp_path: Path) -> None:
    import psutil

    target = EmbeddedTarget(tmp_path / "home")
    with open_database(target) as db:
        assert db.embedded is not None
        pid_file = db.embedded.data_directory / "postmaster.pid"
        server_pid = int(pid_file.read_text().splitlines()[0])
        assert psutil.pid_exists(server_pid)
    assert not pid_file.exists()
    assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == "zombie"


def test_redact_url_hides_password() -> None:
    assert "s3cret" not in redact_url("postgresql://agent:s3cret@db.example.com:5432/app")
    assert "***" in redact_url("host=db user=agent password=s3cret")
