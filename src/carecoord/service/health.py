"""/healthz (process alive), /readyz (ready to work), /metrics on a small threaded HTTP server."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from carecoord.service.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)


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
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_class(ready, metrics))
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
    ready: Callable[[], bool], metrics: Callable[[], bytes]
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

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would flood the logs

    return Handler
