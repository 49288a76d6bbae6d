"""The demo's screenings and check-ins: who is asked what, and what they answer.

Only the wire contract of `carecoord.assessment.completed` is used here (docs/assessments.md): a
QuestionnaireResponse on the FHIR server (status completed, subject the patient, `questionnaire`
a canonical ending in the LOINC panel code, items with linkId = the LOINC item code, answers as
valueCoding), then the event `{"questionnaire_response": "QuestionnaireResponse/<id>"}`. Nothing
here imports the assessments handler: the demo runs (without screenings) where it is not loaded.

When: on the call that first reaches the patient this month (a new patient's enrolment call), the
practice's screening mix (`SCREENING_MIX`): the Hunger Vital Sign for most patients, the PHQ-9 for
every BHI patient (BHI needs a validated rating scale, CMS) and a quarter of the others, the GAD-7
for more than half the BHI patients. On the later care-management contacts, a medication check-in
now and then (`CHECK_IN_SHARE`). Answers are seeded per patient and instrument, at the
positivity rates of `POSITIVE` (sources beside it).

Codes (LOINC; the same as the assessments handler's Questionnaires, `caremodel/instruments`):
PHQ-9 panel 44249-1, items and answers as in NLM LHC-Forms `test/data/R4/phq9.json` (answer list
LL358-3: LA6568-5 Not at all 0, LA6569-3 Several days 1, LA6570-1 More than half the days 2,
LA6571-9 Nearly every day 3); GAD-7 69737-5 (item 68509-9 scores 2 with LA18938-3 "More days than
not", as LOINC's 69737-5 form lists it); Hunger Vital Sign 88121-9, items 88122-7 and 88123-5
(HL7 Gravity SDOHCC-QuestionnaireHungerVitalSign.fsh: LA28397-0 Often true, LA6729-3 Sometimes
true, LA28398-8 Never true; positive when either item is often or sometimes true). The check-in
has no LOINC item for "taking medications as prescribed": carecoord's code system, as the
assessments handler's check-in Questionnaire.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LOINC = "http://loinc.org"
ASSESSMENT_COMPLETED = "carecoord.assessment.completed"
# LHC-Forms' canonical for a LOINC form; the handler recognises the instrument by its last segment.
LOINC_QUESTIONNAIRE = "http://loinc.org/q/"
CHECK_IN_CANONICAL = "https://carecoord.dev/fhir/Questionnaire/carecoord-check-in"
CHECK_IN_SYSTEM = "https://carecoord.dev/fhir/CodeSystem/check-in"

PHQ9, GAD7, HVS, CHECK_IN = "44249-1", "69737-5", "88121-9", "carecoord-check-in"
# The instruments in a care manager's words, in report order.
LABELS = {
    HVS: "food insecurity (Hunger Vital Sign)",
    PHQ9: "depression (PHQ-9)",
    GAD7: "anxiety (GAD-7)",
    CHECK_IN: "medication check-in",
}
SLUGS = {HVS: "hvs", PHQ9: "phq9", GAD7: "gad7", CHECK_IN: "checkin"}

NOT_AT_ALL = (LOINC, "LA6568-5", "Not at all")
FREQUENCY = (
    NOT_AT_ALL,
    (LOINC, "LA6569-3", "Several days"),
    (LOINC, "LA6570-1", "More than half the days"),
    (LOINC, "LA6571-9", "Nearly every day"),
)
PHQ9_ITEMS = (
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
)  # fmt: skip
PHQ9_ITEM9 = "44260-8"  # thoughts that you would be better off dead, or of hurting yourself
GAD7_ITEMS = ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")
GAD7_MORE_DAYS_THAN_NOT = (LOINC, "LA18938-3", "More days than not")  # 68509-9's answer for 2
HVS_ITEMS = ("88122-7", "88123-5")
OFTEN = (LOINC, "LA28397-0", "Often true")
SOMETIMES = (LOINC, "LA6729-3", "Sometimes true")
NEVER = (LOINC, "LA28398-8", "Never true")
ADHERENCE_ITEM = "medication-adherence"
AS_PRESCRIBED = (CHECK_IN_SYSTEM, "as-prescribed", "Taking as prescribed")
NOT_AS_PRESCRIBED = (CHECK_IN_SYSTEM, "not-as-prescribed", "Not taking as prescribed")
REVIEW_AT = 10  # PHQ-9 / GAD-7 total at or above: "moderate" (Kroenke 2001; Spitzer 2006)

# Share of patients screened on the call that first reaches them this month: program -> share
# ("*": every other program).
SCREENING_MIX: dict[str, dict[str, float]] = {
    HVS: {"*": 0.85},
    PHQ9: {"BHI": 1.0, "*": 0.25},
    GAD7: {"BHI": 0.6, "*": 0.05},
}
# Share of screens that are positive (program -> share, as above):
# - Hunger Vital Sign: 10.1 % (UNT HSC clinics, 2019) to 41.4 % (a New Haven FQHC: Okafor et al.,
#   Prev Med Rep 2020;20:101191) of patients screen positive; 12.7 % of US households were food
#   insecure in 2015 (USDA). A care-management panel (chronic illness, Medicare/Medicaid): 18 %.
# - PHQ-9 total >= 10: 14.3 % of 14,760 primary-care adults had major depression (Mitchell et al.,
#   Br J Gen Pract 2016, meta-analysis of 40 studies); BHI patients are enrolled for a behavioural
#   health condition: 45 % (our assumption).
# - GAD-7 total >= 10: 19.5 % of 965 primary-care patients had an anxiety disorder, 7.6 % GAD
#   (Kroenke et al., Ann Intern Med 2007;146:317); 10 %, BHI 40 % (our assumption).
POSITIVE: dict[str, dict[str, float]] = {
    HVS: {"*": 0.18},
    PHQ9: {"BHI": 0.45, "*": 0.14},
    GAD7: {"BHI": 0.40, "*": 0.10},
}
# PHQ-9 item 9 above "not at all": 3.5 % of PHQ-9 respondents (NHANES 2005-2010; PMC5942185),
# far more often with a high total: P(item 9 > 0 | total >= 10) and P(... | total < 10).
ITEM9_IF_POSITIVE, ITEM9_IF_NEGATIVE = 0.15, 0.015
# Check-ins: on a later care-management contact, the share that includes the medication check-in,
# and of those the share "not taking as prescribed" (self-report runs well below the ~50 %
# non-adherence the WHO reports for long-term therapies, Adherence to long-term therapies 2003).
CHECK_IN_SHARE, NON_ADHERENT = 0.5, 0.2

Answer = tuple[str, str, str]  # (system, code, display)


def share(table: dict[str, float], program: str) -> float:
    return table.get(program, table.get("*", 0.0))


@dataclass(frozen=True)
class Screening:
    """One completed questionnaire: what the demo writes to the FHIR server, and its own reading
    of it (the report reads the handler's Observations, not this)."""

    id: str  # the QuestionnaireResponse id
    instrument: str
    patient: str  # patient id
    care_manager: str
    day: int
    authored: datetime
    answers: tuple[tuple[str, Answer], ...]  # (linkId = LOINC item code, answer)
    positive: bool  # the demo's own scoring (the handler's default rules)
    urgent: bool = False  # PHQ-9 item 9 above 0

    @property
    def reference(self) -> str:
        return f"QuestionnaireResponse/{self.id}"

    @property
    def canonical(self) -> str:
        return (
            CHECK_IN_CANONICAL
            if self.instrument == CHECK_IN
            else LOINC_QUESTIONNAIRE + (self.instrument)
        )

    def resource(self) -> dict[str, Any]:
        """The QuestionnaireResponse (FHIR R4): synthetic ids, codes only, no free text."""
        return {
            "resourceType": "QuestionnaireResponse",
            "id": self.id,
            "questionnaire": self.canonical,
            "status": "completed",
            "subject": {"reference": f"Patient/{self.patient}"},
            "authored": self.authored.isoformat(),
            "author": {"reference": self.care_manager},  # asked on the phone by the care manager
            "item": [
                {"linkId": link,
                 "answer": [{"valueCoding": {"system": a[0], "code": a[1], "display": a[2]}}]}
                for link, a in self.answers
            ],
        }  # fmt: skip


def _total_items(rng: random.Random, items: int, total: int) -> list[int]:
    """Item scores 0-3 over `items` items adding up to `total`."""
    scores = [0] * items
    for _ in range(min(total, 3 * items)):
        open_ = [i for i, s in enumerate(scores) if s < 3]
        scores[rng.choice(open_)] += 1
    return scores


def _total(rng: random.Random, positive: bool, top: int) -> int:
    """A total at or above REVIEW_AT when positive (rarely near the top), else a low one."""
    if positive:
        return min(top, REVIEW_AT + min(rng.randint(0, 9), rng.randint(0, 12)))
    return min(rng.randint(0, REVIEW_AT - 1), rng.randint(0, REVIEW_AT - 1))


def phq9(rng: random.Random, program: str) -> tuple[tuple[tuple[str, Answer], ...], bool, bool]:
    """(answers, positive, urgent): positive = total >= 10 or item 9 above 0."""
    high = rng.random() < share(POSITIVE[PHQ9], program)
    item9 = rng.random() < (ITEM9_IF_POSITIVE if high else ITEM9_IF_NEGATIVE)
    total = _total(rng, high, 27)
    nine = rng.randint(1, 2) if item9 else 0
    rest = _total_items(rng, 8, max(0, total - nine))
    answers = tuple(zip(PHQ9_ITEMS, (FREQUENCY[s] for s in (*rest, nine)), strict=True))
    return answers, sum(rest) + nine >= REVIEW_AT or item9, item9


def gad7(rng: random.Random, program: str) -> tuple[tuple[tuple[str, Answer], ...], bool]:
    high = rng.random() < share(POSITIVE[GAD7], program)
    scores = _total_items(rng, 7, _total(rng, high, 21))
    answers = tuple(
        (item, GAD7_MORE_DAYS_THAN_NOT if item == "68509-9" and s == 2 else FREQUENCY[s])
        for item, s in zip(GAD7_ITEMS, scores, strict=True)
    )
    return answers, sum(scores) >= REVIEW_AT


def hunger_vital_sign(
    rng: random.Random, program: str
) -> tuple[tuple[tuple[str, Answer], ...], bool]:
    if rng.random() >= share(POSITIVE[HVS], program):
        return ((HVS_ITEMS[0], NEVER), (HVS_ITEMS[1], NEVER)), False
    first = OFTEN if rng.random() < 0.35 else SOMETIMES
    second = rng.choice((OFTEN, SOMETIMES, SOMETIMES, NEVER))
    if rng.random() < 0.5:  # either item may carry the need
        first, second = second, first
    return ((HVS_ITEMS[0], first), (HVS_ITEMS[1], second)), True


def check_in(rng: random.Random) -> tuple[tuple[tuple[str, Answer], ...], bool]:
    missed = rng.random() < NON_ADHERENT
    return ((ADHERENCE_ITEM, NOT_AS_PRESCRIBED if missed else AS_PRESCRIBED),), missed
