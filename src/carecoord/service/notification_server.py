"""The FHIR notification listener: `POST <path>` only, on a host and port of its own.

Apart from the health server on purpose: probes need /healthz reachable cluster-wide, while this
endpoint changes referrals, so it binds 127.0.0.1 unless told otherwise
(`CARECOORD_NOTIFICATIONS_HOST` / `_PORT`). Order of checks, cheapest first, so a client without
the token costs no body read: path (404), bearer token (401), Content-Length (411, 413 above
`max_body_bytes`), then the body within the body deadline. Every refusal closes the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from carecoord.service.http import (
    BackgroundServer,
    BoundedRequestHandler,
    HttpResponse,
    Limits,
    listen,
)
from carecoord.service.notification_endpoint import operation_outcome

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A FHIR server posts a notification at a time per subscription, and retries on 503.
NOTIFICATION_LIMITS = Limits(max_connections=32, header_timeout=10.0, body_timeout=30.0)


class NotificationRoute(Protocol):
    def authorize(self, headers: Mapping[str, str]) -> HttpResponse | None: ...

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse: ...


class NotificationServer(BackgroundServer):
    """Serves `route` at `path` from a daemon thread. `port=0` picks a free port (`.port`)."""

    def __init__(
        self,
        route: NotificationRoute,
        *,
        host: str = "127.0.0.1",
        port: int = 8081,
        path: str = "/fhir/notifications",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limits: Limits = NOTIFICATION_LIMITS,
    ) -> None:
        handler = _handler_class(route, path, max_body_bytes)
        server = listen(
            host, port, handler, name="notifications", limits=limits,
            setting="CARECOORD_NOTIFICATIONS",
        )  # fmt: skip
        super().__init__(server)


def _handler_class(
    route: NotificationRoute, path: str, max_body_bytes: int
) -> type[BoundedRequestHandler]:
    class Handler(BoundedRequestHandler):
        def do_GET(self) -> None:
            self.send(404, b"not found\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != path:
                self.send(404, b"not found\n", body_unread=True)
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            refused = route.authorize(headers)
            if refused is not None:
                self._answer(refused, body_unread=True)
                return
            try:
                length = int(headers.get("content-length", ""))
            except ValueError:
                length = -1
            if length < 0 or "transfer-encoding" in headers:
                outcome = operation_outcome(411, "error", "structure", "Content-Length required")
                self._answer(outcome, body_unread=True)
                return
            if length > max_body_bytes:
                why = f"body over {max_body_bytes} bytes"
                self._answer(operation_outcome(413, "error", "too-costly", why), body_unread=True)
                return
            body = self.read_body(length)
            if len(body) < length:
                return  # the client left mid-body: nobody to answer
            try:
                response = route(body, headers)
            except Exception as exc:  # no traceback: messages may carry payload values
                log.error("notification route failed", extra={"error": type(exc).__name__})
                response = HttpResponse(500, b"internal error\n")
            self._answer(response)

        def _answer(self, response: HttpResponse, *, body_unread: bool = False) -> None:
            self.send(
                response.status,
                response.body,
                response.content_type,
                response.headers,
                body_unread=body_unread,
            )

    return Handler
