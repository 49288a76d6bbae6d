"""Which standardized assessments a program's patient is due for, and when (pure).

    due = due_assessments([Enrolment("BHI", date(2026, 3, 2))], completed, date(2026, 3, 4))

Each program has a schedule: instruments (LOINC panel codes) due at enrolment and then every N
days (0: once, at enrolment). An instrument is due at the enrolment's start until a completed
response is authored on or after it, then `every_days` after the latest such response; it is
overdue once `grace_days` have passed after that day without one. A response counts for every
program that schedules its instrument, whoever asked for it.

The default schedule and why (override it with CARECOORD_ASSESSMENT_SCHEDULE, docs/worklist.md):

- BHI: PHQ-9 (LOINC 44249-1) and GAD-7 (69737-5) at enrolment, then every 30 days. CMS's BHI
  services require "initial assessment ... including administration of applicable validated
  rating scale(s)" and "systematic assessment and monitoring, using applicable validated clinical
  rating scales" (CPT 99484; CoCM 99492-99494 also track outcomes with validated rating scales);
  CMS MLN booklet "Behavioral Health Integration Services", MLN909432, February 2022. BHI bills
  per calendar month, so the scale is repeated about monthly.
- CCM, PCM and APCM: the AHC Health-Related Social Needs screening tool (LOINC 96777-8) at
  enrolment, then every 365 days. Chronic and principal care management's care plan is based on
  an assessment of "medical, functional, and psychosocial needs" (CMS MLN909188, Chronic Care
  Management Services, 2024); CMS pays a standardized, evidence-based SDOH risk assessment
  (HCPCS G0136, CY 2024 PFS final rule, 88 FR 78818) no more often than every 6 months, and
  a yearly re-screen is the usual practice. The AHC HRSN's food items are the Hunger Vital
  Sign's, so the Hunger Vital Sign (LOINC 88121-9) is not scheduled by default as well.
- RPM and TCM: none (RPM measures physiologic data; TCM is a 30-day episode).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from carecoord.caremodel.instruments.definitions import AHC_HRSN, GAD7, HVS, PHQ9
from carecoord.core.vocabulary import PROGRAMS
from carecoord.errors import ConfigError, describe_validation
from carecoord.handlers.care.model import as_date, as_instant, reference_str

# The instruments carecoord ships (LOINC panel codes, caremodel/instruments cites their sources).
HUNGER_VITAL_SIGN = HVS
INSTRUMENTS: Mapping[str, str] = {
    PHQ9: "PHQ-9",
    GAD7: "GAD-7",
    HUNGER_VITAL_SIGN: "Hunger Vital Sign",
    AHC_HRSN: "AHC HRSN screening",
}
LOINC_CODE = re.compile(r"\d{1,8}-\d")

DEFAULT_SCHEDULE: Mapping[str, Mapping[str, int]] = {
    "BHI": {PHQ9: 30, GAD7: 30},
    "CCM": {AHC_HRSN: 365},
    "PCM": {AHC_HRSN: 365},
    "APCM": {AHC_HRSN: 365},
}
DEFAULT_GRACE_DAYS = 7


def instrument_name(code: str) -> str:
    return INSTRUMENTS.get(code, f"LOINC {code}")


class AssessmentSchedule(BaseModel):
    """Per program, instrument (LOINC panel code) -> days between administrations (0: once, at
    enrolment). A program named here replaces its default entirely ({} schedules nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    programs: dict[str, dict[str, int]] = Field(default_factory=dict)
    grace_days: int = Field(DEFAULT_GRACE_DAYS, ge=0)

    @field_validator("programs")
    @classmethod
    def _known(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for program, instruments in value.items():
            if program not in PROGRAMS:
                raise ValueError(f"unknown program {program!r}: use one of {', '.join(PROGRAMS)}")
            for code, days in instruments.items():
                if not LOINC_CODE.fullmatch(code):
                    raise ValueError(
                        f"{program}: {code!r} is not a LOINC panel code: use e.g. {PHQ9}"
                    )
                if days < 0:
                    raise ValueError(f"{program}: {code} days must be 0 (once) or more")
        return value

    @classmethod
    def of(
        cls, overrides: Mapping[str, Any] | None = None, grace_days: int = DEFAULT_GRACE_DAYS
    ) -> Self:
        """The default schedule with `overrides` (program -> {code: days}) replacing programs;
        ConfigError naming the problem and its fix."""
        try:
            merged = {p: dict(i) for p, i in DEFAULT_SCHEDULE.items()}
            checked = cls(programs=dict(overrides or {}), grace_days=grace_days)
            merged.update(checked.programs)
            return cls(programs=merged, grace_days=grace_days)
        except ValidationError as exc:
            raise ConfigError(
                f"invalid assessment schedule: {describe_validation(exc)}: set "
                'CARECOORD_ASSESSMENT_SCHEDULE to JSON like {"BHI": {"44249-1": 30}} '
                "(program -> LOINC panel code -> days between, 0 for once at enrolment)"
            ) from exc

    def for_program(self, program: str) -> Mapping[str, int]:
        return self.programs.get(program, {})


@dataclass(frozen=True)
class Enrolment:
    program: str
    start: date
    end: date | None = None  # the last day enrolled, if it ends


@dataclass(frozen=True)
class Completed:
    """A completed (or amended) QuestionnaireResponse: its instrument and day."""

    instrument: str  # LOINC panel code
    authored: date
    reference: str | None = None  # "QuestionnaireResponse/<id>"


@dataclass(frozen=True)
class DueAssessment:
    instrument: str
    name: str
    programs: tuple[str, ...]
    due: date
    overdue: bool
    last: date | None  # the latest counted response, None when never done in the enrolment

    @property
    def kind(self) -> str:
        return "assessment-overdue" if self.overdue else "assessment-due"

    @property
    def detail(self) -> str:
        since = f"last {self.last.isoformat()}" if self.last else "due at enrolment"
        state = "overdue" if self.overdue else "due"
        return f"{self.name} {state} since {self.due.isoformat()} ({since})"

    def to_json(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "name": self.name,
            "programs": list(self.programs),
            "due": self.due.isoformat(),
            "overdue": self.overdue,
            "last": self.last.isoformat() if self.last else None,
        }


def due_assessments(
    enrolments: Iterable[Enrolment],
    completed: Sequence[Completed],
    day: date,
    schedule: AssessmentSchedule | None = None,
) -> list[DueAssessment]:
    """The assessments due on `day` (due date reached), one per instrument (the earliest due
    among the programs asking for it), ordered by due date then instrument. Responses authored
    after `day` are not known yet on that day's list."""
    schedule = schedule or AssessmentSchedule.of()
    found: dict[str, DueAssessment] = {}
    for enrolment in enrolments:
        if enrolment.start > day or (enrolment.end is not None and enrolment.end < day):
            continue
        for code, every in schedule.for_program(enrolment.program).items():
            dates = [
                c.authored
                for c in completed
                if c.instrument == code and enrolment.start <= c.authored <= day
            ]
            last = max(dates) if dates else None
            if last is None:
                due = enrolment.start
            elif every == 0:
                continue  # once, and done
            else:
                due = last + timedelta(days=every)
            if due > day:
                continue
            overdue = day > due + timedelta(days=schedule.grace_days)
            item = DueAssessment(
                code, instrument_name(code), (enrolment.program,), due, overdue, last
            )
            before = found.get(code)
            if before is not None:
                programs = tuple(sorted({*before.programs, enrolment.program}))
                first = item if item.due < before.due else before
                item = DueAssessment(
                    code, first.name, programs, first.due, first.overdue, first.last
                )
            found[code] = item
    return sorted(found.values(), key=lambda d: (d.due, d.instrument))


# A canonical naming a panel: `<base>/Questionnaire/44249-1`, `http://loinc.org/q/44249-1`,
# either with an optional `|version` (FHIR R4 canonical, https://hl7.org/fhir/R4/datatypes.html).
_CANONICAL_CODE = re.compile(r"/(\d{1,8}-\d)(?:\|[^|/]*)?$")
COUNTED_STATUSES = ("completed", "amended")  # QuestionnaireResponse.status


def instrument_of(canonical: str | None) -> str | None:
    """The LOINC panel code a Questionnaire canonical ends in, else None."""
    found = _CANONICAL_CODE.search(canonical.strip()) if canonical else None
    return found.group(1) if found else None


def completed_of(found: Sequence[Any], patient_id: str) -> list[Completed]:
    """The patient's completed or amended QuestionnaireResponses among search results
    (re-filtered here: a server may ignore a parameter), dated by `authored` (UTC day)."""
    out: list[Completed] = []
    for qr in found:
        if qr.get_resource_type() != "QuestionnaireResponse" or qr.status not in COUNTED_STATUSES:
            continue
        if reference_str(qr.subject) != f"Patient/{patient_id}":
            continue
        code = instrument_of(qr.questionnaire)
        day = _day_of(qr.authored)
        if code is None or day is None:
            continue
        out.append(Completed(code, day, f"QuestionnaireResponse/{qr.id}"))
    return out


def _day_of(value: Any) -> date | None:
    """A dateTime's UTC day; a bare date is its own day (as_instant would make it the next)."""
    if isinstance(value, datetime) or (isinstance(value, str) and "T" in value):
        instant = as_instant(value)
        return instant.astimezone(UTC).date() if instant else None
    return as_date(value)
