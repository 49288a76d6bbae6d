"""What every notification translator shares: the events' source and id prefix, the statuses
a Task's owner sets, and when a notified resource changed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from carecoord.caremodel.workflow import SET_BY
from carecoord.core.envelope import CloudEvent
from carecoord.errors import MalformedEvent
from carecoord.fhir.notification_bundles import Changed, parse_reference

log = logging.getLogger(__name__)

SOURCE = "urn:carecoord:fhir-notifications"
ID_PREFIX = "fhir-notification:"

# Statuses the recipient (the Task's owner) may set in a Gravity referral, cancelled included
# (the IG's status table: "Requester or Referral Target").
RECIPIENT_STATUSES: frozenset[str] = frozenset(
    status for status, who in SET_BY.items() if "owner" in who
)


def changed_at(resource: Mapping[str, Any]) -> datetime | None:
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


def task_patient(task: Mapping[str, Any], where: str, what: str) -> str:
    """The Patient id in `Task.for`; a Task without one is a MalformedEvent naming `where`."""
    subject = task.get("for")
    ref = subject.get("reference") if isinstance(subject, Mapping) else None
    parsed = parse_reference(ref) if isinstance(ref, str) else None
    if parsed is None or parsed[0] != "Patient":
        raise MalformedEvent(f"{what} has no Patient reference in Task.for", resource=where)
    return parsed[1]


def owner_set_status(
    changed: Changed, is_kind: Callable[[Mapping[str, Any]], bool], kind: str, setter: str
) -> tuple[str, str] | None:
    """The (Patient id, status) of a `kind` Task in a status its owner (the `setter`) sets;
    None, logged at debug, for another Task or a status carecoord writes itself."""
    task = changed.resource
    if not is_kind(task):
        log.debug("notification ignored: not a %s", kind, extra={"resource": changed.reference})
        return None
    status = task.get("status")
    if status not in RECIPIENT_STATUSES:
        log.debug(
            "notification ignored: status not set by the %s",
            setter,
            extra={"resource": changed.reference},
        )
        return None
    return task_patient(task, changed.reference, kind), status


def patient_event(
    event_id: str, event_type: str, patient: str, when: datetime | None, data: dict[str, Any]
) -> CloudEvent:
    """A notification's event about `Patient/<patient>`, at the time the resource changed."""
    return CloudEvent(
        id=event_id,
        source=SOURCE,
        type=event_type,
        time=when,
        subject=f"Patient/{patient}",
        data=data,
    )


def status_event(
    changed: Changed, event_type: str, patient: str, data: dict[str, Any]
) -> CloudEvent:
    """The event of a Task's new status. Its id comes from the Task's version, so a repeated
    notification maps to the same id; without a version, the status and when it was set."""
    status = changed.resource.get("status")
    when = changed_at(changed.resource)
    if changed.version:
        data["task_version"] = changed.version
        event_id = f"{ID_PREFIX}{changed.reference}/_history/{changed.version}"
    else:
        stamp = f"@{when.isoformat()}" if when else ""
        event_id = f"{ID_PREFIX}{changed.reference}/status/{status}{stamp}"
    return patient_event(event_id, event_type, patient, when, data)
