"""/healthz (process alive), /readyz (ready to work), /metrics on a small threaded HTTP server.

Other components may add POST routes (e.g. the FHIR notification rest-hook): a route gets the
request body and lower-cased headers and returns an `HttpResponse`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from carecoord.service.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


PostRoute = Callable[[bytes, Mapping[str, str]], HttpResponse]
"""(body, headers with lower-case names) -> response."""


class HealthServer:
    """Serves the endpoints from a daemon thread. `port=0` picks a free port (see `.port`).

    `ready()` answers /readyz (200 when true, 503 otherwise); `metrics()` returns the Prometheus
    exposition bytes for /metrics.
    """

    def __init__(
        self,
        *,
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        host: str = "0.0.0.0",
        port: int = 8000,
        post_routes: Mapping[str, PostRoute] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        handler = _handler_class(ready, metrics, dict(post_routes or {}), max_body_bytes)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="carecoord-health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler_class(
    ready: Callable[[], bool],
    metrics: Callable[[], bytes],
    post_routes: Mapping[str, PostRoute],
    max_body_bytes: int,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                try:
                    ok = ready()
                except Exception:
                    log.warning("readiness check raised", exc_info=True)
                    ok = False
                body = b"ready\n" if ok else b"not ready\n"
                self._send(200 if ok else 503, body, "text/plain; charset=utf-8")
            elif path == "/metrics":
                self._send(200, metrics(), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def do_POST(self) -> None:
            route = post_routes.get(self.path.split("?", 1)[0])
            if route is None:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, b"Content-Length required\n", "text/plain; charset=utf-8")
                return
            if length < 0 or length > max_body_bytes:
                self.close_connection = True  # the unread body must not be taken as a request
                self._send(413, b"request body too large\n", "text/plain; charset=utf-8")
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                response = route(body, headers)
            except Exception as exc:  # no traceback: messages may carry payload values
                log.error("POST route failed", extra={"error": type(exc).__name__})
                response = HttpResponse(500, b"internal error\n")
            self._send(response.status, response.body, response.content_type, response.headers)

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str,
            headers: tuple[tuple[str, str], ...] = (),
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the logs

    return Handler
