"""Starting and stopping the sandbox: in a background thread for tests, or in the foreground."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any

from sandbox.arrival import stamp_arrivals
from sandbox.base import SandboxBase
from sandbox.config import SandboxConfig
from sandbox.handler import SandboxHandler
from sandbox.state import SandboxState

logger = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    """A threading server that remembers open connections, so stopping can close idle ones."""

    daemon_threads = True
    # A burst of parallel clients must queue, not be refused (the default backlog is 5).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: SandboxState) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        stamp_arrivals(self.socket)  # before accept: a request may arrive before its thread
        super().server_bind()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self.connections_lock:
            self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut keep-alive connections that would otherwise outlive the server."""
        with self.connections_lock:
            open_now = list(self.connections)
            self.connections.clear()
        for conn in open_now:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client


class Sandbox(SandboxState):
    """A running (or ready) sandbox: ``url``, ``config``, ``bases`` by id and ``stats``."""

    def __init__(self, bases: Iterable[SandboxBase], config: SandboxConfig | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(bases, config)
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to hand pyairtable (``Api(token, endpoint_url=sandbox.url)``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @classmethod
    def start(cls, bases: Iterable[SandboxBase], config: SandboxConfig | None = None,
              host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        """Build a sandbox and serve it from a daemon thread; call ``stop()`` when done."""
        sandbox = cls(bases, config, host, port)
        sandbox._thread = threading.Thread(
            target=sandbox._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"sandbox-{sandbox.url}", daemon=True,
        )
        sandbox._thread.start()
        return sandbox

    def serve(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another one."""
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
        self._server.close_connections()

    def reset(self) -> None:
        """Forget rate-limit windows and penalties and zero the counters."""
        self.limiter.reset()
        self.stats.reset()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@contextmanager
def run_sandbox(bases: list[SandboxBase], config: SandboxConfig | None = None,
                host: str = "127.0.0.1", port: int = 0) -> Iterator[Sandbox]:
    """Serve ``bases`` in a background thread for the duration of a ``with`` block.

    Args:
        bases: The bases to serve (see ``build_base``).
        config: Token, rate limit, failures; defaults to ``SandboxConfig()``.
        host: Interface to listen on.
        port: Port; 0 picks a free one (read it from ``sandbox.url``).

    Yields:
        The running ``Sandbox``.
    """
    sandbox = Sandbox.start(bases, config, host, port)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def serve_forever(bases: list[SandboxBase], config: SandboxConfig | None = None,
                  host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve ``bases`` in the foreground until interrupted (``conveyor sandbox``)."""
    sandbox = Sandbox(bases, config, host, port)
    logger.info("Airtable sandbox listening on %s", sandbox.url)
    try:
        sandbox.serve()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the CLI command is meant to end
    finally:
        sandbox.stop()
