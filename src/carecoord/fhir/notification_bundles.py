"""FHIR subscription notifications -> the resources they say changed, and the server's copies.

A notification is a hint, never the truth: whoever can post it could claim anything. So only
the identity (type, id) of each changed resource is taken from it (`notified_resources`), and
the resource is then read again from the FHIR server (`read_current`); a full-resource entry's
content is never used.

Accepted payloads:
- a Subscriptions R4 Backport notification Bundle (type `history`; R5 `subscription-notification`)
  whose first entry is the notification's status (a `Parameters` resource in the R4 backport, a
  `SubscriptionStatus` in R4B/R5) followed by the changed resources: full-resource entries, or
  id-only entries (fullUrl / request.url only; the focus of the notification events when there are
  no entries). Shapes per the IG's FSH, HL7/fhir-subscription-backport-ig:
  input/fsh/BackportNotificationR4.fsh (BackportSubscriptionNotificationR4: `type = #history`,
  invariant backport-notification-bundle-r4-1 "a Parameters as the first entry";
  BackportSubscriptionStatusR4: parameters `type` and `notification-event` with part `focus`)
  and input/fsh/BackportNotificationR4B.fsh (invariant backport-notification-bundle-1 "a
  SubscriptionStatus as the first entry", its `notificationEvent.focus`); R5: Bundle.type
  `subscription-notification`
  (https://hl7.org/fhir/R5/subscription.html);
- a `{operationType, location, resource?}` feed item, or a list of them;
- a bare resource: what an R4 criteria-based rest-hook posts when `channel.payload` is set
  (https://hl7.org/fhir/R4/subscription.html#2.46.7.1; Medplum signs it, checked by the
  endpoint); only its type and id are taken, as for a full-resource entry.

Heartbeats, handshakes and status queries name nothing; deletes are skipped. A payload that is
not a notification raises `MalformedNotification` naming what is wrong in fixed words and ids,
never echoing values (not even a resource type: it may be free text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from carecoord.core.handler import FhirReader
from carecoord.core.references import FHIR_ID
from carecoord.errors import MalformedEvent
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json

log = logging.getLogger(__name__)

NOTIFICATION_BUNDLE_TYPES = frozenset({"history", "subscription-notification"})
EVENT_NOTIFICATIONS = frozenset({"event-notification", "query-event"})
NOTHING_NOTIFIED = frozenset({"heartbeat", "handshake", "query-status"})
DELETES = frozenset({"delete", "DELETE"})

_REFERENCE = re.compile(
    rf"(?:^|/)(?P<type>[A-Z][A-Za-z]{{1,63}})/(?P<id>{FHIR_ID})(?:/_history/(?P<vid>{FHIR_ID}))?/?\Z"
)
_RESOURCE_ID = re.compile(FHIR_ID)  # used with fullmatch: `$` would let "t1\n" through
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")


class MalformedNotification(MalformedEvent):
    """The payload is not a FHIR notification (the message says what is wrong, never a value)."""


@dataclass(frozen=True)
class Hint:
    """A resource a notification says changed: its identity only (the content is not trusted)."""

    resource_type: str
    id: str

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True)
class Changed:
    """One changed resource as the FHIR server has it (its JSON, identity and version)."""

    resource: Mapping[str, Any]
    resource_type: str
    id: str
    version: str | None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


def notified_resources(payload: Any) -> list[Hint]:
    """The resources a notification payload (parsed JSON) names, in order, repeats included.

    Raises MalformedNotification for a payload that is not a notification."""
    if isinstance(payload, list):
        return [h for i, item in enumerate(payload) for h in _feed_item(item, f"item {i}")]
    if not isinstance(payload, Mapping):
        raise MalformedNotification(
            f"not a FHIR notification: JSON {type(payload).__name__}, expected an object or a list"
        )
    if payload.get("resourceType") == "Bundle":
        return _bundle(payload)
    if "operationType" in payload:
        return _feed_item(payload, "item")
    if "resourceType" in payload:  # R4 criteria-based rest-hook: the changed resource itself
        return [_full(payload, "resource")]
    raise MalformedNotification(
        "not a FHIR notification: expected a notification Bundle, "
        "{operationType, location, resource} feed item(s) or a resource"
    )


def read_current(hint: Hint, fhir: FhirReader) -> Changed | None:
    """The notified resource as the server has it now (its current version), None if gone.
    Other FhirErrors of the read propagate."""
    try:
        data = to_json(fhir.read(hint.resource_type, hint.id))
    except (FhirNotFound, FhirGone):
        log.debug("notified resource is not on the server", extra={"resource": hint.reference})
        return None
    return Changed(data, hint.resource_type, hint.id, _version(data))


def parse_reference(url: str) -> tuple[str, str, str | None] | None:
    """(type, id, version) from a relative or absolute reference, e.g. .../Task/7/_history/2."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0].split("#", 1)[0]
    match = _REFERENCE.search(path)
    if match is None:
        return None
    return match["type"], match["id"], match["vid"]


