"""Threaded HTTP listeners that clients without a token cannot exhaust.

Why the standard library and not uvicorn: uvicorn (0.54) has no timeout for reading a request's
headers or body, and its `limit_concurrency` counts open connections, so slow clients that never
finish a request make it answer 503 to everyone else. Here

- each connection has a deadline for its headers and one for its body (a total, not per read,
  so trickling a byte at a time does not keep a connection), and a cap on header bytes;
- at most `max_connections` are served at once: the accept loop waits for a free slot, so the rest
  wait in the kernel's listen backlog (`backlog`, no thread, no buffer) instead of being reset;
- handler errors (a client gone mid-request, a timeout) are one JSON log line, never a traceback
  on stderr (socketserver's default).

One request per connection (HTTP/1.0), which is what probes and FHIR rest-hooks send.
"""

from __future__ import annotations

import errno
import io
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from carecoord.errors import StartupError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Limits:
    """Per-listener bounds (seconds, counts, bytes)."""

    max_connections: int = 32
    backlog: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024


class HeadersTooLarge(Exception):
    """The request line and headers exceed `Limits.max_header_bytes`."""


# Errors that are the client's doing: normal on a public port, logged at debug only.
_CLIENT_ERRORS = (ConnectionError, TimeoutError, HeadersTooLarge)


class _DeadlineReader(io.RawIOBase):
    """A socket reader with a total deadline and a byte budget for the current phase."""

    def __init__(self, sock: socket.socket, deadline: float, budget: int) -> None:
        self._sock = sock
        self.deadline = deadline
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("read deadline passed")
        if self.budget <= 0:
            raise HeadersTooLarge("request headers too large")
        self._sock.settimeout(left)
        view = memoryview(buffer)[: self.budget]
        n = self._sock.recv_into(view)
        self.budget -= n
        return n


class BoundedHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BoundedRequestHandler],
        *,
        name: str,
        limits: Limits,
    ) -> None:
        self.name = name
        self.limits = limits
        self.request_queue_size = limits.backlog  # read by server_activate() in __init__
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._closing = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        while not self._slots.acquire(timeout=0.2):  # at the cap: the backlog holds the rest
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        level = logging.DEBUG if isinstance(exc, _CLIENT_ERRORS) else logging.WARNING
        log.log(
            level,
            "HTTP connection ended with an error",
            extra={"listener": self.name, "error": type(exc).__name__},
        )

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()


class BoundedRequestHandler(BaseHTTPRequestHandler):
    """Reads through a deadline reader; `read_body` and `send` apply the body and write limits."""

    server: BoundedHTTPServer

    def setup(self) -> None:
        limits = self.server.limits
        super().setup()
        self.rfile.close()  # replaced: reads must honour a total deadline
        self._reader = _DeadlineReader(
            self.connection, time.monotonic() + limits.header_timeout, limits.max_header_bytes
        )
        self.rfile = io.BufferedReader(self._reader)

    def read_body(self, length: int) -> bytes:
        """Up to `length` bytes of body within the body timeout (fewer: the client left)."""
        self._reader.deadline = time.monotonic() + self.server.limits.body_timeout
        self._reader.budget = length + self.server.limits.max_header_bytes
        return self.rfile.read(length)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        headers: tuple[tuple[str, str], ...] = (),
        *,
        body_unread: bool = False,
    ) -> None:
        self.connection.settimeout(self.server.limits.write_timeout)
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if body_unread:
            self._linger()

    def _linger(self, seconds: float = 1.0, most: int = 64 * 1024) -> None:
        """Half-close and discard a little of an unread body, so the client reads the answer
        before the close (closing with unread data sends a reset that can destroy it)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while most > 0 and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(min(most, 16 * 1024))
                if not chunk:
                    return
                most -= len(chunk)
        except OSError:
            return  # the client is gone: nothing more to say to it

    def log_message(self, format: str, *args: object) -> None:
        pass  # probes every few seconds would flood the logs; args may hold request text


def listen(
    host: str,
    port: int,
    handler: type[BoundedRequestHandler],
    *,
    name: str,
    limits: Limits,
    setting: str,
) -> BoundedHTTPServer:
    """Bind a listener; a port in use (or an address not of this machine) is a StartupError
    naming the `<setting>_HOST` / `<setting>_PORT` variables to change."""
    try:
        return BoundedHTTPServer((host, port), handler, name=name, limits=limits)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{setting}_PORT {port} is already in use on {host}: stop the process that "
                f"holds it or set {setting}_PORT to a free port (0 picks one)",
                listener=name,
            ) from exc
        why = exc.strerror or type(exc).__name__
        raise StartupError(
            f"{setting}_HOST / {setting}_PORT cannot be bound ({why}): use an address of this "
            "machine (e.g. 127.0.0.1 or 0.0.0.0) and a port above 1023",
            listener=name,
        ) from exc


def serve_in_thread(server: BoundedHTTPServer) -> Callable[[], None]:
    """Start `server` on a daemon thread; return the function that stops and closes it."""
    thread = threading.Thread(
        target=server.serve_forever, name=f"carecoord-{server.name}", daemon=True
    )
    thread.start()

    def close() -> None:
        if thread.is_alive():
            server.shutdown()
            thread.join(5)
        server.server_close()

    return close


class BackgroundServer:
    """A bound listener served from a daemon thread: `start()`, `close()`, `.port` (the real one
    when bound to port 0), usable as a context manager."""

    def __init__(self, server: BoundedHTTPServer) -> None:
        self._server = server
        self._close: Callable[[], None] | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        self._close = serve_in_thread(self._server)
        return self

    def close(self) -> None:
        if self._close is not None:
            self._close()
        else:
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
