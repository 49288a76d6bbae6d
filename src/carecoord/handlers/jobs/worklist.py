"""The daily call list: a care manager's patients for the day, ranked.

    rows = worklist(fhir, "Practitioner/cm-1", date(2026, 3, 4)).rows

`carecoord worklist --care-manager Practitioner/ID [--date D] [--json]` prints it. Each row is a
patient with why they are on the list (most urgent first), their programs, this month's
outreach attempts and their last contact. Reasons, in rank order:

1. `tcm-overdue`: an open TCM Task (interactive contact, face-to-face, medication
   reconciliation) past its due date;
2. `overdue-question`: a clinical question the care manager raised, past its deadline
   unanswered (carecoord.handlers.clinical.loop.open_clinical_items);
3. `escalation`: an open escalation of the month's unanswered outreach;
4. `tcm-due-today`: an open TCM Task due on the day;
5. `relay-answer` / `schedule-visit`: an answered question to relay, a visit to schedule;
6. `outreach-due`: the month's outreach request still open (the patient not reached yet);
7. `obtain-consent`: the enrolment is pending the patient's consent;
8. `assessment-overdue` / `assessment-due`: a standardized assessment (PHQ-9, GAD-7, AHC
   HRSN, ...) the program's schedule asks for, past its grace days / due
   (carecoord.handlers.programs.assessment_schedule; worklist_checkins.py);
9. `minutes-to-threshold`: minutes of clinical staff time still needed this month for an
   active (consented) program's next billing code (B1-B12 of docs/billing-rules.md, under the
   rules in force that month, e.g. 10 minutes to RPM 99470 in 2026; add-on caps respected);
10. `days-to-threshold`: an active RPM enrolment whose current 30-day period has fewer than 16
   days with device readings so far: the days still needed for 99454 (and for 99445 from 2026),
   by the period's last day (R1-R4 of docs/billing-rules.md).

Each row also carries the patient's due assessments and the check-in talking points matched
to the Conditions their plans address (docs/talking-points.md).

Rows rank by their most urgent reason, then its due date, then the fewest minutes still
needed, then the patient. Patients with nothing to do come last.

Reads are bounded: the month's outreach requests naming the care manager and the care manager's
open Tasks (one batch), the care manager's clinical items, then per patient on the list (batched
where the server declares `batch`) their CarePlans, open Tasks, Communications since the start
of the previous month, ChargeItems of the month, RPM readings of the last 31 days, Conditions
and completed QuestionnaireResponses. Never the whole server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.caremodel import workflow
from carecoord.core.handler import FhirReader
from carecoord.fhir.batch_reads import Search, search_together
from carecoord.handlers.billing import devices
from carecoord.handlers.billing.handler import BillingConfig, charge_entries
from carecoord.handlers.billing.reads import charge_item_search
from carecoord.handlers.billing.rules import BHI, next_code, next_threshold, rules_for
from carecoord.handlers.care.enrolment_state import carecoord_plans
from carecoord.handlers.care.model import (
    OUTREACH_ATTEMPT_ID,
    OUTREACH_ESCALATION_ID,
    OUTREACH_REQUEST_ID,
    Month,
    as_date,
    as_instant,
    identifier_value,
    patient_of,
    reference_str,
)
from carecoord.handlers.care.patient_context import care_team_of, program_of
from carecoord.handlers.care.task_paths import open_tasks_of
from carecoord.handlers.clinical.loop import ClinicalItem, open_clinical_items
from carecoord.handlers.jobs.worklist_checkins import (
    CHECKIN_SEARCHES,
    CheckinConfig,
    Checkins,
    checkin_searches,
    checkins_of,
    talking_points_text,
)

KINDS = (
    "tcm-overdue",
    "overdue-question",
    "escalation",
    "tcm-due-today",
    "relay-answer",
    "schedule-visit",
    "outreach-due",
    "obtain-consent",
    "assessment-overdue",
    "assessment-due",
    "minutes-to-threshold",
    "days-to-threshold",
)
RANK = {kind: i for i, kind in enumerate(KINDS)}
TCM_WORK = (
    t.TASK_TCM_INTERACTIVE_CONTACT,
    t.TASK_TCM_FACE_TO_FACE,
    t.TASK_MEDICATION_RECONCILIATION,
)
WORKLIST_SEARCHES = 5  # per patient, before the check-in ones
PATIENTS_PER_BATCH = 14  # 7 searches each: 98 entries a batch


@dataclass(frozen=True)
class Reason:
    kind: str
    detail: str
    due: date | None = None
    reference: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "detail": self.detail,
            "due": self.due.isoformat() if self.due else None,
            "reference": self.reference,
        }


@dataclass(frozen=True)
class WorklistRow:
    patient: str  # "Patient/<id>"
    programs: tuple[str, ...]
    reasons: tuple[Reason, ...]
    attempts: int  # outreach attempts this month
    last_contact: datetime | None  # the last answered outreach (this or the previous month)
    minutes_needed: int | None = None  # the fewest minutes to any program's next billing code
    days_needed: int | None = None  # RPM: days with readings still needed for 99454 this period
    checkins: Checkins = field(default_factory=Checkins)  # due assessments, talking points

    def to_json(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "programs": list(self.programs),
            "reasons": [r.to_json() for r in self.reasons],
            "attempts": self.attempts,
            "last_contact": self.last_contact.isoformat() if self.last_contact else None,
            "minutes_needed": self.minutes_needed,
            "days_needed": self.days_needed,
            "assessments": [a.to_json() for a in self.checkins.assessments],
            "talking_points": [p.to_json() for p in self.checkins.talking_points],
        }


@dataclass(frozen=True)
class Worklist:
    care_manager: str
    day: date
    rows: tuple[WorklistRow, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "care_manager": self.care_manager,
            "date": self.day.isoformat(),
            "month": Month.of(self.day).label,
            "patients": [row.to_json() for row in self.rows],
        }


def rank(rows: Iterable[WorklistRow]) -> list[WorklistRow]:
    """Most urgent first (see the module docstring); each row's reasons sorted the same way."""

    def reason_key(r: Reason) -> tuple[int, date, str]:
        return RANK.get(r.kind, len(RANK)), r.due or date.max, r.detail

    ordered = [replace(row, reasons=tuple(sorted(row.reasons, key=reason_key))) for row in rows]

    def row_key(row: WorklistRow) -> tuple[int, date, float, str]:
        top = row.reasons[0] if row.reasons else None
        return (
            RANK.get(top.kind, len(RANK)) if top else len(RANK) + 1,
            (top.due if top else None) or date.max,
            row.minutes_needed if row.minutes_needed is not None else float("inf"),
            row.patient,
        )

    return sorted(ordered, key=row_key)


