"""The FHIR rest-hook endpoint: `POST <CARECOORD_NOTIFICATIONS_PATH>` on the notification listener.

A FHIR server's Subscription (rest-hook channel) posts its notifications here; each is a hint:
the notified resources are re-read from the configured FHIR server and translated
(carecoord.handlers.notifications.referrals.translate), and the events published to the input
topic. Answers:
200 once the broker acknowledged them (or there was nothing to publish), 400 with an
OperationOutcome for a payload that is not a notification (not JSON, nested too deeply, a
resource type or id that is not FHIR's, checked before any URL is built), 401 when the request's
`Authorization: Bearer <token>` does not match (checked before the body is read, see
`authorize`; with CARECOORD_NOTIFICATIONS_HMAC_SECRET also a missing or wrong `X-Signature`),
413 when it names more than `max_resources` resources (each costs a FHIR read),
503 when a read or the publish failed (the FHIR server retries). Handshakes and heartbeats are
answered 200 with no event; an event already processed is a dropped duplicate (200); event
numbers and heartbeats are watched for lost notifications (carecoord.service.subscription_watch).
See docs/listeners.md and docs/subscriptions.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.errors import CarecoordError, ConfigError, MalformedEvent
from carecoord.fhir.errors import FhirError
from carecoord.fhir.notification_bundles import MalformedNotification, notified_resources
from carecoord.fhir.subscriptions import notification_status
from carecoord.handlers.notifications.referrals import ResourceTranslator, translate
from carecoord.handlers.notifications.seen import NOTIFIED, SeenVersions
from carecoord.service.http import HttpResponse
from carecoord.service.subscription_watch import SubscriptionWatch

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
# One notification normally names one resource (a batch a few); each one named costs a read.
DEFAULT_MAX_RESOURCES = 100
# FHIR R4 id and resource type (https://hl7.org/fhir/R4/datatypes.html#id): matched whole with
# fullmatch, since `$` would let a trailing newline through into the read's URL.
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")


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
        max_resources: int = DEFAULT_MAX_RESOURCES,
        watch: SubscriptionWatch | None = None,
        hmac_secret: str | None = None,
        translators: Mapping[str, ResourceTranslator] | None = None,
        seen: SeenVersions | None = None,
    ) -> None:
        if not token.strip():  # an empty token must never mean "open"
            raise ConfigError("the FHIR notification endpoint needs a non-empty bearer token")
        if max_resources < 1:
            raise ConfigError(
                "the FHIR notification endpoint's max_resources must be at least 1",
                max_resources=max_resources,
            )
        self._publish = publish
        self._fhir = _CheckedReader(fhir)
        self._token = token.strip().encode()
        self._max_resources = max_resources
        self._watch = watch
        if hmac_secret is not None and not hmac_secret.strip():
            raise ConfigError("the notification endpoint's HMAC secret must not be blank")
        self._secret = hmac_secret.strip().encode() if hmac_secret else None
        # The versions published, shared with the reconciling poller: published once (seen.py).
        self._translators = translators
        self._seen = seen

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
        if self._secret is not None and not self._signed(body, headers.get("x-signature")):
            log.info("FHIR notification refused: bad signature")
            return operation_outcome(401, "error", "security", "missing or wrong X-Signature")
        try:
            payload = json.loads(body)
        except RecursionError:  # deeply nested arrays or objects
            return operation_outcome(400, "error", "structure", "JSON nested too deeply")
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            return operation_outcome(400, "error", "structure", f"not JSON ({type(exc).__name__})")
        return self._handle(payload)

    def replay(self, payload: Mapping[str, Any]) -> bool:
        """Process a notification Bundle the server replayed (`$events`); True when published."""
        return self._handle(payload).status == 200

    def _handle(self, payload: Any) -> HttpResponse:
        refused = self._check_named(payload)
        if refused is not None:
            return refused
        status = notification_status(payload)
        if self._watch is not None and status is not None:
            verdict = self._watch.received(status)
            if verdict == "nothing":  # handshake, heartbeat, query-status: 200, no event
                return operation_outcome(200, "information", "informational", "0 event(s)")
            if verdict == "duplicate":
                log.info("FHIR notification: duplicate dropped")
                return operation_outcome(
                    200, "information", "informational", "duplicate: 0 event(s)"
                )
        elif self._watch is not None:
            self._watch.received_resource()
        try:
            events = translate(payload, fhir=self._fhir, **self._translate_options())
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
        if self._watch is not None and status is not None:
            self._watch.processed(status)
        if self._seen is not None:  # published: the poller need not publish these again
            self._seen.remember(getattr(events, "versions", ()), by=NOTIFIED)
        if events:
            log.info("FHIR notification published", extra={"event_ids": [e.id for e in events]})
        return operation_outcome(200, "information", "informational", f"{len(events)} event(s)")

    def _signed(self, body: bytes, given: str | None) -> bool:
        """Medplum's X-Signature: hex HMAC-SHA256 of the body, keyed with the subscription's
        secret (https://www.medplum.com/docs/subscriptions/subscription-extensions)."""
        if self._secret is None or not given:
            return False
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given.strip().lower().encode(), expected.encode())

    def _translate_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self._translators is not None:
            options["translators"] = self._translators
        if self._seen is not None:
            options["seen"] = self._seen
        return options

    def _check_named(self, payload: Any) -> HttpResponse | None:
        """400 for a resource type or id that is not FHIR's, 413 above `max_resources` distinct
        resources; None when the reads may go ahead."""
        try:
            hints = notified_resources(payload)
        except MalformedNotification as exc:
            log.info("FHIR notification refused", extra={"error": str(exc)})
            return operation_outcome(400, "error", "invalid", str(exc))
        except (RecursionError, ValueError, TypeError) as exc:  # a shape no one foresaw
            log.info("FHIR notification refused", extra={"error": type(exc).__name__})
            return operation_outcome(400, "error", "invalid", "not a FHIR notification")
        for n, hint in enumerate(hints):
            if not (_TYPE.fullmatch(hint.resource_type) and _ID.fullmatch(hint.id)):
                why = f"notified resource {n}: not a FHIR resource type and id"
                return operation_outcome(400, "error", "invalid", why)
        named = len({(h.resource_type, h.id) for h in hints})
        if named > self._max_resources:
            why = f"names {named} resources, more than {self._max_resources}: split it"
            log.info("FHIR notification refused", extra={"resources": named})
            return operation_outcome(413, "error", "too-costly", why)
        return None

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


class _CheckedReader:
    """The FHIR reader, refusing a type or id that is not FHIR's before a URL is built from it
    (the notification was checked; this keeps a translator's own reads honest too)."""

    def __init__(self, fhir: FhirReader) -> None:
        self._fhir = fhir

    def read(self, resource_type: str, resource_id: str) -> Resource:
        if not (_TYPE.fullmatch(resource_type) and _ID.fullmatch(resource_id)):
            raise MalformedNotification("a notified resource has no valid FHIR type and id")
        return self._fhir.read(resource_type, resource_id)

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        return self._fhir.search(resource_type, params)
