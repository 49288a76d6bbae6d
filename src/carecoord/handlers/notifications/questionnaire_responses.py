"""A completed QuestionnaireResponse -> `carecoord.assessment.completed` with data exactly
`{"questionnaire_response": "QuestionnaireResponse/<id>"}`: the answers stay on the FHIR server
(they are PHI); the assessment handler reads them. Reached by a notification of the
QuestionnaireResponse or by the reconciling poller. Only `completed` counts (FHIR R4
QuestionnaireResponse.status: in-progress, completed, amended, entered-in-error, stopped); the
id is per response (`fhir-notification:QuestionnaireResponse/<id>/completed`), so an amendment
later is not a second assessment.
"""

from __future__ import annotations

import logging
from datetime import datetime

from carecoord.core.catalog import AssessmentCompleted, wire_data
from carecoord.core.envelope import CloudEvent
from carecoord.fhir.notification_bundles import Changed, parse_reference
from carecoord.handlers.notifications.common import ID_PREFIX, changed_at, patient_event

log = logging.getLogger(__name__)

ASSESSMENT_COMPLETED = AssessmentCompleted.event_type


def assessment_completed(
    response: str, patient: str, event_id: str, when: datetime | None
) -> CloudEvent:
    """The one place the event is built, from its catalog model (the assessments handler's)."""
    data = wire_data(AssessmentCompleted(questionnaire_response=response))
    return patient_event(event_id, ASSESSMENT_COMPLETED, patient, when, data)


def questionnaire_response_events(changed: Changed) -> list[CloudEvent]:
    qr = changed.resource
    if qr.get("status") != "completed":
        return []
    subject = qr.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    parsed = parse_reference(ref) if isinstance(ref, str) else None
    if parsed is None or parsed[0] != "Patient":
        log.info(
            "completed QuestionnaireResponse has no Patient subject: no event",
            extra={"resource": changed.reference},
        )
        return []
    authored = qr.get("authored")
    when = None
    if isinstance(authored, str):
        try:
            when = datetime.fromisoformat(authored)
        except ValueError:
            when = None
    return [
        assessment_completed(
            changed.reference,
            parsed[1],
            f"{ID_PREFIX}{changed.reference}/completed",
            when or changed_at(qr),
        )
    ]


__all__ = ["ASSESSMENT_COMPLETED", "assessment_completed", "questionnaire_response_events"]
