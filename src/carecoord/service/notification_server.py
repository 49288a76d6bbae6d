"""The FHIR notification listener: `POST <path>` only, on a host and port of its own.

Also `PUT <path>/<Type>/<id>` with the resource as body: how R4 criteria-based Subscriptions
with a payload deliver. Apart from the health server on purpose: probes need /healthz reachable
cluster-wide, while this endpoint changes referrals, so it binds 127.0.0.1 unless told otherwise
(`CARECOORD_NOTIFICATIONS_HOST` / `_PORT`). Order of checks, cheapest first and all before the
body is read, so a client without the token costs no body read: path (404), method (405),
framing (400, carecoord.service.http), bearer token (401), Content-Length (411, 413 above
`max_body_bytes`); then the body within the body deadline, and the route on a handler thread.
Every answer closes the connection. Limits and status codes: docs/listeners.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Protocol

from carecoord.service.http import BackgroundServer, HttpResponse, Limits, Request, listen
from carecoord.service.notification_endpoint import operation_outcome

log = logging.getLogger(__name__)

_TYPE_ID = re.compile(r"[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A FHIR server posts a notification at a time per subscription, and retries on 503. The
# handler threads bound the FHIR reads and publishes in flight; the other requests wait.
NOTIFICATION_LIMITS = Limits(
    max_connections=512, header_timeout=10.0, body_timeout=30.0, handler_threads=8
)


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
        handler = _NotificationHandler(route, path, max_body_bytes)
        server = listen(
            host, port, handler, name="notifications", limits=limits,
            setting="CARECOORD_NOTIFICATIONS",
        )  # fmt: skip
        super().__init__(server)


class _NotificationHandler:
    def __init__(self, route: NotificationRoute, path: str, max_body_bytes: int) -> None:
        self._route = route
        self._path = path
        self._max_body_bytes = max_body_bytes

    def head(self, request: Request) -> HttpResponse | int:
        """On the listener's loop, before the body: everything that needs no body."""
        if request.path != self._path:
            # R4 criteria-based rest-hook with a payload: PUT [endpoint]/[type]/[id] (HAPI's and
            # the embedded server's default), https://hl7.org/fhir/R4/subscription.html#2.46.7.1
            rest = request.path.removeprefix(self._path + "/")
            if rest == request.path or not _TYPE_ID.fullmatch(rest):
                return HttpResponse(404, b"not found\n")
            if request.method != "PUT":
                return HttpResponse(405, b"method not allowed\n", headers=(("Allow", "PUT"),))
        elif request.method != "POST":
            return HttpResponse(405, b"method not allowed\n", headers=(("Allow", "POST"),))
        headers = request.header_map()
        refused = self._route.authorize(headers)
        if refused is not None:
            return refused
        length = headers.get("content-length")
        if length is None or "transfer-encoding" in headers:
            return operation_outcome(411, "error", "structure", "Content-Length required")
        if int(length) > self._max_body_bytes:  # h11 has checked it is 1*DIGIT
            why = f"body over {self._max_body_bytes} bytes"
            return operation_outcome(413, "error", "too-costly", why)
        return self._max_body_bytes

    def respond(self, request: Request, body: bytes) -> HttpResponse:
        try:
            return self._route(body, request.header_map())
        except Exception as exc:  # no traceback: messages may carry payload values
            log.error("notification route failed", extra={"error": type(exc).__name__})
            return HttpResponse(500, b"internal error\n")
