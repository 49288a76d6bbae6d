"""Factories for the catalog's events (core/catalog.py): valid defaults, every field overridable.

Each returns a CloudEvent for `Patient/<patient>` with a deterministic id (pass `id=` to choose),
so a test can replay the same event. `event()` builds any type, e.g. your own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carecoord.core.envelope import CloudEvent, new_event


def event(
    type: str, patient: str, data: Mapping[str, Any] | None = None, *, id: str | None = None
) -> CloudEvent:
    """Any event type for `Patient/<patient>`; the id defaults to type:patient."""
    return new_event(type, patient, dict(data or {}), id=id or f"test:{type}:{patient}")


def patient_enrolled(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    """Enrolled with consent recorded (pass `consent=None` for a pending enrolment)."""
    start = str(data.get("start", "2030-01-01"))
    consent = {"date": start, "method": "verbal", "recorded_by": "Practitioner/doc"}
    body = {"program": "CCM", "provider": "Practitioner/doc", "start": start, "consent": consent}
    body.update(data)
    if body["consent"] is None:
        del body["consent"]
    return event("carecoord.patient.enrolled", patient, body, id=id)


def outreach_attempted(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": "no-answer",
        "attempted_at": "2030-01-02T10:00:00Z",
        "by": "Practitioner/cm1",
        **data,
    }
    return event("carecoord.outreach.attempted", patient, body, id=id)


def outreach_due(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {"period_start": "2030-01-01", "period_end": "2030-01-31", **data}
    return event("carecoord.outreach.due", patient, body, id=id)


def sdoh_need_identified(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True, **data}
    return event("carecoord.sdoh.need-identified", patient, body, id=id)


def referral_status_changed(
    patient: str, task: str, status: str, *, id: str | None = None, **data: Any
) -> CloudEvent:
    body = {"task": task, "status": status, **data}
    return event("carecoord.referral.status-changed", patient, body, id=id)


def clinical_question(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {
        "question": "Should the dose change?",
        "urgency": "routine",
        "raised_by": "Practitioner/cm1",
        **data,
    }
    return event("carecoord.clinical.question", patient, body, id=id)


def time_logged(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {
        "program": "CCM",
        "minutes": 20,
        "activity": "care-plan review",
        "by": "Practitioner/cm1",
        "performed_at": "2030-01-02T10:00:00Z",
        **data,
    }
    return event("carecoord.time.logged", patient, body, id=id)


def task_overdue(patient: str, task: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    return event("carecoord.task.overdue", patient, {"task": task, **data}, id=id)


def care_manager_reassign(
    patient: str, care_manager: str, *, id: str | None = None, **data: Any
) -> CloudEvent:
    body = {"care_manager": care_manager, "reason": "left", **data}
    return event("carecoord.care-manager.reassign", patient, body, id=id)
