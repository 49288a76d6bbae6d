"""What a scored assessment calls for, as the events the other care domains take.

carecoord routes, it never recommends: a result that needs clinical judgement becomes a
carecoord.clinical.question to the provider (the clinical loop: a clinical-review Task with a
response deadline and escalation); a positive SDOH screen becomes a
carecoord.sdoh.need-identified per domain (the referrals flow: SDOHCC Condition -> Goal ->
ServiceRequest -> Task, the Gravity IG's screening -> health concern -> referral), which holds
the referral for the care manager unless the patient consented to be contacted.

The question text names the instrument, the rule and the QuestionnaireResponse: no answers, no
free text (the clinical loop keeps a question only in Task.input; it accepts PHI, this needs
none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from carecoord.caremodel import terminology as t
from carecoord.caremodel.instruments import AHC_HRSN, CHECK_IN, GAD7, PHQ9, Assessment
from carecoord.caremodel.instruments.scoring import PHQ9_ITEM9
from carecoord.core.config import HandlerConfig

Urgency = Literal["routine", "urgent"]
RAISED_BY = "carecoord-assessments"


class AssessmentConfig(HandlerConfig):
    """Configuration of the "assessments" handler; defaults are the instruments' published
    cut-offs (docs/assessments.md)."""

    config_name: ClassVar[str] = "assessments"

    # PHQ-9 item 9 (44260-8, thoughts of self-harm) scored above this: an urgent question to
    # the provider, whatever the total. Default 0: any answer but "not at all".
    phq9_item9_urgent_above: int = Field(default=0, ge=0, le=2)
    # PHQ-9 / GAD-7 total at or above this: a routine question for the provider's review
    # (10: "moderate" in both; Kroenke 2001, Spitzer 2006). None: never.
    phq9_review_at: int | None = Field(default=10, ge=1, le=27)
    gad7_review_at: int | None = Field(default=10, ge=1, le=21)
    # The check-in's "not taking as prescribed": a question to the provider.
    medication_question: Urgency | None = "routine"
    # AHC HRSN safety total 11 or more (HITS): a question to the provider (None: none).
    unsafe_question: Urgency | None = "routine"
    # A positive SDOH screen starts a referral (carecoord.sdoh.need-identified) per domain.
    sdoh_referral: bool = True
    # A screening is not consent to be contacted by a community organisation: unless your
    # screening workflow records that consent, the referral is held for the care manager (a
    # draft ServiceRequest and a Task to ask the patient), as the referrals flow does.
    sdoh_consent_to_contact: bool = False


@dataclass(frozen=True)
class Question:
    urgency: Urgency
    reasons: tuple[str, ...]

    def text(self, title: str, response: str) -> str:
        return (
            f"{title}: {'; '.join(self.reasons)} (see {response}). "
            "For the provider's review; carecoord routed it, it gives no clinical advice."
        )


def clinical_question(assessment: Assessment, config: AssessmentConfig) -> Question | None:
    """One question per response (the most urgent of its reasons), or None."""
    urgent: list[str] = []
    routine: list[str] = []
    key = assessment.instrument.key
    if key == PHQ9:
        item9 = assessment.item_score(PHQ9_ITEM9)
        if item9 is not None and item9 > config.phq9_item9_urgent_above:
            urgent.append(f"item 9 ({PHQ9_ITEM9}) scored {item9}")
    review_at = {PHQ9: config.phq9_review_at, GAD7: config.gad7_review_at}.get(key)
    if review_at is not None and assessment.total is not None and assessment.total >= review_at:
        routine.append(f"total {assessment.total} ({assessment.band}), at or above {review_at}")
    if key == CHECK_IN and "medication-not-as-prescribed" in assessment.flags:
        _add(config.medication_question, "medications not taken as prescribed", urgent, routine)
    if key == AHC_HRSN and "unsafe" in assessment.flags:
        total = assessment.safety_total
        _add(config.unsafe_question, f"safety total {total}, 11 or more", urgent, routine)
    if not urgent and not routine:
        return None
    return Question("urgent" if urgent else "routine", (*urgent, *routine))


def _add(urgency: Urgency | None, reason: str, urgent: list[str], routine: list[str]) -> None:
    if urgency == "urgent":
        urgent.append(reason)
    elif urgency == "routine":
        routine.append(reason)


def referral_domains(
    assessment: Assessment, config: AssessmentConfig
) -> tuple[list[str], list[str]]:
    """(the carecoord SDOH domains to refer, the positive needs without one, e.g.
    inadequate-housing)."""
    if not config.sdoh_referral:
        return [], []
    known = [n for n in assessment.needs if n in t.SDOH_DOMAINS]
    return known, [n for n in assessment.needs if n not in t.SDOH_DOMAINS]
