"""FHIR server change notifications -> carecoord domain events.

A notification is a hint, never the truth: `carecoord.fhir.notification_bundles` takes only the
identity of each resource it names (which payloads are accepted, and the `MalformedNotification`
for those that are not, are described there), and every resource a translator in `TRANSLATORS`
claims is read again from the FHIR server; the events are made only from what the server has
(status, statusReason, version). Resources no translator claims are not read.

The referral Task translator turns a carecoord referral Task (code `fulfill` and a carecoord
`referral-task` identifier) whose status is one the recipient sets (accepted, rejected,
in-progress, on-hold, completed, failed, cancelled) into `carecoord.referral.status-changed`
(`set_by: owner`; none for cancelled, which the requester sets too). Its id comes
from the Task's version, so a repeated notification yields the same id. The statuses only the
requester sets (draft, requested, entered-in-error) translate to nothing.
Any other carecoord Task (e.g. a provider's clinical-review Task) reports its status the same way
as `carecoord.task.status-changed` (carecoord.handlers.notifications.tasks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import identifier_system
from carecoord.core.catalog import ReferralStatusChanged
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import FhirReader
from carecoord.fhir.notification_bundles import (
    Changed,
    Hint,
    notified_resources,
    read_current,
)
from carecoord.handlers.notifications.common import (
    ID_PREFIX,
    RECIPIENT_STATUSES,
    SOURCE,
    status_event,
    task_patient,
)
from carecoord.handlers.notifications.tasks import carecoord_task_events

log = logging.getLogger(__name__)

REFERRAL_STATUS_CHANGED = ReferralStatusChanged.event_type
REFERRAL_TASK_ID = identifier_system("referral-task")


ResourceTranslator = Callable[[Changed], list[CloudEvent]]


def translate(payload: Mapping[str, Any] | Sequence[Any], *, fhir: FhirReader) -> list[CloudEvent]:
    """The domain events a FHIR change notification stands for (possibly none).

    `fhir` (the configured FHIR server) is where every notified resource a translator wants is
    read; the events come from what it returns. Raises MalformedNotification (a MalformedEvent)
    for a payload that is not a notification; FhirErrors of the reads propagate (a resource
    deleted since is skipped).
    """
    events: list[CloudEvent] = []
    seen: set[tuple[str, str]] = set()
    for hint in notified_resources(payload):
        if (hint.resource_type, hint.id) in seen:  # one read per resource per notification
            continue
        seen.add((hint.resource_type, hint.id))
        translator = TRANSLATORS.get(hint.resource_type)
        if translator is None:  # not worth a read; the type may be free text: not logged
            log.debug("notification ignored: resource type not translated")
            continue
        changed = read_current(hint, fhir)
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
    patient = task_patient(task, changed.reference, "referral Task")
    # Only the recipient sets these statuses, except cancelled, which either side sets
    # (SDOHCC status table: "Requester or Referral Target"): a cancellation carecoord (the
    # requester) wrote comes back here too, so the event leaves set_by out and the handler tells
    # them apart from its own record (carecoord revokes the ServiceRequest in the same
    # transaction: carecoord.handlers.referrals.handler.canceller).
    data: dict[str, Any] = {"task": changed.reference, "status": status}
    if status != "cancelled":
        data["set_by"] = "owner"
    reason = task.get("statusReason")
    if isinstance(reason, Mapping) and isinstance(reason.get("text"), str) and reason["text"]:
        data["reason"] = reason["text"]
    return [status_event(changed, REFERRAL_STATUS_CHANGED, patient, data)]


def task_events(changed: Changed) -> list[CloudEvent]:
    """Any carecoord Task reports its status: a referral Task as
    carecoord.referral.status-changed, any other as carecoord.task.status-changed
    (carecoord.handlers.notifications.tasks)."""
    if _is_referral_task(changed.resource):
        return referral_task_events(changed)
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
