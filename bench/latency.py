"""A loopback TCP proxy that delays every byte by a fixed one-way latency.

Lakebase is reached over a network: every statement waits a round trip that a
local embedded Postgres answers in microseconds. What the stock saver's
saver-wide lock costs (every statement of every thread queued behind one lock,
waiting included) only shows when statements wait, so the long-threads
benchmark also runs its concurrent part through this proxy, at the round trip
of a nearby managed database.

The delay is pipelined, as on a real link: each chunk is forwarded ``one_way``
seconds after it arrived, however many are in flight, so the proxy adds latency
without capping throughput. Loopback only; it stops with its ``with`` block.
``measured_rtt_ms`` tells what a round trip really takes through it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def _pipe(source: socket.socket, target: socket.socket, delay: float) -> None:
    """Copy ``source`` to ``target``, each chunk sent ``delay`` s after it arrived.

    Threads and ``time.sleep`` rather than asyncio: an event loop on epoll sleeps in
    whole milliseconds, which would round a 1 ms round trip up to 2.5 ms.
    """
    chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def send() -> None:
        while True:
            due, chunk = chunks.get()
            if not chunk:
                break
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                target.sendall(chunk)
            except OSError:
                break
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        while chunk := source.recv(65536):
            chunks.put((time.monotonic() + delay, chunk))
    except OSError:
        pass
    finally:
        chunks.put((0.0, b""))
        sender.join()


def _serve_forever(database_url: str, one_way: float) -> None:
    params = conninfo_to_dict(database_url)
    host = str(params.get("host") or "localhost")
    port = int(params.get("port") or 5432)

    def open_target() -> socket.socket:
        if host.startswith("/"):  # a socket directory, as the embedded server uses
            target = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target.connect(str(Path(host) / f".s.PGSQL.{port}"))
            return target
        return socket.create_connection((host, port))

    def serve(client: socket.socket) -> None:
        with client, open_target() as target:
            for sock in (client, target):
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=_pipe, args=(target, client, one_way), daemon=True)
            back.start()
            _pipe(client, target, one_way)
            back.join()

    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            threading.Thread(target=serve, args=(client,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    # Stop when the process that started this one closes our stdin (or dies).
    sys.stdin.read()


class LatencyProxy:
    """Forward ``127.0.0.1:<port>`` to the Postgres of ``database_url``, ``rtt_ms`` added per round trip.

    The proxy is a process of its own: in the benchmark's process it would wait for
    the GIL behind the workers it is measuring, and add that wait to every trip.
    """

    def __init__(self, database_url: str, rtt_ms: float) -> None:
        self.database_url = database_url
        self.rtt_ms = rtt_ms
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """The database URL through the proxy."""
        params = conninfo_to_dict(self.database_url)
        return make_conninfo(**{**params, "host": "127.0.0.1", "port": str(self.port)})

    def __enter__(self) -> LatencyProxy:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.latency", self.database_url, str(self.rtt_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


def measured_rtt_ms(database_url: str, samples: int = 50) -> float:
    """Median time of ``SELECT 1`` on one connection to ``database_url``, in ms."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@contextlib.contextmanager
def delayed(database_url: str, rtt_ms: float) -> Iterator[str]:
    """Yield ``database_url`` reached through a proxy adding ``rtt_ms`` per round trip."""
    if rtt_ms <= 0:
        yield database_url
        return
    with LatencyProxy(database_url, rtt_ms) as proxy:
        yield proxy.url


if __name__ == "__main__":
    _serve_forever(sys.argv[1], float(sys.argv[2]) / 2000.0)
