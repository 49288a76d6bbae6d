"""Factories for the catalog's events (core/catalog.py): valid defaults, every field overridable.

Each returns a CloudEvent for `Patient/<patient>` with a deterministic id (pass `id=` to choose),
so a test can replay the same event. `FACTORIES` has one per inbound catalog type; `of()` makes
the event of a catalog model; `event()` builds any type, e.g. your own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from carecoord.core.catalog import EventData, wire_data
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


def consent_recorded(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {
        "program": "CCM",
        "date": "2030-01-02",
        "method": "verbal",
        "recorded_by": "Practitioner/cm1",
    }
    return event("carecoord.consent.recorded", patient, {**body, **data}, id=id)


def patient_disenrolled(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {"program": "CCM", "reason": "patient-request", **data}
    return event("carecoord.patient.disenrolled", patient, body, id=id)


def patient_discharged(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    body = {
        "discharged_at": "2030-01-02T15:00:00Z",
        "facility": "Organization/general-hospital",
        "setting": "inpatient",
        "complexity": "moderate",
        **data,
    }
    return event("carecoord.patient.discharged", patient, body, id=id)


def tcm_episode_ended(patient: str, episode: str, *, id: str | None = None) -> CloudEvent:
    return event("carecoord.tcm.episode-ended", patient, {"episode": episode}, id=id)


def clinical_overdue(
    patient: str, task: str, *, level: int = 1, id: str | None = None, **data: Any
) -> CloudEvent:
    body = {"task": task, "level": level, **data}
    return event("carecoord.clinical.overdue", patient, body, id=id)


def task_status_changed(
    patient: str, task: str, status: str, *, id: str | None = None, **data: Any
) -> CloudEvent:
    body = {"task": task, "status": status, **data}
    return event("carecoord.task.status-changed", patient, body, id=id)


def assessment_completed(
    patient: str,
    questionnaire_response: str = "QuestionnaireResponse/qr1",
    *,
    id: str | None = None,
    **data: Any,
) -> CloudEvent:
    body = {"questionnaire_response": questionnaire_response, **data}
    return event("carecoord.assessment.completed", patient, body, id=id)


def of(data: EventData, patient: str, *, id: str | None = None) -> CloudEvent:
    """The event of a catalog model, e.g. `of(PatientDischarged(...), "p1")`: typed data, the
    type from the model."""
    if not data.event_type:
        raise ValueError(f"{type(data).__name__} names no event type")
    return event(data.event_type, patient, wire_data(data), id=id)


def rpm_reading(patient: str, *, id: str | None = None, **data: Any) -> CloudEvent:
    """One device reading (pass `id=` per reading: the default id is the same for every one)."""
    body = {"device": "Device/bp-cuff-1", "observed_at": "2030-01-02T08:00:00Z", **data}
    return event("carecoord.rpm.reading", patient, body, id=id)


FACTORIES: dict[str, Callable[..., CloudEvent]] = {
    "carecoord.patient.enrolled": patient_enrolled,
    "carecoord.consent.recorded": consent_recorded,
    "carecoord.patient.disenrolled": patient_disenrolled,
    "carecoord.patient.discharged": patient_discharged,
    "carecoord.tcm.episode-ended": tcm_episode_ended,
    "carecoord.outreach.attempted": outreach_attempted,
    "carecoord.outreach.due": outreach_due,
    "carecoord.sdoh.need-identified": sdoh_need_identified,
    "carecoord.referral.status-changed": referral_status_changed,
    "carecoord.clinical.question": clinical_question,
    "carecoord.clinical.overdue": clinical_overdue,
    "carecoord.task.status-changed": task_status_changed,
    "carecoord.time.logged": time_logged,
    "carecoord.task.overdue": task_overdue,
    "carecoord.care-manager.reassign": care_manager_reassign,
    "carecoord.rpm.reading": rpm_reading,
    "carecoord.assessment.completed": assessment_completed,
}
"""The factory of each inbound catalog type."""
