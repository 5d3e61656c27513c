"""A stand-in HTTP service on 127.0.0.1:<free port>, served from a thread, for the real SDK client.

``tests.lakebase_harness`` (the Lakebase REST endpoints) and
``tests.managed_memory_harness`` (the managed memory REST endpoints) both serve
their handler through ``LoopbackService``; the handler reads what the test set
on the server (``self.server.state``, ``self.server.token``).
"""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any, token: str) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.state = state
        self.token = token


class LoopbackService:
    """``handler`` served on 127.0.0.1:<free port>; ``start()`` / ``stop()``; a PAT of its own."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any, name: str) -> None:
        self.state = state
        self.token = f"dapi-{secrets.token_hex(8)}"
        self._server = LoopbackServer(handler, state, self.token)
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def workspace_client(self) -> Any:
        """databricks-sdk's real client, pointed here with this service's token."""
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config

        # Short HTTP retry budget: the SDK's default retries a refused connection for 5 minutes.
        config = Config(host=self.url, token=self.token, auth_type="pat", retry_timeout_seconds=20)
        return WorkspaceClient(config=config)
