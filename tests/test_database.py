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


def test_two_opens_in_one_process_share_the_server_until_both_close(tmp_path: Path) -> None:
    target = EmbeddedTarget(tmp_path / "home")
    with open_database(target) as outer:
        with open_database(target) as inner, inner.pool.connection() as conn:
            conn.execute("SELECT 1")
        with outer.pool.connection() as conn:  # the inner close must not stop the server
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}


def test_server_stops_after_a_killed_user_and_the_last_clean_exit(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import psutil

    home = tmp_path / "home"
    hold = (
        "import sys; from pathlib import Path; from database import open_database, EmbeddedTarget\n"
        "with open_database(EmbeddedTarget(Path(sys.argv[1]))):\n"
        "    print('up', flush=True); sys.stdin.readline()"
    )
    killed = subprocess.Popen(
        [sys.executable, "-c", hold, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    clean = subprocess.Popen(
        [sys.executable, "-c", hold, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert killed.stdout is not None and killed.stdout.readline().strip() == "up"
        assert clean.stdout is not None and clean.stdout.readline().strip() == "up"
        server_pid = int((home / "pgdata" / "postmaster.pid").read_text().splitlines()[0])
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert clean.stdin is not None
        clean.stdin.write("\n")
        clean.stdin.close()
        assert clean.wait(timeout=60) == 0
        assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == "zombie"
    finally:
        for process in (killed, clean):
            if process.poll() is None:
                process.kill()


def test_first_start_from_several_processes_at_once_gives_all_of_them_memory(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    start_at = time.time() + 3  # every child opens at the same moment, after its imports
    script = (
        "import sys, time; from pathlib import Path; from database import open_database, EmbeddedTarget\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "with open_database(EmbeddedTarget(Path(sys.argv[1]))) as db, db.pool.connection() as c:\n"
        "    print(c.execute('SELECT current_database() AS d').fetchone()['d'])"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(home), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(child.wait(timeout=120), *child.communicate()) for child in children]
    assert [(code, out.strip()) for code, out, _ in results] == [(0, "memory_agent")] * 4, results


def _terminate(database_url: str, pid: int) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _backend_pid(pool: object) -> int:
    with pool.connection() as conn:  # type: ignore[attr-defined]
        return int(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])


def _kill_every_pooled_connection(database_url: str, pool: object) -> set[int]:
    """Lend both connections of a pool of two (so both were lent just now), then end them."""
    with pool.connection() as first, pool.connection() as second:  # type: ignore[attr-defined]
        pids = {
            int(conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"])
            for conn in (first, second)
        }
    for pid in pids:
        _terminate(database_url, pid)
    return pids


def test_replayed_work_skips_the_borrow_check_and_replays_on_a_checked_connection(
    database_url: str,
) -> None:
    import psycopg

    from database.checks import replayable_borrows
    from database.retry import RetryStats, run_with_retry

    with open_database(UrlTarget(database_url), min_size=2, max_size=2) as db:
        # Work that replays itself gets a connection lent moments ago unchecked:
        # when it died in between, its first statement sees it.
        _kill_every_pooled_connection(database_url, db.pool)
        with pytest.raises(psycopg.OperationalError), replayable_borrows():
            _backend_pid(db.pool)
        # A restart kills every pooled connection: run_with_retry's first attempt
        # meets one unchecked, and its replay borrows checked, so the next dead
        # one drains the pool instead of failing the replay too.
        dead = _kill_every_pooled_connection(database_url, db.pool)
        stats = RetryStats()
        assert run_with_retry(lambda: _backend_pid(db.pool), pool=db.pool, stats=stats) not in dead
        assert (stats.retries, stats.failures) == (1, 0)
        # Any other borrow is checked: a dead connection is replaced before use.
        dead = _kill_every_pooled_connection(database_url, db.pool)
        assert _backend_pid(db.pool) not in dead
