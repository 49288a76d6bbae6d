"""The FHIR rest-hook endpoint: `POST <CARECOORD_NOTIFICATIONS_PATH>` on the notification listener.

A FHIR server's Subscription (rest-hook channel) posts its notifications here; each is a hint:
the notified resources are re-read from the configured FHIR server and translated
(carecoord.handlers.notifications.referrals.translate), and the events published to the input
topic. Answers:
200 once the broker acknowledged them (or there was nothing to publish), 400 with an
OperationOutcome for a payload that is not a notification, 401 when the request's
`Authorization: Bearer <token>` does not match (checked before the body is read, see
`authorize`), 503 when a read or the publish failed (the FHIR server retries).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence

from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.errors import CarecoordError, ConfigError, MalformedEvent
from carecoord.fhir.errors import FhirError
from carecoord.handlers.notifications.referrals import translate
from carecoord.service.http import HttpResponse

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"


def operation_outcome(status: int, severity: str, code: str, diagnostics: str) -> HttpResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }
    return HttpResponse(status, json.dumps(body).encode(), FHIR_JSON)


class NotificationEndpoint:
    """The rest-hook route: headers -> authorize; body -> translate (re-read) -> publish."""

    def __init__(
        self,
        publish: Callable[[Sequence[CloudEvent]], None],
        fhir: FhirReader,
        *,
        token: str,
    ) -> None:
        if not token.strip():  # an empty token must never mean "open"
            raise ConfigError("the FHIR notification endpoint needs a non-empty bearer token")
        self._publish = publish
        self._fhir = fhir
        self._token = token.strip().encode()

    def authorize(self, headers: Mapping[str, str]) -> HttpResponse | None:
        """None when `Authorization: Bearer <token>` matches, else the 401 to send (the server
        calls this before it reads the body, so an unauthenticated body is never read)."""
        if self._authorized(headers.get("authorization")):
            return None
        response = operation_outcome(401, "error", "login", "missing or wrong bearer token")
        return HttpResponse(
            response.status,
            response.body,
            response.content_type,
            (("WWW-Authenticate", 'Bearer realm="carecoord"'),),
        )

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        refused = self.authorize(headers)
        if refused is not None:
            return refused
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return operation_outcome(400, "error", "structure", f"not JSON ({type(exc).__name__})")
        try:
            events = translate(payload, fhir=self._fhir)
        except MalformedEvent as exc:
            log.info("FHIR notification refused", extra={"error": str(exc)})
            return operation_outcome(400, "error", "invalid", str(exc))
        except FhirError as exc:  # re-reading a notified resource from the FHIR server
            log.warning("FHIR notification: read failed", extra={"error": type(exc).__name__})
            return _unavailable("the notified resource could not be read")
        except CarecoordError as exc:
            log.error("FHIR notification not translated", extra={"error": type(exc).__name__})
            return operation_outcome(500, "error", "exception", "not translated")
        try:
            self._publish(events)
        except Exception as exc:
            log.warning("FHIR notification: publish failed", extra={"error": type(exc).__name__})
            return _unavailable("the events could not be published")
        if events:
            log.info("FHIR notification published", extra={"event_ids": [e.id for e in events]})
        return operation_outcome(200, "information", "informational", f"{len(events)} event(s)")

    def _authorized(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self._token)


def _unavailable(why: str) -> HttpResponse:
    response = operation_outcome(503, "error", "transient", f"{why}: retry later")
    return HttpResponse(
        response.status, response.body, response.content_type, (("Retry-After", "5"),)
    )
