"""/healthz (process alive), /readyz (ready to work), /metrics on a small HTTP listener.

GET (and HEAD) only: nothing here changes data, so it can be reachable cluster-wide for probes.
The FHIR notification rest-hook has a listener of its own
(carecoord.service.notification_server). The listener (carecoord.service.http) keeps idle or
slow connections from delaying a probe; limits and status codes: docs/listeners.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from carecoord.service.http import BackgroundServer, HttpResponse, Limits, Request, listen
from carecoord.service.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# Probes send their whole request at once: a short header deadline is plenty. Connections are
# cheap (no thread each); past the cap the oldest one still sending headers is closed.
HEALTH_LIMITS = Limits(max_connections=512, header_timeout=5.0, body_timeout=5.0)

__all__ = ["HEALTH_LIMITS", "HealthServer", "HttpResponse"]


class HealthServer(BackgroundServer):
    """Serves the endpoints from a daemon thread. `port=0` picks a free port (see `.port`).

    `ready()` answers /readyz (200 when true, 503 otherwise); `metrics()` returns the Prometheus
    exposition bytes for /metrics. A port in use is a StartupError naming `setting`_PORT.
    """

    def __init__(
        self,
        *,
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
        host: str = "0.0.0.0",
        port: int = 8000,
        limits: Limits = HEALTH_LIMITS,
        setting: str = "CARECOORD_HEALTH",
    ) -> None:
        handler = _HealthHandler(ready, metrics)
        super().__init__(listen(host, port, handler, name="health", limits=limits, setting=setting))


_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class _HealthHandler:
    def __init__(self, ready: Callable[[], bool], metrics: Callable[[], bytes]) -> None:
        self._ready = ready
        self._metrics = metrics

    def head(self, request: Request) -> HttpResponse | int:
        if request.path not in _PATHS:
            return HttpResponse(404, b"not found\n")
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        if request.has_body:  # a probe sends none; not read
            return HttpResponse(413, b"a request body is not accepted here\n")
        return 0

    def respond(self, request: Request, body: bytes) -> HttpResponse:
        """On a handler thread: `ready()` and `metrics()` may take a moment, never the loop."""
        if request.path == "/healthz":
            return HttpResponse(200, b"ok\n")
        if request.path == "/readyz":
            try:
                ok = self._ready()
            except Exception as exc:
                log.warning("readiness check raised", extra={"error": type(exc).__name__})
                ok = False
            return HttpResponse(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
        return HttpResponse(200, self._metrics(), CONTENT_TYPE_LATEST)
