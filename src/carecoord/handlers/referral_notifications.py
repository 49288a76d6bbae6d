"""FHIR server change notifications -> carecoord domain events.

A notification is a hint, never the truth: whoever can post to the endpoint could claim anything.
Every changed resource it names (full-resource or id-only) is read again from the FHIR server,
and the events are made only from what the server has (status, statusReason, version). A
full-resource entry's content is used for its identity (type, id) only.

Accepted payloads:
- a Subscriptions R4 Backport notification Bundle (type `history`; R5 `subscription-notification`)
  whose first entry is the notification's status (a `Parameters` resource in the R4 backport, a
  `SubscriptionStatus` in R4B/R5) followed by the changed resources: full-resource entries, or
  id-only entries (fullUrl / request.url only; the focus of the notification events when there are
  no entries);
- a `{operationType, location, resource?}` feed item, or a list of them.

Heartbeats, handshakes and status queries translate to nothing; so do resources no translator in
`TRANSLATORS` claims (not read). A payload that is not a notification raises `MalformedEvent`
naming what is wrong in fixed words and ids, never echoing values (not even a resource type).

The referral Task translator turns a carecoord referral Task (code `fulfill` and a carecoord
`referral-task` identifier) whose status is one the recipient sets (accepted, rejected,
in-progress, on-hold, completed, failed, cancelled) into `carecoord.referral.status-changed`
(`set_by: owner`). Its id comes
from the Task's version, so a repeated notification yields the same id. The statuses only the
requester sets (draft, requested, entered-in-error) translate to nothing.
Any other carecoord Task (e.g. a provider's clinical-review Task) reports its status the same way
as `carecoord.task.status-changed` (carecoord.handlers.task_notifications).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.errors import MalformedEvent
from carecoord.fhir import terminology as t
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.identifiers import identifier_system
from carecoord.fhir.models import to_json
from carecoord.fhir.workflow import SET_BY

log = logging.getLogger(__name__)

SOURCE = "urn:carecoord:fhir-notifications"
ID_PREFIX = "fhir-notification:"
REFERRAL_STATUS_CHANGED = "carecoord.referral.status-changed"
REFERRAL_TASK_ID = identifier_system("referral-task")

NOTIFICATION_BUNDLE_TYPES = frozenset({"history", "subscription-notification"})
EVENT_NOTIFICATIONS = frozenset({"event-notification", "query-event"})
NOTHING_TO_TRANSLATE = frozenset({"heartbeat", "handshake", "query-status"})
DELETES = frozenset({"delete", "DELETE"})

# Statuses the recipient (the Task's owner) may set in a Gravity referral, cancelled included
# (the IG's status table: "Requester or Referral Target").
RECIPIENT_STATUSES: frozenset[str] = frozenset(
    status for status, who in SET_BY.items() if "owner" in who
)

_ID = r"[A-Za-z0-9\-.]{1,64}"
_REFERENCE = re.compile(
    rf"(?:^|/)(?P<type>[A-Z][A-Za-z]{{1,63}})/(?P<id>{_ID})(?:/_history/(?P<vid>{_ID}))?/?$"
)
_RESOURCE_ID = re.compile(rf"^{_ID}$")
_RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")


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


ResourceTranslator = Callable[[Changed], list[CloudEvent]]


def translate(payload: Mapping[str, Any] | Sequence[Any], *, fhir: FhirReader) -> list[CloudEvent]:
    """The domain events a FHIR change notification stands for (possibly none).

    `fhir` (the configured FHIR server) is where every notified resource a translator wants is
    read; the events come from what it returns. Raises MalformedEvent for a payload that is not a
    notification; FhirErrors of the reads propagate (a resource deleted since is skipped).
    """
    events: list[CloudEvent] = []
    seen: set[tuple[str, str]] = set()
    for hint in _hints(payload):
        if (hint.resource_type, hint.id) in seen:  # one read per resource per notification
            continue
        seen.add((hint.resource_type, hint.id))
        translator = TRANSLATORS.get(hint.resource_type)
        if translator is None:  # not worth a read; the type may be free text: not logged
            log.debug("notification ignored: resource type not translated")
            continue
        changed = _read(hint, fhir)
        if changed is not None:
            events.extend(translator(changed))
    return events


# ---------------------------------------------------------------------------------------------
# Translators (resource type -> events); add entries here for more mappings


def referral_task_events(changed: Changed) -> list[CloudEvent]:
    """carecoord.referral.status-changed for a referral Task in a status the recipient sets."""
    task = changed.resource
    if not _is_referral_task(task):
        log.debug(
            "notification ignored: not a referral Task", extra={"resource": changed.reference}
        )
        return []
    status = task.get("status")
    if status not in RECIPIENT_STATUSES:
        log.debug(
            "notification ignored: status not set by the recipient",
            extra={"resource": changed.reference},
        )
        return []
    patient = _patient_of(task, changed.reference)
    # Only the recipient changes a referral Task on the server that carecoord does not write
    # itself; a cancellation carecoord (the requester) wrote comes back here too and is told
    # apart by the handler: carecoord revokes the ServiceRequest in the same transaction.
    data: dict[str, Any] = {"task": changed.reference, "status": status, "set_by": "owner"}
    if changed.version:
        data["task_version"] = changed.version
    reason = task.get("statusReason")
    if isinstance(reason, Mapping) and isinstance(reason.get("text"), str) and reason["text"]:
        data["reason"] = reason["text"]
    changed_at = _time(task)
    if changed.version:
        event_id = f"{ID_PREFIX}{changed.reference}/_history/{changed.version}"
    else:  # no version known: the status and when it was set identify the change
        stamp = f"@{changed_at.isoformat()}" if changed_at else ""
        event_id = f"{ID_PREFIX}{changed.reference}/status/{status}{stamp}"
    return [
        CloudEvent(
            id=event_id,
            source=SOURCE,
            type=REFERRAL_STATUS_CHANGED,
            time=changed_at,
            subject=f"Patient/{patient}",
            data=data,
        )
    ]


def task_events(changed: Changed) -> list[CloudEvent]:
    """Any carecoord Task reports its status: a referral Task as
    carecoord.referral.status-changed, any other as carecoord.task.status-changed
    (carecoord.handlers.task_notifications)."""
    if _is_referral_task(changed.resource):
        return referral_task_events(changed)
    from carecoord.handlers.task_notifications import carecoord_task_events  # imports this module

    return carecoord_task_events(changed)


TRANSLATORS: dict[str, ResourceTranslator] = {
    "Task": task_events,
}


def _is_referral_task(task: Mapping[str, Any]) -> bool:
    identifiers = task.get("identifier")
    has_identifier = isinstance(identifiers, list) and any(
        isinstance(i, Mapping) and i.get("system") == REFERRAL_TASK_ID and i.get("value")
        for i in identifiers
    )
    code = task.get("code")
    codings = code.get("coding") if isinstance(code, Mapping) else None
    fulfills = isinstance(codings, list) and any(
        isinstance(c, Mapping)
        and c.get("system") == t.TASK_FULFILL.system
        and c.get("code") == t.TASK_FULFILL.code
        for c in codings
    )
    return has_identifier and fulfills


def _patient_of(task: Mapping[str, Any], where: str) -> str:
    subject = task.get("for")
    ref = subject.get("reference") if isinstance(subject, Mapping) else None
    parsed = _parse_reference(ref) if isinstance(ref, str) else None
    if parsed is None or parsed[0] != "Patient":
        raise MalformedEvent("referral Task has no Patient reference in Task.for", resource=where)
    return parsed[1]


def _time(resource: Mapping[str, Any]) -> datetime | None:
    meta = resource.get("meta")
    for value in (
        resource.get("lastModified"),
        meta.get("lastUpdated") if isinstance(meta, Mapping) else None,
    ):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue
    return None


# ---------------------------------------------------------------------------------------------
# Payload shapes -> changed resources


def _hints(payload: Any) -> list[Hint]:
    if isinstance(payload, list):
        return [h for i, item in enumerate(payload) for h in _feed_item(item, f"item {i}")]
    if not isinstance(payload, Mapping):
        raise MalformedEvent(
            f"not a FHIR notification: JSON {type(payload).__name__}, expected an object or a list"
        )
    if payload.get("resourceType") == "Bundle":
        return _bundle(payload)
    if "operationType" in payload:
        return _feed_item(payload, "item")
    raise MalformedEvent(
        "not a FHIR notification: expected a notification Bundle or "
        "{operationType, location, resource} feed item(s)"
    )


def _bundle(bundle: Mapping[str, Any]) -> list[Hint]:
    if bundle.get("type") not in NOTIFICATION_BUNDLE_TYPES:
        raise MalformedEvent(
            "notification Bundle.type must be history (R4 backport) or subscription-notification"
        )
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise MalformedEvent("notification Bundle has no entry (the first must be its status)")
    status = entries[0].get("resource") if isinstance(entries[0], Mapping) else None
    if not isinstance(status, Mapping) or status.get("resourceType") not in (
        "Parameters",
        "SubscriptionStatus",
    ):
        raise MalformedEvent(
            "notification Bundle's first entry must be a Parameters or SubscriptionStatus resource"
        )
    kind = _notification_type(status)
    if kind in NOTHING_TO_TRANSLATE:
        return []
    if kind not in EVENT_NOTIFICATIONS:
        raise MalformedEvent(
            "notification status has no known type (event-notification, heartbeat, handshake, "
            "query-status, query-event)"
        )
    hints: list[Hint] = []
    for n, entry in enumerate(entries[1:], start=1):
        where = f"Bundle.entry[{n}]"
        if not isinstance(entry, Mapping):
            raise MalformedEvent(f"{where} is not an object")
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
            raise MalformedEvent(f"{where} has neither a resource nor fullUrl / request.url")
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
        raise MalformedEvent(f"feed {where} is not an object")
    operation, location = item.get("operationType"), item.get("location")
    if not isinstance(operation, str) or not operation:
        raise MalformedEvent(f"feed {where} has no operationType")
    if not isinstance(location, str) or not location:
        raise MalformedEvent(f"feed {where} has no location")
    if operation in DELETES:
        return []
    resource = item.get("resource")
    if resource is not None:
        return [_full(resource, f"feed {where}")]
    return [_located([location], f"feed {where}")]


def _full(resource: Any, where: str) -> Hint:
    """A full-resource entry: only its identity is taken; its content is the sender's claim."""
    if not isinstance(resource, Mapping):
        raise MalformedEvent(f"{where}: resource is not an object")
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if not isinstance(rtype, str) or not _RESOURCE_TYPE.match(rtype):
        raise MalformedEvent(f"{where}: resource has no valid resourceType")
    if not isinstance(rid, str) or not _RESOURCE_ID.match(rid):
        raise MalformedEvent(f"{where}: resource has no valid id")
    return Hint(rtype, rid)


