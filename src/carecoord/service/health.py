"""/healthz (process alive), /readyz (ready to work), /metrics on a small threaded HTTP server.

GET only: nothing here changes data, so it can be reachable cluster-wide for probes. The FHIR
notification rest-hook has a listener of its own (carecoord.service.notification_server).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from carecoord.service.http import (
    BackgroundServer,
    BoundedRequestHandler,
    HttpResponse,
    Limits,
    listen,
)
from carecoord.service.metrics import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

# Probes and scrapes are small and few: a short header deadline keeps idle sockets from
# holding the slots.
HEALTH_LIMITS = Limits(max_connections=16, header_timeout=5.0, body_timeout=5.0)

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
        handler = _handler_class(ready, metrics)
        super().__init__(listen(host, port, handler, name="health", limits=limits, setting=setting))


def _handler_class(
    ready: Callable[[], bool], metrics: Callable[[], bytes]
) -> type[BoundedRequestHandler]:
    class Handler(BoundedRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self.send(200, b"ok\n")
            elif path == "/readyz":
                try:
                    ok = ready()
                except Exception:
                    log.warning("readiness check raised", exc_info=True)
                    ok = False
                self.send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            elif path == "/metrics":
                self.send(200, metrics(), CONTENT_TYPE_LATEST)
            else:
                self.send(404, b"not found\n")

        def do_POST(self) -> None:
            self.send(404, b"not found\n", body_unread=True)

    return Handler
