"""The worklist's check-in part: each listed patient's due assessments and talking points.

Two more searches per patient ride in the worklist's existing batch (no extra round trip): the
patient's Conditions, and their completed or amended QuestionnaireResponses. Assessments are
due per the schedule of each active (consented) enrolment the care manager's list shows
(carecoord.handlers.programs.assessment_schedule); talking points match the Conditions those
plans address (carecoord.caremodel.talking_points; docs/talking-points.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from carecoord.caremodel.talking_points import (
    Catalog,
    MatchedTopic,
    load_catalog,
    shipped_catalog,
)
from carecoord.fhir.batch_reads import Search
from carecoord.handlers.care.enrolment_state import states_of
from carecoord.handlers.care.model import as_date, reference_str
from carecoord.handlers.programs.assessment_schedule import (
    COUNTED_STATUSES,
    DEFAULT_GRACE_DAYS,
    AssessmentSchedule,
    DueAssessment,
    Enrolment,
    completed_of,
    due_assessments,
)

CHECKIN_SEARCHES = 2  # per patient, after the worklist's own
NOT_ADVICE = "conversation starters for the call, not clinical advice"


@dataclass(frozen=True)
class CheckinConfig:
    """The assessment schedule and the talking-point catalog (defaults: the shipped ones)."""

    schedule: AssessmentSchedule = field(default_factory=AssessmentSchedule.of)
    catalog: Catalog = field(default_factory=shipped_catalog)

    @classmethod
    def of(
        cls,
        schedule: Mapping[str, Any] | None = None,
        grace_days: int = DEFAULT_GRACE_DAYS,
        talking_points_file: Path | str | None = None,
    ) -> CheckinConfig:
        """From the settings (CARECOORD_ASSESSMENT_SCHEDULE, _GRACE_DAYS, _TALKING_POINTS_FILE):
        the default schedule with `schedule`'s programs replaced, the shipped catalog with the
        file on top. ConfigError saying how to fix a bad one."""
        return cls(AssessmentSchedule.of(schedule, grace_days), load_catalog(talking_points_file))


@dataclass(frozen=True)
class Checkins:
    assessments: tuple[DueAssessment, ...] = ()
    talking_points: tuple[MatchedTopic, ...] = ()


def checkin_searches(patient_ref: str) -> list[Search]:
    """The patient's Conditions and counted QuestionnaireResponses (no date bound: the latest
    response since enrolment decides, and a patient has a few a year)."""
    counted = ",".join(COUNTED_STATUSES)
    return [
        ("Condition", [("patient", patient_ref)]),
        ("QuestionnaireResponse", [("subject", patient_ref), ("status", counted)]),
    ]


def checkins_of(
    patient_id: str,
    day: date,
    plans: Sequence[Any],
    conditions: Sequence[Any],
    responses: Sequence[Any],
    config: CheckinConfig | None = None,
) -> Checkins:
    """`plans`: the patient's carecoord CarePlans on the care manager's list (active or draft);
    `conditions` and `responses`: what `checkin_searches` found (re-filtered here)."""
    if not plans:
        return Checkins()
    config = config or CheckinConfig()
    enrolments = []
    for state in states_of(plans, []).values():
        plan = state.plan
        start = as_date(plan.period.start) if plan is not None and plan.period else None
        if plan is None or plan.status != "active" or start is None:
            continue  # a pending (draft) enrolment has no consented services yet
        enrolments.append(Enrolment(state.program, start, state.ends))
    due = due_assessments(enrolments, completed_of(responses, patient_id), day, config.schedule)
    addressed = {ref for plan in plans for ref in map(reference_str, plan.addresses or []) if ref}
    theirs = [
        c
        for c in conditions
        if c.get_resource_type() == "Condition" and f"Condition/{c.id}" in addressed
    ]
    return Checkins(tuple(due), config.catalog.matching(theirs))


def talking_points_text(numbered: Sequence[tuple[int, str, Sequence[MatchedTopic]]]) -> list[str]:
    """The text table's talking-point section: per row number and patient, each topic's prompts
    and sources. Empty when no row has any."""
    rows = [(n, patient, topics) for n, patient, topics in numbered if topics]
    if not rows:
        return []
    out = ["", f"Check-in talking points ({NOT_ADVICE})"]
    for n, patient, topics in rows:
        out.append(f"{n}  {patient}")
        for matched in topics:
            out.append(f"   {matched.topic.title}")
            out += [f"   - {prompt.text}" for prompt in matched.topic.prompts]
            urls = dict.fromkeys(p.source.url for p in matched.topic.prompts)
            out += [f"     source: {url}" for url in urls]
    return out