# ---------------------------------------------------------------------------------------------
# Building a patient's row from what was read (pure)


@dataclass
class PatientReads:
    plans: list[Any] = field(default_factory=list)
    tasks: list[Any] = field(default_factory=list)
    communications: list[Any] = field(default_factory=list)
    charge_items: list[Any] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)
    clinical: list[ClinicalItem] = field(default_factory=list)
    readings: list[Any] = field(default_factory=list)  # RPM reading Observations
    conditions: list[Any] = field(default_factory=list)
    responses: list[Any] = field(default_factory=list)  # QuestionnaireResponses


def ladder_of(program: str, config: BillingConfig, day: date | None = None) -> Any | None:
    """The ladder of `program` under the CMS rules in force on `day` (billing/rules.py)."""
    if program == "BHI":
        return BHI
    return config.ladder(program, day)


def patient_row(
    patient_id: str,
    care_manager: str,
    day: date,
    reads: PatientReads,
    config: BillingConfig | None = None,
    checkin_config: CheckinConfig | None = None,
) -> WorklistRow:
    """One patient's row for `day` from their resources (re-filtered here)."""
    config = config or BillingConfig()
    month = Month.of(day)
    patient = f"Patient/{patient_id}"
    reasons: list[Reason] = []

    plans = [
        p
        for p in carecoord_plans(reads.plans, patient_id)
        if p.status in ("active", "draft") and _manager_of(p) in (care_manager, None)
    ]
    programs = sorted({prog for prog in map(_program_of, plans) if prog})

    for task in open_tasks_of(reads.tasks, patient_id, drafts=False):
        due = as_date(task.restriction.period.end) if _has_due(task) else None
        ref = f"Task/{task.id}"
        work = next((w for w in TCM_WORK if t.concept_has(task.code, w)), None)
        if not (reference_str(task.focus) or "").startswith("EpisodeOfCare/"):
            work = None  # e.g. a CCM plan's monthly medication reconciliation: not TCM
        if work is not None and due is not None and due <= day:
            kind = "tcm-overdue" if due < day else "tcm-due-today"
            reasons.append(Reason(kind, f"{work.display} due {due.isoformat()}", due, ref))
        elif identifier_value(task, OUTREACH_ESCALATION_ID):
            reasons.append(Reason("escalation", "unanswered outreach escalated", due, ref))
        elif t.concept_has(task.code, t.TASK_OBTAIN_CONSENT):
            reasons.append(Reason("obtain-consent", "obtain program consent", due, ref))

    for item in reads.clinical:
        if item.patient != patient:
            continue
        when = item.due.astimezone(UTC).date() if item.due else None
        detail = {
            "overdue-question": f"{item.priority} question unanswered",
            "relay-answer": "relay the answer to the patient",
            "schedule-visit": "schedule the visit",
        }.get(item.kind, item.kind)
        reasons.append(Reason(item.kind, detail, when, item.task))

    for cr in reads.requests:
        key = identifier_value(cr, OUTREACH_REQUEST_ID) or ""
        if patient_of(cr) != patient_id or not key.endswith(f":{month.label}"):
            continue
        if reference_str(cr.requester) == care_manager and cr.status == "active":
            program = key.split(":")[-2] if key.count(":") >= 2 else ""
            reasons.append(
                Reason("outreach-due", f"{program} outreach not reached", month.end,
                       f"CommunicationRequest/{cr.id}")
            )  # fmt: skip

    attempts, last_contact = _contacts(reads.communications, patient, month)
    minutes: dict[str, float] = {}
    for entry in charge_entries(reads.charge_items, patient):
        if entry.month == month.label and entry.role == "clinical-staff" and entry.billed:
            minutes[entry.program] = minutes.get(entry.program, 0.0) + entry.minutes
    needed: list[int] = []
    limits = config.rules().addon_limits
    billable = sorted({prog for p in plans if p.status == "active" and (prog := _program_of(p))})
    for program in billable:  # a pending (draft) enrolment bills nothing yet
        ladder = ladder_of(program, config, day)
        if ladder is None:
            continue
        have = minutes.get(program, 0.0)
        more = next_threshold(ladder, have, limits)
        if more is None:
            continue
        code = next_code(ladder, have)
        needed.append(more)
        reasons.append(
            Reason("minutes-to-threshold", f"{program}: {more} min to {code} ({have:g} logged)")
        )
    days_needed: int | None = None
    rpm = next((p for p in plans if p.status == "active" and _program_of(p) == "RPM"), None)
    if rpm is not None:
        days_needed = _device_days_reason(rpm, patient, day, reads.readings, config, reasons)
    checkins = checkins_of(
        patient_id, day, plans, reads.conditions, reads.responses, checkin_config
    )
    reasons += [Reason(a.kind, a.detail, a.due) for a in checkins.assessments]
    return WorklistRow(
        patient=patient,
        programs=tuple(programs),
        reasons=tuple(reasons),
        attempts=attempts,
        last_contact=last_contact,
        minutes_needed=min(needed) if needed else None,
        days_needed=days_needed,
        checkins=checkins,
    )


