"""carecoord.assessment.completed -> read the QuestionnaireResponse, score it, write its
Observations, route what it calls for (follow_up.py), emit carecoord.assessment.scored.

- Not an instrument carecoord knows (by its `questionnaire` canonical), or not completed: logged
  with ids and carecoord.assessment.ignored; nothing written, not a dead letter.
- A malformed response of a known instrument (an answer outside an item's list): a dead letter,
  MalformedAssessment naming the item.
- Once per response version: the Observations' business identifiers and the follow-ups' event
  ids are derived from the response id and version, so a redelivery, or a second event for the
  same version, writes and routes nothing new. A new version (an amended response) is scored
  again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from carecoord.caremodel.identifiers import add_create, carecoord_identifier
from carecoord.caremodel.instruments import score_response
from carecoord.core.catalog import (
    AssessmentCompleted,
    AssessmentIgnored,
    AssessmentScored,
    ClinicalQuestion,
    SdohNeedIdentified,
)
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError, MalformedAssessment, MalformedEvent
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.handlers.assessments.follow_up import (
    RAISED_BY,
    AssessmentConfig,
    clinical_question,
    referral_domains,
)
from carecoord.handlers.assessments.observations import observations
from carecoord.handlers.care.event_ids import derived_id

log = logging.getLogger(__name__)

_COMPLETED = ("completed", "amended")

handlers = Handlers(
    "assessments",
    config=AssessmentConfig,
    description="Score completed PHQ-9, GAD-7, Hunger Vital Sign, AHC HRSN and check-in "
    "QuestionnaireResponses; write Observations; route results to the provider or a referral",
)


@handlers.on(AssessmentCompleted)
def handle_completed(d: Delivery[AssessmentCompleted, AssessmentConfig]) -> Effects:
    reference = d.data.questionnaire_response
    rid = reference.split("/", 1)[1]
    try:
        response = to_json(d.fhir.read("QuestionnaireResponse", rid))
    except (FhirNotFound, FhirGone) as exc:
        raise HandlerError(
            "the QuestionnaireResponse is not on the FHIR server",
            event_id=d.event.id,
            resource=reference,
        ) from exc
    if (response.get("subject") or {}).get("reference") != d.patient:
        raise MalformedEvent(
            "questionnaire_response: its subject is not the event's patient",
            event_id=d.event.id,
            event_type=d.event.type,
        )
    version = str((response.get("meta") or {}).get("versionId") or "1")
    key = f"{reference}/_history/{version}"
    fx = Effects()
    if response.get("status") not in _COMPLETED:
        return _ignored(fx, d.patient_id, reference, key, "not-completed")
    try:
        assessment = score_response(response)
    except MalformedAssessment as exc:
        raise MalformedAssessment(
            exc.message, item=exc.item, event_id=d.event.id, event_type=d.event.type
        ) from exc
    if assessment is None:
        return _ignored(fx, d.patient_id, reference, key, "unknown-instrument")

    effective = _authored(response) or d.event.time or d.ctx.now()
    written = []
    for obs in observations(
        assessment,
        patient=d.patient,
        response=reference,
        version=version,
        effective=effective,
    ):
        add_create(fx, obs)
        ident = carecoord_identifier(obs)
        assert ident is not None
        written.append(f"{ident[0]}|{ident[1]}")

    routed: list[str] = []
    instrument = assessment.instrument
    question = clinical_question(assessment, d.config)
    if question is not None:
        fx.emit(
            ClinicalQuestion(
                question=question.text(instrument.title, reference),
                urgency=question.urgency,
                raised_by=_raised_by(response),
            ),
            d.patient,
            id=derived_id(key, ClinicalQuestion.event_type),
        )
        routed.append(f"clinical-question:{question.urgency}")
    domains, unreferred = referral_domains(assessment, d.config)
    postal = _postal_code(d.ctx, d.patient_id) if domains else None
    if domains and postal:
        for domain in domains:
            fx.emit(
                SdohNeedIdentified(
                    domain=domain,
                    evidence=reference,  # the SDOHCC Condition's evidence.detail
                    postal_code=postal,
                    consent_to_contact=d.config.sdoh_consent_to_contact,
                ),
                d.patient,
                id=derived_id(key, SdohNeedIdentified.event_type, domain),
            )
            routed.append(f"sdoh-need:{domain}")
    elif domains:
        log.warning(
            "positive SDOH screen not referred: the patient has no postal code",
            extra={"questionnaire_response": reference, "domains": domains},
        )
    if unreferred:
        log.info(
            "positive SDOH screen in a domain carecoord does not refer",
            extra={"questionnaire_response": reference, "domains": unreferred},
        )
    fx.emit(
        AssessmentScored(
            questionnaire_response=reference,
            response_version=version,
            instrument=instrument.key,
            observations=written,
            routed=routed,
        ),
        d.patient,
        id=derived_id(key, AssessmentScored.event_type),
    )
    log.info(
        "assessment scored",
        extra={"questionnaire_response": reference, "instrument": instrument.key, "routed": routed},
    )
    return fx


def _ignored(
    fx: Effects,
    pid: str,
    reference: str,
    key: str,
    reason: Literal["unknown-instrument", "not-completed"],
) -> Effects:
    log.info(
        "questionnaire response ignored",
        extra={"questionnaire_response": reference, "reason": reason},
    )
    fx.emit(
        AssessmentIgnored(questionnaire_response=reference, reason=reason),
        f"Patient/{pid}",
        id=derived_id(key, AssessmentIgnored.event_type),
    )
    return fx


def _authored(response: dict[str, Any]) -> datetime | None:
    value = response.get("authored")
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _postal_code(ctx: HandlerContext, pid: str) -> str | None:
    try:
        patient = to_json(ctx.fhir.read("Patient", pid))
    except (FhirNotFound, FhirGone):
        return None
    for address in patient.get("address") or []:
        code = address.get("postalCode")
        if isinstance(code, str) and code.strip():
            return code.strip()
    return None


HANDLERS: list[HandlerSpec] = [handlers.spec]


def _raised_by(response: Mapping[str, Any]) -> str:
    """Who the provider's answer goes back to: the Practitioner who administered the instrument
    (QuestionnaireResponse.author), else carecoord, and the clinical loop then relays it to the
    patient's care manager."""
    author = (response.get("author") or {}).get("reference")
    if isinstance(author, str) and author.startswith("Practitioner/"):
        return author
    return RAISED_BY
