"""Score a QuestionnaireResponse (FHIR R4 JSON) as its instrument defines.

Items are matched by linkId, or by an item `code`, equal to the item's code; LHC-Forms writes
linkIds as "/<LOINC code>", so one leading "/" is ignored. Items may be nested in groups.
Answers must be codings from the item's answer list (by code; by system too when the response
names one): anything else is a MalformedAssessment naming the item. Items carecoord does not
know are ignored, as are answers to the scores it computes itself (the totals).

Cut-offs (docs/assessments.md has the tables and sources):
- PHQ-9 total 0-27 (44261-6): 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe,
  20-27 severe (Kroenke, Spitzer, Williams, J Gen Intern Med 2001;16:606-13; the same bands in
  LOINC's 44261-6 help text). A total only when all nine items are answered.
- GAD-7 total 0-21 (70274-6): 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe (Spitzer et
  al., Arch Intern Med 2006;166:1092-7).
- Hunger Vital Sign: at risk (88124-3 LA19952-3) when either question is answered "often true"
  (LA28397-0) or "sometimes true" (LA6729-3); the SDOHCC Questionnaire's riskStatus variable
  (SDOHCC-QuestionnaireHungerVitalSign.fsh).
- AHC HRSN core: the answers the CMS tool underlines are positive (living situation LA31994-9 /
  LA31995-6, any housing problem but "none of the above", food often/sometimes true,
  transportation yes, utilities yes / already shut off); safety (HITS, items 1-5 each) positive
  at a total of 11 or more, computed only when all four safety items are answered (CMS AHC HRSN
  screening tool, https://www.cms.gov/priorities/innovation/files/worksheets/ahcm-screeningtool.pdf).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carecoord.caremodel.instruments.definitions import (
    AHC_HRSN,
    CHECK_IN,
    GAD7,
    HVS,
    PHQ9,
    AnswerOption,
    Instrument,
    Item,
    recognise,
)
from carecoord.caremodel.terminology import LOINC
from carecoord.errors import MalformedAssessment

PHQ9_TOTAL = "44261-6"
PHQ9_ITEM9 = "44260-8"
GAD7_TOTAL = "70274-6"
HVS_RISK = "88124-3"
HVS_AT_RISK = AnswerOption(LOINC, "LA19952-3", "At risk", None)
HVS_NO_RISK = AnswerOption(LOINC, "LA19983-8", "No risk", None)
HITS_TOTAL = "95614-4"
HITS_ITEMS = ("95618-5", "95617-7", "95616-9", "95615-1")
HITS_POSITIVE_AT = 11
MEDICATION_ADHERENCE = "medication-adherence"
NOT_AS_PRESCRIBED = "not-as-prescribed"

_FOOD_POSITIVE = frozenset({"LA28397-0", "LA6729-3"})  # often true, sometimes true
# pests, mold, lead paint or pipes, lack of heat, oven or stove, smoke detectors, water leaks
_HOUSING_PROBLEMS = (
    "LA31996-4", "LA28580-1", "LA31997-2", "LA31998-0", "LA31999-8", "LA32000-4", "LA32001-2",
)  # fmt: skip
# AHC HRSN: item -> {positive answer: SDOHCC category of the need it may indicate}
_AHC_POSITIVE: dict[str, dict[str, str]] = {
    "71802-3": {"LA31994-9": "housing-instability", "LA31995-6": "homelessness"},
    "96778-6": dict.fromkeys(_HOUSING_PROBLEMS, "inadequate-housing"),
    "88122-7": dict.fromkeys(_FOOD_POSITIVE, "food-insecurity"),
    "88123-5": dict.fromkeys(_FOOD_POSITIVE, "food-insecurity"),
    "93030-5": {"LA33-6": "transportation-insecurity"},
    "96779-4": {"LA33-6": "utility-insecurity", "LA32002-0": "utility-insecurity"},
}
# The SDOHCC category of each SDOH item, whatever the answer (Gravity's guidance:
# HL7/fhir-sdoh-clinicalcare input/pagecontent/assessment_instrument_support.md).
SDOH_ITEM_CATEGORIES: dict[str, tuple[str, ...]] = {
    "71802-3": ("homelessness", "housing-instability"),
    "96778-6": ("inadequate-housing",),
    "88122-7": ("food-insecurity",),
    "88123-5": ("food-insecurity",),
    "88124-3": ("food-insecurity",),
    "93030-5": ("transportation-insecurity",),
    "96779-4": ("utility-insecurity",),
}

_PHQ9_BANDS = ((20, "severe"), (15, "moderately severe"), (10, "moderate"), (5, "mild"))
_GAD7_BANDS = ((15, "severe"), (10, "moderate"), (5, "mild"))


def severity(instrument: str, total: int) -> str:
    """The severity band of a PHQ-9 or GAD-7 total."""
    bands = _PHQ9_BANDS if instrument == PHQ9 else _GAD7_BANDS
    return next((name for low, name in bands if total >= low), "minimal")


@dataclass(frozen=True)
class Finding:
    """One result, written as one Observation: an item's answer, or a score carecoord
    computed (`value` an int, `band` its severity)."""

    code: str
    system: str
    display: str
    answer: AnswerOption | None = None
    value: int | None = None
    band: str | None = None
    positive: bool = False  # a possible need or risk (Observation.interpretation POS)
    categories: tuple[str, ...] = ()  # SDOHCC categories


@dataclass(frozen=True)
class Assessment:
    """A scored QuestionnaireResponse."""

    instrument: Instrument
    answers: Mapping[str, tuple[AnswerOption, ...]]  # item code -> its answers
    findings: tuple[Finding, ...]
    total: int | None = None  # PHQ-9 / GAD-7, when complete
    band: str | None = None
    positive: bool | None = None  # HVS / AHC HRSN: a possible need (None: nothing answered)
    needs: tuple[str, ...] = ()  # SDOHCC categories positive, in item order
    safety_total: int | None = None  # AHC HRSN HITS, when all four are answered
    flags: frozenset[str] = field(default_factory=frozenset)

    def item_score(self, code: str) -> int | None:
        answers = self.answers.get(code, ())
        return answers[0].score if answers else None

    def answered(self, code: str, answer: str) -> bool:
        return any(a.code == answer for a in self.answers.get(code, ()))


def score_response(
    response: Mapping[str, Any], instrument: Instrument | None = None
) -> Assessment | None:
    """Score `response` (a QuestionnaireResponse dict) as `instrument`, default the one its
    `questionnaire` canonical names; None when carecoord knows no such instrument.

    Raises MalformedAssessment (naming the item) for an answer outside an item's answer list or
    several answers to a single-answer item."""
    instrument = instrument or recognise(_str(response.get("questionnaire")))
    if instrument is None:
        return None
    answers = _answers(response, instrument)
    findings = [
        _answer_finding(instrument, code, a) for code, opts in answers.items() for a in opts
    ]
    scored = {
        PHQ9: lambda: _summed(instrument, answers, PHQ9_TOTAL),
        GAD7: lambda: _summed(instrument, answers, GAD7_TOTAL),
        HVS: lambda: _hvs(instrument, answers),
        AHC_HRSN: lambda: _ahc(instrument, answers),
        CHECK_IN: lambda: _check_in(instrument, answers),
    }[instrument.key]()
    return Assessment(
        instrument=instrument,
        answers=answers,
        findings=(*findings, *scored.pop("findings", ())),
        **scored,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _walk(items: Any) -> Iterator[Mapping[str, Any]]:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, Mapping):
            yield item
            yield from _walk(item.get("item"))
            for answer in item.get("answer") or []:
                if isinstance(answer, Mapping):
                    yield from _walk(answer.get("item"))


def _item_of(instrument: Instrument, raw: Mapping[str, Any]) -> Item | None:
    link = _str(raw.get("linkId")) or ""
    found = instrument.item(link.removeprefix("/"))
    if found is not None:
        return found
    for coding in raw.get("code") or []:  # not in R4's QuestionnaireResponse, but some send it
        code = coding.get("code") if isinstance(coding, Mapping) else None
        if isinstance(code, str) and (found := instrument.item(code)) is not None:
            return found
    return None


def _answers(
    response: Mapping[str, Any], instrument: Instrument
) -> dict[str, tuple[AnswerOption, ...]]:
    out: dict[str, tuple[AnswerOption, ...]] = {}
    for raw in _walk(response.get("item")):
        item = _item_of(instrument, raw)
        if item is None or item.type != "choice":
            continue  # unknown items, and the scores carecoord computes itself
        given = [a for a in raw.get("answer") or [] if isinstance(a, Mapping)]
        if not given:
            continue
        if (len(given) > 1 or item.code in out) and not item.repeats:
            raise MalformedAssessment(
                f"{instrument.key} item {item.code}: more than one answer", item=item.code
            )
        out[item.code] = (*out.get(item.code, ()), *(_option(instrument, item, a) for a in given))
    return out


def _option(instrument: Instrument, item: Item, answer: Mapping[str, Any]) -> AnswerOption:
    coding = answer.get("valueCoding")
    if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
        option = item.answer(_str(coding.get("system")), coding["code"])
        if option is not None:
            return option
    # Never the answer itself in the message: it may be free text.
    raise MalformedAssessment(
        f"{instrument.key} item {item.code}: answer is not in the item's answer list",
        item=item.code,
    )


def _answer_finding(instrument: Instrument, code: str, answer: AnswerOption) -> Finding:
    item = instrument.item(code)
    assert item is not None
    positive = answer.code in _AHC_POSITIVE.get(code, {}) if instrument.key == AHC_HRSN else False
    if instrument.key == HVS:
        positive = answer.code in _FOOD_POSITIVE
    if instrument.key == CHECK_IN:
        positive = answer.code == NOT_AS_PRESCRIBED
    return Finding(
        code=code,
        system=item.system,
        display=item.text,
        answer=answer,
        positive=positive,
        categories=SDOH_ITEM_CATEGORIES.get(code, ()) if instrument.key in (HVS, AHC_HRSN) else (),
    )


def _summed(
    instrument: Instrument, answers: Mapping[str, Sequence[AnswerOption]], total_code: str
) -> dict[str, Any]:
    scored = [i for i in instrument.items if i.type == "choice" and i.answers[0].score is not None]
    if any(i.code not in answers for i in scored):
        return {}  # incomplete: no total (item rules, e.g. PHQ-9 item 9, still apply)
    total = sum(answers[i.code][0].score or 0 for i in scored)
    band = severity(instrument.key, total)
    item = instrument.item(total_code)
    assert item is not None
    finding = Finding(total_code, item.system, item.text, value=total, band=band)
    return {"total": total, "band": band, "findings": (finding,)}


def _hvs(instrument: Instrument, answers: Mapping[str, Sequence[AnswerOption]]) -> dict[str, Any]:
    if not answers:
        return {}
    positive = any(a.code in _FOOD_POSITIVE for opts in answers.values() for a in opts)
    item = instrument.item(HVS_RISK)
    assert item is not None
    finding = Finding(
        HVS_RISK,
        item.system,
        item.text,
        answer=HVS_AT_RISK if positive else HVS_NO_RISK,
        positive=positive,
        categories=SDOH_ITEM_CATEGORIES[HVS_RISK],
    )
    needs = ("food-insecurity",) if positive else ()
    return {"positive": positive, "needs": needs, "findings": (finding,)}


def _ahc(instrument: Instrument, answers: Mapping[str, Sequence[AnswerOption]]) -> dict[str, Any]:
    needs: list[str] = []
    for code, opts in answers.items():
        for answer in opts:
            need = _AHC_POSITIVE.get(code, {}).get(answer.code)
            if need is not None and need not in needs:
                needs.append(need)
    out: dict[str, Any] = {"needs": tuple(needs)}
    flags: set[str] = set()
    if all(code in answers for code in HITS_ITEMS):
        total = sum(answers[code][0].score or 0 for code in HITS_ITEMS)
        item = instrument.item(HITS_TOTAL)
        assert item is not None
        unsafe = total >= HITS_POSITIVE_AT
        out["safety_total"] = total
        out["findings"] = (
            Finding(HITS_TOTAL, item.system, item.text, value=total, positive=unsafe),
        )
        if unsafe:
            flags.add("unsafe")
    out["positive"] = bool(needs or flags) if answers else None
    out["flags"] = frozenset(flags)
    return out


def _check_in(
    instrument: Instrument, answers: Mapping[str, Sequence[AnswerOption]]
) -> dict[str, Any]:
    adherence = answers.get(MEDICATION_ADHERENCE, ())
    missed = any(a.code == NOT_AS_PRESCRIBED for a in adherence)
    return {"flags": frozenset({"medication-not-as-prescribed"} if missed else set())}