def _bundle(bundle: Mapping[str, Any]) -> list[Hint]:
    if bundle.get("type") not in NOTIFICATION_BUNDLE_TYPES:
        raise MalformedNotification(
            "notification Bundle.type must be history (R4 backport) or subscription-notification"
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise MalformedNotification(
            "notification Bundle has no entry (the first must be its status)"
        )
    status = entries[0].get("resource") if isinstance(entries[0], Mapping) else None
    if not isinstance(status, Mapping) or status.get("resourceType") not in (
        "Parameters",
        "SubscriptionStatus",
    ):
        raise MalformedNotification(
            "notification Bundle's first entry must be a Parameters or SubscriptionStatus resource"
        )
    kind = _notification_type(status)
    if kind in NOTHING_NOTIFIED:
        return []
    if kind not in EVENT_NOTIFICATIONS:
        raise MalformedNotification(
            "notification status has no known type (event-notification, heartbeat, handshake, "
            "query-status, query-event)"
        )
    hints: list[Hint] = []
    for n, entry in enumerate(entries[1:], start=1):
        where = f"Bundle.entry[{n}]"
        if not isinstance(entry, Mapping):
            raise MalformedNotification(f"{where} is not an object")
        request = entry.get("request")
        request = request if isinstance(request, Mapping) else {}
        method, url = request.get("method"), request.get("url")
        locations = [u for u in (entry.get("fullUrl"), url) if isinstance(u, str)]
        resource = entry.get("resource")
        if resource is not None:
            hints.append(_full(resource, where))
        elif method in DELETES:
            continue
        elif not locations:
            raise MalformedNotification(f"{where} has neither a resource nor fullUrl / request.url")
        else:
            hints.append(_located(locations, where))
    if len(entries) == 1:  # id-only may name the changed resources only as focus
        for n, focus in enumerate(_focus_references(status)):
            hints.append(_located([focus], f"notification event {n} focus"))
    return hints


def _notification_type(status: Mapping[str, Any]) -> str | None:
    if status.get("resourceType") == "SubscriptionStatus":
        kind = status.get("type")
        return kind if isinstance(kind, str) else None
    for param in status.get("parameter") or []:
        if isinstance(param, Mapping) and param.get("name") == "type":
            kind = param.get("valueCode")
            return kind if isinstance(kind, str) else None
    return None


def _focus_references(status: Mapping[str, Any]) -> list[str]:
    refs: list[Any] = []
    if status.get("resourceType") == "SubscriptionStatus":
        for event in status.get("notificationEvent") or []:
            if isinstance(event, Mapping) and isinstance(event.get("focus"), Mapping):
                refs.append(event["focus"].get("reference"))
    else:
        for param in status.get("parameter") or []:
            if not isinstance(param, Mapping) or param.get("name") != "notification-event":
                continue
            for part in param.get("part") or []:
                if isinstance(part, Mapping) and part.get("name") == "focus":
                    value = part.get("valueReference")
                    refs.append(value.get("reference") if isinstance(value, Mapping) else None)
    return [r for r in refs if isinstance(r, str)]


def _feed_item(item: Any, where: str) -> list[Hint]:
    if not isinstance(item, Mapping):
        raise MalformedNotification(f"feed {where} is not an object")
    operation, location = item.get("operationType"), item.get("location")
    if not isinstance(operation, str) or not operation:
        raise MalformedNotification(f"feed {where} has no operationType")
    if not isinstance(location, str) or not location:
        raise MalformedNotification(f"feed {where} has no location")
    if operation in DELETES:
        return []
    resource = item.get("resource")
    if resource is not None:
        return [_full(resource, f"feed {where}")]
    return [_located([location], f"feed {where}")]


def _full(resource: Any, where: str) -> Hint:
    """A full-resource entry: only its identity is taken; its content is the sender's claim."""
    if not isinstance(resource, Mapping):
        raise MalformedNotification(f"{where}: resource is not an object")
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if not isinstance(rtype, str) or not _RESOURCE_TYPE.fullmatch(rtype):
        raise MalformedNotification(f"{where}: resource has no valid resourceType")
    if not isinstance(rid, str) or not _RESOURCE_ID.fullmatch(rid):
        raise MalformedNotification(f"{where}: resource has no valid id")
    return Hint(rtype, rid)


def _located(locations: Sequence[str], where: str) -> Hint:
    parsed = next((p for p in map(parse_reference, locations) if p), None)
    if parsed is None:
        raise MalformedNotification(f"{where}: location is not a Type/id reference")
    return Hint(parsed[0], parsed[1])


def _version(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    vid = meta.get("versionId") if isinstance(meta, Mapping) else None
    return str(vid) if isinstance(vid, str | int) and _RESOURCE_ID.fullmatch(str(vid)) else None


__all__ = [
    "Changed",
    "Hint",
    "MalformedNotification",
    "notified_resources",
    "parse_reference",
    "read_current",
]
