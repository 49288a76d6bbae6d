"""FHIR notifications about any carecoord Task other than a referral Task ->
`carecoord.task.status-changed` (carecoord.handlers.notifications.referrals' Task translator
hands them here; referral Tasks keep their own event, `carecoord.referral.status-changed`).

A carecoord Task is one with a carecoord business identifier (https://carecoord.dev/fhir/
identifier/...). As for referrals, the event is made from the server's copy only: its status
and version, never statusReason.text (a provider may write clinical detail there), nor
Task.input / output (a question, an answer). The id comes from the Task's version
(`fhir-notification:Task/<id>/_history/<versionId>`), so a repeated notification maps to the
same id. Only the statuses the Task's owner sets (received, accepted, rejected, in-progress,
on-hold, completed, failed) are reported: the ones carecoord writes itself are not news to it.
What a status means is the handlers' business (e.g. the clinical loop: a provider completed a
clinical-review Task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from carecoord.caremodel.terminology import IDENTIFIER_SYSTEM_BASE
from carecoord.core.catalog import TaskStatusChanged
from carecoord.core.envelope import CloudEvent
from carecoord.fhir.notification_bundles import Changed
from carecoord.handlers.notifications.common import (
    owner_set_status,
    status_event,
)

log = logging.getLogger(__name__)

TASK_STATUS_CHANGED = TaskStatusChanged.event_type


def is_carecoord_task(task: Mapping[str, Any]) -> bool:
    identifiers = task.get("identifier")
    return isinstance(identifiers, list) and any(
        isinstance(i, Mapping)
        and isinstance(i.get("system"), str)
        and i["system"].startswith(IDENTIFIER_SYSTEM_BASE)
        and i.get("value")
        for i in identifiers
    )


def carecoord_task_events(changed: Changed) -> list[CloudEvent]:
    """carecoord.task.status-changed for a carecoord Task in a status its owner sets."""
    found = owner_set_status(changed, is_carecoord_task, "carecoord Task", "owner")
    if found is None:
        return []
    patient, status = found
    data: dict[str, Any] = {"task": changed.reference, "status": status}
    return [status_event(changed, TASK_STATUS_CHANGED, patient, data)]


__all__ = ["TASK_STATUS_CHANGED", "carecoord_task_events", "is_carecoord_task"]