def _device_days_reason(
    plan: Any,
    patient: str,
    day: date,
    readings: Sequence[Any],
    config: BillingConfig,
    reasons: list[Reason],
) -> int | None:
    """Days with readings still needed for 99454 in the RPM period of `day` (None: reached),
    with its reason; readings after `day` are not known on the list's day."""
    start = devices.episode_start(plan)
    period = devices.period_of(start, day) if start is not None else None
    if period is None:
        return None
    zone = config.zone()
    times = [w for w in devices.readings_of(readings, patient).values()
             if devices.reading_day(w, zone) <= day]  # fmt: skip
    have = devices.days_in(period, times, zone)
    tiers = sorted(rules_for(period.end).device_tiers)
    top, top_code = tiers[-1]
    if have >= top:
        return None
    lower = "".join(f"; {least - have} to {code}" for least, code in tiers[:-1] if have < least)
    reasons.append(
        Reason(
            "days-to-threshold",
            f"RPM: {top - have} more days of readings to {top_code}{lower} "
            f"({have} this period, ends {period.end.isoformat()})",
            period.end,
        )
    )
    return top - have


def _program_of(plan: Any) -> str | None:

    return program_of(plan)


def _manager_of(plan: Any) -> str | None:

    return care_team_of(plan)[0]


def _has_due(task: Any) -> bool:
    r = task.restriction
    return r is not None and r.period is not None and r.period.end is not None


def _contacts(found: Sequence[Any], patient: str, month: Month) -> tuple[int, datetime | None]:
    """(outreach attempts in `month`, the last answered one) among the patient's Communications."""
    attempts = 0
    last: datetime | None = None
    for comm in found:
        if comm.get_resource_type() != "Communication" or not identifier_value(
            comm, OUTREACH_ATTEMPT_ID
        ):
            continue
        if reference_str(comm.subject) != patient:
            continue
        sent = as_instant(comm.sent)
        if sent is None or sent.astimezone(UTC).date() >= month.end + timedelta(days=2):
            continue  # after the worklist's month: not yet known on its day
        if Month.of(sent.astimezone(UTC).date()) == month:
            attempts += 1
        if comm.status == "completed" and (last is None or sent > last):
            last = sent
    return attempts, last


