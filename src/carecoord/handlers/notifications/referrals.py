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
as `carecoord.task.status-changed` (carecoord.handlers.notifications.tasks). A finished discharge
Encounter becomes `carecoord.patient.discharged` (.encounters), a completed QuestionnaireResponse
`carecoord.assessment.completed` (.questionnaire_responses).

The reconciling poller (carecoord.service.reconcile) hands the resources its searches find to the
same translators (`events_of`); both remember the versions they published in one
`SeenVersions` (.seen), so a change notified and polled is published once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
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
    owner_set_status,
    status_event,
)
from carecoord.handlers.notifications.encounters import (
    DEFAULT_MAPPING,
    DischargeMapping,
    encounter_events,
)
from carecoord.handlers.notifications.questionnaire_responses import (
    questionnaire_response_events,
)
from carecoord.handlers.notifications.seen import POLLED, SeenVersions, key_of
from carecoord.handlers.notifications.tasks import carecoord_task_events

log = logging.getLogger(__name__)

REFERRAL_STATUS_CHANGED = ReferralStatusChanged.event_type
REFERRAL_TASK_ID = identifier_system("referral-task")


ResourceTranslator = Callable[[Changed], list[CloudEvent]]


class Translation(list[CloudEvent]):
    """A notification's events, and in `versions` the resource versions they came from
    (remember those in the shared SeenVersions once the events are published)."""

    def __init__(self, events: Sequence[CloudEvent] = (), versions: Sequence[str] = ()) -> None:
        super().__init__(events)
        self.versions = list(versions)


def translate(
    payload: Mapping[str, Any] | Sequence[Any],
    *,
    fhir: FhirReader,
    translators: Mapping[str, ResourceTranslator] | None = None,
    seen: SeenVersions | None = None,
) -> Translation:
    """The domain events a FHIR change notification stands for (possibly none).

    `fhir` (the configured FHIR server) is where every notified resource a translator wants is
    read; the events come from what it returns. Raises MalformedNotification (a MalformedEvent)
    for a payload that is not a notification; FhirErrors of the reads propagate (a resource
    deleted since is skipped). `translators` default to TRANSLATORS; versions the reconciling
    poller already published (in `seen`) are skipped.
    """
    table = TRANSLATORS if translators is None else translators
    result = Translation()
    asked: set[tuple[str, str]] = set()
    for hint in notified_resources(payload):
        if (hint.resource_type, hint.id) in asked:  # one read per resource per notification
            continue
        asked.add((hint.resource_type, hint.id))
        translator = table.get(hint.resource_type)
        if translator is None:  # not worth a read; the type may be free text: not logged
            log.debug("notification ignored: resource type not translated")
            continue
        changed = read_current(hint, fhir)
        if changed is None:
            continue
        if seen is not None and seen.seen(changed, by=POLLED):
            log.debug("notified version already polled", extra={"resource": changed.reference})
            continue
        result.extend(translator(changed))
        key = key_of(changed)
        if key is not None:
            result.versions.append(key)
    return result


def events_of(
    changed: Changed, translators: Mapping[str, ResourceTranslator] | None = None
) -> list[CloudEvent]:
    """The events of one changed resource as the server has it (no translator: none)."""
    translator = (TRANSLATORS if translators is None else translators).get(changed.resource_type)
    return translator(changed) if translator is not None else []


# ---------------------------------------------------------------------------------------------
# Translators (resource type -> events); add entries here for more mappings


def referral_task_events(changed: Changed) -> list[CloudEvent]:
    """carecoord.referral.status-changed for a referral Task in a status the recipient sets."""
    found = owner_set_status(changed, _is_referral_task, "referral Task", "recipient")
    if found is None:
        return []
    patient, status = found
    task = changed.resource
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


def translators(discharges: DischargeMapping = DEFAULT_MAPPING) -> dict[str, ResourceTranslator]:
    """The translator of each resource type, the Encounter one with its discharge mapping."""
    return {
        "Task": task_events,
        "Encounter": partial(encounter_events, mapping=discharges),
        "QuestionnaireResponse": questionnaire_response_events,
    }


TRANSLATORS: dict[str, ResourceTranslator] = translators()


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
    "Translation",
    "events_of",
    "referral_task_events",
    "task_events",
    "translate",
    "translators",
]
