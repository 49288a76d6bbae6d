"""Screenings and check-ins as the care record shows them: screens done per instrument, positives
and what followed each positive. Read from the FHIR server, never from the simulator:

- screens done: this run's QuestionnaireResponses, the instrument named by the last segment of
  their `questionnaire` canonical (e.g. http://loinc.org/q/88121-9);
- positives: the Observations the assessments handler wrote `derivedFrom` each response
  (docs/assessments.md): Hunger Vital Sign 88124-3 = LA19952-3 "At risk" (or interpretation POS);
  PHQ-9 total 44261-6 >= 10 or item 9 (44260-8) answered above LA6568-5 "Not at all"; GAD-7
  total 70274-6 >= 10; the check-in's medication-adherence = not-as-prescribed. A response with no
  Observation derived from it is counted "not scored";
- what followed: for a positive SDOH screen, the SDOHCC Condition whose evidence is the response
  and the referral (ServiceRequest) whose reasonReference is that Condition, with the referral's
  latest status; for a result the provider reviews, the clinical-review Task whose question names
  the response (the handler's question text does: "... (see QuestionnaireResponse/<id>)").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from carecoord.caremodel import terminology as t
from carecoord.demo import screens as sc
from carecoord.demo.fhirdata import Json, code_values, ref, refs

HVS_RISK, AT_RISK = "88124-3", "LA19952-3"
PHQ9_TOTAL, GAD7_TOTAL = "44261-6", "70274-6"
POS = "POS"  # v3-ObservationInterpretation

# A referral's latest status (summary.compute's per-referral status) in a care manager's words.
REFERRAL_WORDS = {
    "draft": "referral waiting for the patient's agreement to be contacted",
    "no consent: manual": "referral waiting for the patient's agreement to be contacted",
    "unmatched: manual": "no organisation found: to refer by hand",
    "active": "referral written, not sent yet",
    "requested": "referred, waiting for the organisation's answer",
    "received": "referred, waiting for the organisation's answer",
    "accepted": "accepted by a community organisation",
    "in-progress": "being helped by a community organisation",
    "completed": "help received (referral completed)",
    "rejected": "turned down by the organisation",
    "cancelled": "referral cancelled",
    "failed": "the organisation could not help",
}
NEED_ONLY = "need recorded, no referral yet"
NOT_REFERRED = "no referral recorded"
NOT_ROUTED = "nothing sent to the provider yet"
NOT_SCORED = "not scored"


@dataclass
class InstrumentScreens:
    instrument: str
    done: int = 0
    positive: int = 0
    not_scored: int = 0
    urgent: int = 0  # PHQ-9: thoughts of self-harm (item 9 above "not at all")
    followed: dict[str, int] = field(default_factory=dict)  # what followed the positives

    @property
    def label(self) -> str:
        return sc.LABELS.get(self.instrument, self.instrument)

    @property
    def positive_label(self) -> str:
        return {
            sc.HVS: "at risk of food insecurity",
            sc.PHQ9: "score 10 or more, or thoughts of self-harm",
            sc.GAD7: "score 10 or more",
            sc.CHECK_IN: "not taking medications as prescribed",
        }.get(self.instrument, "positive")


@dataclass
class ScreeningFigures:
    rows: list[InstrumentScreens] = field(default_factory=list)
    skipped: str | None = None  # why the demo did not simulate them
    source: str = "the scores carecoord recorded for each completed questionnaire"

    @property
    def any(self) -> bool:
        return any(r.done for r in self.rows)


def instrument_of(response: Json) -> str | None:
    """The instrument a QuestionnaireResponse names (its canonical's last segment), if known."""
    canonical = str(response.get("questionnaire") or "").split("|", 1)[0].rstrip("/")
    key = canonical.rsplit("/", 1)[-1]
    return key if key in sc.LABELS else None


def _value_code(obs: Json) -> set[str]:
    return code_values(obs.get("valueCodeableConcept"))


def _score(obs: Json) -> float | None:
    value = (obs.get("valueQuantity") or {}).get("value")
    return float(value) if isinstance(value, int | float) else None


def _interpreted_positive(obs: Json) -> bool:
    return any(POS in code_values(i) for i in obs.get("interpretation") or [])


def positive(instrument: str, observations: Sequence[Json]) -> tuple[bool, bool]:
    """(positive, urgent) of one response from the Observations derived from it."""
    by_code: dict[str, list[Json]] = {}
    for obs in observations:
        for code in code_values(obs.get("code")):
            by_code.setdefault(code, []).append(obs)
    if instrument == sc.HVS:
        risk = by_code.get(HVS_RISK, [])
        return any(AT_RISK in _value_code(o) or _interpreted_positive(o) for o in risk), False
    if instrument in (sc.PHQ9, sc.GAD7):
        total = PHQ9_TOTAL if instrument == sc.PHQ9 else GAD7_TOTAL
        high = any((_score(o) or 0) >= sc.REVIEW_AT for o in by_code.get(total, []))
        item9 = instrument == sc.PHQ9 and any(
            _value_code(o) - {sc.NOT_AT_ALL[1]} for o in by_code.get(sc.PHQ9_ITEM9, [])
        )
        return high or item9, item9
    if instrument == sc.CHECK_IN:
        adherence = by_code.get(sc.ADHERENCE_ITEM, [])
        return any(sc.NOT_AS_PRESCRIBED[1] in _value_code(o) for o in adherence), False
    return False, False


def _evidence(condition: Json) -> list[str]:
    """Condition.evidence references: R4 evidence.detail, R5 evidence (CodeableReference)."""
    out: list[str] = []
    for evidence in condition.get("evidence") or []:
        out += refs(evidence.get("detail"))
        if r := ref(evidence.get("reference")):
            out.append(r)
    return out


def _question_text(task: Json) -> str:
    return " ".join(
        str(i.get("valueString") or "")
        for i in task.get("input") or []
        if t.TASK_INPUT_QUESTION.code in code_values(i.get("type"))
    )


def _names(text: str, reference: str) -> bool:
    return re.search(re.escape(reference) + r"(?![A-Za-z0-9.\-])", text) is not None


def outcomes(
    responses: Iterable[Json],
    observations: Iterable[Json],
    conditions: Iterable[Json],
    service_requests: Iterable[Json],
    tasks: Iterable[Json],
    referral_status: Mapping[str, str],
) -> ScreeningFigures:
    """Screens done, positives and what followed each positive, per instrument (report order).
    `referral_status`: ServiceRequest reference -> the referral's latest status."""
    derived: dict[str, list[Json]] = {}
    for obs in observations:
        for source in refs(obs.get("derivedFrom")):
            derived.setdefault(source, []).append(obs)
    concerns: dict[str, list[str]] = {}  # response -> Conditions with it as evidence
    for condition in conditions:
        for source in _evidence(condition):
            concerns.setdefault(source, []).append(f"Condition/{condition['id']}")
    referrals: dict[str, list[str]] = {}  # Condition -> ServiceRequests for it
    for sr in service_requests:
        for reason in refs(sr.get("reasonReference")):
            referrals.setdefault(reason, []).append(f"ServiceRequest/{sr['id']}")
    questions = [
        (task, _question_text(task))
        for task in tasks
        if t.TASK_CLINICAL_REVIEW.code in code_values(task.get("code")) and not task.get("focus")
    ]  # an escalation points at its question (focus); the question names the response
    rows = {key: InstrumentScreens(key) for key in sc.LABELS}
    followed: dict[str, Counter[str]] = {key: Counter() for key in sc.LABELS}
    for response in responses:
        key = instrument_of(response)
        if key is None:
            continue
        row = rows[key]
        row.done += 1
        reference = f"QuestionnaireResponse/{response['id']}"
        found = derived.get(reference, [])
        if not found:
            row.not_scored += 1
            continue
        is_positive, urgent = positive(key, found)
        if not is_positive:
            continue
        row.positive += 1
        row.urgent += urgent
        if key == sc.HVS:
            followed[key][_referral(reference, concerns, referrals, referral_status)] += 1
        else:
            asked = [task for task, text in questions if _names(text, reference)]
            followed[key][_question(asked)] += 1
    for key, row in rows.items():
        row.followed = dict(followed[key].most_common())
    return ScreeningFigures([rows[key] for key in sc.LABELS])


def _referral(
    response: str,
    concerns: Mapping[str, list[str]],
    referrals: Mapping[str, list[str]],
    referral_status: Mapping[str, str],
) -> str:
    conditions = concerns.get(response, [])
    srs = [sr for c in conditions for sr in referrals.get(c, [])]
    if srs:
        status = referral_status.get(srs[-1], "active")
        return REFERRAL_WORDS.get(status, f"referral {status}")
    return NEED_ONLY if conditions else NOT_REFERRED


def _question(tasks: Sequence[Json]) -> str:
    if not tasks:
        return NOT_ROUTED
    task = tasks[0]
    kind = "urgent question" if task.get("priority") == "stat" else "question"
    state = "answered" if task.get("status") == "completed" else "waiting for the answer"
    return f"{kind} to the provider: {state}"