def _located(locations: Sequence[str], where: str) -> Hint:
    parsed = next((p for p in map(_parse_reference, locations) if p), None)
    if parsed is None:
        raise MalformedEvent(f"{where}: location is not a Type/id reference")
    return Hint(parsed[0], parsed[1])


def _read(hint: Hint, fhir: FhirReader) -> Changed | None:
    """The notified resource as the server has it now (its current version), None if gone."""
    try:
        data = to_json(fhir.read(hint.resource_type, hint.id))
    except (FhirNotFound, FhirGone):
        log.debug("notified resource is not on the server", extra={"resource": hint.reference})
        return None
    return Changed(data, hint.resource_type, hint.id, _version(data))


def _version(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    vid = meta.get("versionId") if isinstance(meta, Mapping) else None
    return str(vid) if isinstance(vid, str | int) and _RESOURCE_ID.match(str(vid)) else None


def _parse_reference(url: str) -> tuple[str, str, str | None] | None:
    """(type, id, version) from a relative or absolute reference, e.g. .../Task/7/_history/2."""
    path = urlsplit(url).path if "://" in url else url.split("?", 1)[0].split("#", 1)[0]
    match = _REFERENCE.search(path)
    if match is None:
        return None
    return match["type"], match["id"], match["vid"]


__all__ = [
    "ID_PREFIX",
    "RECIPIENT_STATUSES",
    "SOURCE",
    "TRANSLATORS",
    "Changed",
    "Hint",
    "ResourceTranslator",
    "referral_task_events",
    "task_events",
    "translate",
]