# ---------------------------------------------------------------------------------------------
# Reading


def as_of(day: date | None, now: datetime | None = None) -> tuple[date, datetime]:
    """The list's day and the instant clinical deadlines are checked at: `now` (default: the
    current time) for today's list; the end of the day (UTC) for another day's."""
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if day is None or day == now.astimezone(UTC).date():
        return now.astimezone(UTC).date(), now
    return day, datetime.combine(day, time.max, UTC)


def worklist(
    fhir: FhirReader,
    care_manager: str,
    day: date | None = None,
    *,
    now: datetime | None = None,
    config: Mapping[str, Any] | None = None,
    checkins: CheckinConfig | None = None,
) -> Worklist:
    """The care manager's call list for `day` (default: today, UTC). `config`: the billing
    handler's configuration (add-on caps, complex CCM default); `checkins`: the assessment
    schedule and talking-point catalog (default: the shipped ones)."""
    day, at = as_of(day, now)
    month = Month.of(day)
    billing = BillingConfig.of(config)
    open_statuses = ",".join(workflow.OPEN)
    found: list[list[Any]] = search_together(
        fhir,
        [
            (
                "CommunicationRequest",
                [
                    ("requester", care_manager),
                    ("authored", f"ge{month.start.isoformat()}"),
                    ("authored", f"le{month.end.isoformat()}"),
                ],
            ),
            ("Task", [("owner", care_manager), ("status", open_statuses)]),
        ],
    )
    requests: list[Any] = [
        cr
        for cr in found[0]
        if cr.get_resource_type() == "CommunicationRequest"
        and reference_str(getattr(cr, "requester", None)) == care_manager
        and (identifier_value(cr, OUTREACH_REQUEST_ID) or "").endswith(f":{month.label}")
    ]
    owned: list[Any] = [
        task
        for task in found[1]
        if task.get_resource_type() == "Task"
        and reference_str(task.owner) == care_manager
        and task.status in workflow.OPEN
    ]
    clinical = open_clinical_items(fhir, care_manager, at)
    patients = sorted(
        {pid for pid in map(patient_of, [*requests, *owned]) if pid}
        | {item.patient.removeprefix("Patient/") for item in clinical}
    )
    since = Month.of(month.start - timedelta(days=1)).start - timedelta(days=1)
    rows: list[WorklistRow] = []
    for chunk in _chunks(patients, PATIENTS_PER_BATCH):
        searches: list[Search] = []
        for pid in chunk:
            ref = f"Patient/{pid}"
            searches += [
                ("CarePlan", [("patient", ref)]),
                ("Task", [("patient", ref), ("status", open_statuses)]),
                # Lower bound only: an upper `lt` is a scan of every older entry on a date
                # index (docs/architecture.md); `_contacts` drops the later ones.
                ("Communication", [("patient", ref), ("sent", f"ge{since.isoformat()}")]),
                charge_item_search(ref, day),
                devices.reading_search(ref, day - timedelta(days=31)),
            ]  # fmt: skip
            searches += checkin_searches(ref)
        answers = search_together(fhir, searches)
        per = WORKLIST_SEARCHES + CHECKIN_SEARCHES
        for i, pid in enumerate(chunk):
            plans, tasks, comms, items, readings, conditions, responses = answers[
                per * i : per * (i + 1)
            ]
            reads = PatientReads(
                plans=plans,
                tasks=tasks,
                communications=comms,
                charge_items=items,
                requests=requests,
                clinical=clinical,
                readings=readings,
                conditions=conditions,
                responses=responses,
            )
            rows.append(patient_row(pid, care_manager, day, reads, billing, checkins))
    return Worklist(care_manager, day, tuple(rank(rows)))


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# ---------------------------------------------------------------------------------------------
# Output


def table(worklist: Worklist) -> str:
    """The list as a text table, one line per patient (its most urgent reason first)."""
    head = ("#", "patient", "program", "attempts", "last contact", "to do")
    lines = [head]
    for n, row in enumerate(worklist.rows, start=1):
        todo = "; ".join(r.detail for r in row.reasons) or "-"
        contact = row.last_contact.astimezone(UTC).strftime("%Y-%m-%d") if row.last_contact else "-"
        program = ",".join(row.programs) or "-"
        lines.append((str(n), row.patient, program, str(row.attempts), contact, todo))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head) - 1)]
    title = f"Call list for {worklist.care_manager}, {worklist.day.isoformat()}"
    out = [title]
    for line in lines:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    if not worklist.rows:
        out.append("(no patients)")
    numbered = [(n, r.patient, r.checkins.talking_points) for n, r in enumerate(worklist.rows, 1)]
    out += talking_points_text(numbered)
    return "\n".join(out)
