"""The demo's summary, read back from the FHIR server and the topics — never from the simulator.

`compute(data, broker, ..., now=...)` searches the FHIR server for what the handlers wrote for
this run's patients (care plans, outreach requests and attempts, Tasks, referrals, charge items)
and reads the outbound and dead-letter topics. `now` is the demo's clock at the end of the last
simulated day: the worklist and the TCM deadlines are the ones of that day, never of the machine's
clock. `referral_snapshot` is taken after each simulated day.

The features read from the Tasks and CarePlans the handlers wrote, each a `Figures` (what FHIR
shows, never an invented number): `tcm_deadlines` (the TCM deadline Tasks of
`carecoord.patient.discharged`), `consent_status`, `disenrolments`, `clinical_loop`, and
`worklist` (the `carecoord worklist` library function). Screenings and check-ins (screens done,
positives, what followed each) are `carecoord.demo.screen_outcomes`, read the same way.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from carecoord.caremodel import terminology as t
from carecoord.caremodel import workflow
from carecoord.caremodel.identifiers import identifier_system
from carecoord.core.envelope import CloudEvent
from carecoord.demo.fhirdata import FhirData, Json, code_values, ident, patient_id, ref, refs
from carecoord.demo.screen_outcomes import ScreeningFigures, outcomes
from carecoord.demo.sim import MONTH_START
from carecoord.events.broker import Broker
from carecoord.events.dlq import list_dead_letters
from carecoord.handlers.billing.handler import LADDERS, PROGRAM_EXTENSION, Ladder

REFERRAL_STATUSES = (
    "requested", "accepted", "in-progress", "completed", "rejected", "cancelled", "failed",
)  # fmt: skip
TASK_CODES = {
    "escalation": t.TASK_OUTREACH_ESCALATION,
    "clinical-review": t.TASK_CLINICAL_REVIEW,
    "verify-contact": t.TASK_VERIFY_CONTACT,
    "manual-referral": t.TASK_MANUAL_REFERRAL,
    "overdue-escalation": t.TASK_OVERDUE_ESCALATION,
    "assign-care-manager": t.TASK_ASSIGN_CARE_MANAGER,
    "medication-reconciliation": t.TASK_MEDICATION_RECONCILIATION,
    "assessment": t.TASK_ASSESSMENT,
    "care-plan-review": t.TASK_CARE_PLAN_REVIEW,
    "referral": t.TASK_FULFILL,
    "tcm-interactive-contact": t.TASK_TCM_INTERACTIVE_CONTACT,
    "tcm-face-to-face": t.TASK_TCM_FACE_TO_FACE,
    "obtain-consent": t.TASK_OBTAIN_CONSENT,
    "relay-answer": t.TASK_RELAY_ANSWER,
    "schedule-visit": t.TASK_SCHEDULE_VISIT,
}
UNANSWERED = "unanswered outreach escalated"
NOT_ON_MINUTES = "billed per episode, not on minutes"  # a program without a time ladder (TCM)
# The worklist's reasons (carecoord.handlers.jobs.worklist.KINDS) in a care manager's words.
WORK_LABELS = {
    "tcm-overdue": "TCM task overdue",
    "overdue-question": "clinical question overdue",
    "escalation": "unanswered outreach escalated",
    "tcm-due-today": "TCM task due today",
    "relay-answer": "provider's answer to relay",
    "schedule-visit": "visit to schedule",
    "outreach-due": "outreach call due",
    "obtain-consent": "consent to obtain",
    "assessment-overdue": "assessment overdue",
    "assessment-due": "assessment due",
    "minutes-to-threshold": "minutes to the next billing code",
    "minutes": "nothing due",
}
OPEN = frozenset({"draft", *workflow.OPEN})  # a draft is work not started yet, for the report


@dataclass
class Funnel:
    due: int = 0
    attempted: int = 0
    reached: int = 0
    escalated: int = 0
    declined: int = 0
    wrong_number: int = 0
    attempts: int = 0


@dataclass
class Caseload:
    care_manager: str
    patients: int
    capacity: int

    @property
    def load(self) -> float:
        return self.patients / self.capacity if self.capacity else 0.0


@dataclass
class Billing:
    program: str
    units: dict[str, int]  # CPT -> units
    patients_billed: int
    patients_with_time: int
    minutes: list[float]  # per patient with time
    ladder: Ladder | None


@dataclass
class WorkItem:
    kind: str
    patient: str
    detail: str
    due: str | None
    priority: str

    @property
    def label(self) -> str:
        return WORK_LABELS.get(self.kind, self.kind)


@dataclass
class Figures:
    """One feature's figures for the period (label -> count) and where they come from."""

    title: str
    note: str
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether the period produced anything for this feature (else the report leaves it out)."""
        return any(self.figures.values())


@dataclass
class Summary:
    patients: int
    care_plans: dict[str, int]  # program -> active plans
    funnel: dict[str, Funnel]  # care manager -> funnel (and "all")
    escalations: dict[str, int]
    referrals_by_status: dict[str, int]
    referrals_by_domain: dict[str, dict[str, int]]  # domain -> status -> referrals
    referral_attempts: int
    tcm: Figures
    caseloads: list[Caseload]
    billing: list[Billing]
    dead_letters: list[tuple[str, str, str]]  # (error type, event type, message)
    emitted: dict[str, int]
    worklist_for: str
    worklist: list[WorkItem]
    worklist_source: str
    snapshots: list[dict[str, int]]
    consent: Figures
    disenrolled: Figures
    clinical: Figures
    screenings: ScreeningFigures = field(default_factory=ScreeningFigures)
    fhir_searches: int = 0
    resources_read: int = 0


def _mine(resources: Iterable[Json], prefix: str) -> list[Json]:
    return [r for r in resources if (patient_id(r) or "").startswith(prefix)]


def _program(resource: Json) -> str | None:
    for concept in resource.get("category") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == t.CARE_PROGRAM_SYSTEM:
                return str(coding.get("code"))
    return None


def _care_manager(plan: Json) -> str | None:
    for team in plan.get("contained") or []:
        for member in team.get("participant") or []:
            roles = set().union(*(code_values(r) for r in member.get("role") or [{}]))
            if t.ROLE_CARE_COORDINATOR.code in roles:
                return ref(member.get("member"))
    return None


def _task_kind(task: Json) -> str | None:
    concept = task.get("code") or {}
    for kind, code in TASK_CODES.items():
        if t.concept_has(concept, code):
            return kind
    return None


def referral_snapshot(data: FhirData, prefix: str) -> dict[str, int]:
    """Referral Tasks (every attempt) of this run by status, now."""
    tasks = _mine(
        data.search("Task", {"code": f"{t.TASK_FULFILL.system}|{t.TASK_FULFILL.code}"}), prefix
    )
    counts = Counter(str(task.get("status")) for task in tasks if ident(task, "referral-task"))
    return {s: counts.get(s, 0) for s in REFERRAL_STATUSES}


def business_days_after(start: date, days: int) -> date:
    day = start
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


TCM_DEADLINES = {
    t.TASK_TCM_INTERACTIVE_CONTACT.code: "contact within 2 business days",
    t.TASK_TCM_FACE_TO_FACE.code: "face-to-face visit within 7/14 days",
}


def tcm_deadlines(tasks: Sequence[Json], now: datetime) -> Figures:
    """TCM deadlines from the TCM handler's deadline Tasks (carecoord.patient.discharged): per
    deadline, how many were due, met (completed by their restriction.period.end), missed
    (completed late, or still open past it) and still open in time."""
    figures: dict[str, int] = {}
    today = now.date().isoformat()
    for code, label in TCM_DEADLINES.items():
        mine = [task for task in tasks if code in code_values(task.get("code"))]
        met = missed = open_ = 0
        for task in mine:
            due = str((task.get("restriction") or {}).get("period", {}).get("end") or "")[:10]
            done = str((task.get("executionPeriod") or {}).get("end") or
                       task.get("lastModified") or "")[:10]  # fmt: skip
            if task.get("status") == "completed":
                met, missed = (met + 1, missed) if done <= due else (met, missed + 1)
            elif task.get("status") in OPEN:
                missed, open_ = (missed + 1, open_) if due < today else (missed, open_ + 1)
        figures[f"{label}: due"] = len(mine)
        figures[f"{label}: met"] = met
        figures[f"{label}: missed"] = missed
        figures[f"{label}: still open in time"] = open_
    return Figures(
        "Transitional care (TCM) deadlines", "the TCM tasks of the discharged patients", figures
    )


# The worklist's reasons in the order it ranks them; the first three are shown as urgent.
URGENT_KINDS = ("tcm-overdue", "clinical-overdue", "escalation")


def worklist(fhir_url: str, care_manager: str, day: date) -> tuple[list[WorkItem], str]:
    """One care manager's call list for `day`: the `carecoord worklist` library function, run
    against the FHIR server (one item per patient, with its most urgent reason first)."""
    from carecoord.fhir.client import FhirClient
    from carecoord.handlers.jobs.worklist import worklist as call_list

    with FhirClient(fhir_url) as fhir:
        found = call_list(fhir, care_manager, day)
    items = []
    for row in found.rows:
        first = row.reasons[0] if row.reasons else None
        items.append(
            WorkItem(
                first.kind if first else "minutes",
                row.patient.removeprefix("Patient/"),
                "; ".join(r.detail for r in row.reasons) or "-",
                first.due.isoformat() if first and first.due else None,
                "urgent" if first and first.kind in URGENT_KINDS else "routine",
            )
        )
    return items, "`carecoord worklist` (carecoord.handlers.jobs.worklist.worklist)"


def compute(
    data: FhirData,
    broker: Broker,
    *,
    prefix: str,
    care_managers: Sequence[str],
    capacities: Mapping[str, int],
    topic_out: str,
    topic_dlq: str,
    snapshots: Sequence[dict[str, int]] = (),
    now: datetime,
    screenings_skipped: str | None = None,
) -> Summary:
    """The month read back for this run (`prefix`); `screenings_skipped`: why the demo did not
    simulate screenings (then their section says so instead of searching for them)."""
    month_end = (MONTH_START.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    start_searches = data.searches
    plans = _mine(
        data.search("CarePlan", {"identifier": f"{identifier_system('care-plan')}|"}), prefix
    )
    requests_all = _mine(
        data.search(
            "CommunicationRequest",
            [("identifier", f"{identifier_system('outreach-request')}|"),
             ("authored", f"ge{MONTH_START.isoformat()}"),
             ("authored", f"le{month_end.isoformat()}")],
        ),
        prefix,
    )  # fmt: skip
    requests = {
        f"CommunicationRequest/{cr['id']}": cr
        for cr in requests_all
        if (ident(cr, "outreach-request") or "").endswith(MONTH_START.strftime(":%Y-%m"))
    }
    comms = _mine(
        data.search("Communication", {"identifier": f"{identifier_system('outreach-attempt')}|"}),
        prefix,
    )
    codes = ",".join(f"{c.system}|{c.code}" for c in TASK_CODES.values())
    tasks = _mine(data.search("Task", {"code": codes}), prefix)
    srs = _mine(
        data.search(
            "ServiceRequest", {"category": f"{t.SNOMED}|{t.SR_CATEGORY_SOCIAL_SERVICE.code}"}
        ),
        prefix,
    )
    charges = _mine(
        data.search(
            "ChargeItem", {"code": f"{t.CARE_MANAGEMENT_TIME.system}|{t.CARE_MANAGEMENT_TIME.code}"}
        ),
        prefix,
    )
    billable = _mine(
        data.search("ChargeItem", {"identifier": f"{identifier_system('charge-item')}|"}), prefix
    )
    read = sum(map(len, (plans, requests_all, comms, tasks, srs, charges, billable)))

    # outreach funnel per care manager (the requester of the month's request)
    by_request: dict[str, list[Json]] = defaultdict(list)
    for comm in comms:
        for based in refs(comm.get("basedOn")):
            by_request[based].append(comm)
    escalated = {ref(task.get("focus")) for task in tasks if _task_kind(task) == "escalation"}
    funnel: dict[str, Funnel] = {cm: Funnel() for cm in care_managers}
    total = Funnel()
    for cr_ref, cr in requests.items():
        f = funnel.setdefault(ref(cr.get("requester")) or "unassigned", Funnel())
        attempts = by_request.get(cr_ref, [])
        reasons = (
            set().union(*(code_values(c.get("statusReason")) for c in attempts))
            if attempts
            else set()
        )
        for target in (f, total):
            target.due += 1
            target.attempts += len(attempts)
            target.attempted += bool(attempts)
            target.reached += any(c.get("status") == "completed" for c in attempts)
            target.escalated += cr_ref in escalated
            target.declined += cr.get("status") == "revoked"
            target.wrong_number += t.NOT_DONE_INVALID_PHONE.code in reasons
    funnel["all"] = total

    kinds = Counter(_task_kind(task) for task in tasks)
    urgent = sum(
        1
        for task in tasks
        if _task_kind(task) == "clinical-review" and task.get("priority") == "stat"
    )
    escalations = {
        UNANSWERED: kinds.get("escalation", 0),
        "overdue tasks escalated": kinds.get("overdue-escalation", 0),
        "clinical questions to a provider": kinds.get("clinical-review", 0),
        "  of which urgent": urgent,
        "wrong numbers to verify": kinds.get("verify-contact", 0),
        "patients waiting for a care manager": kinds.get("assign-care-manager", 0),
    }

    # referrals: one per ServiceRequest, its status from the SR and its latest Task attempt
    ref_tasks: dict[str, list[Json]] = defaultdict(list)
    manual: dict[str, Json] = {}
    for task in tasks:
        kind = _task_kind(task)
        focus = ref(task.get("focus"))
        if focus and kind == "referral":
            ref_tasks[focus].append(task)
        elif focus and kind == "manual-referral":
            manual[focus] = task
    by_status: Counter[str] = Counter()
    by_domain: dict[str, Counter[str]] = defaultdict(Counter)
    sr_status: dict[str, str] = {}
    for sr in srs:
        sr_ref = f"ServiceRequest/{sr['id']}"
        domains = code_values(sr.get("category")) - {t.SR_CATEGORY_SOCIAL_SERVICE.code}
        domain = sorted(domains)[0] if domains else "unspecified"
        attempts = sorted(ref_tasks.get(sr_ref, []), key=lambda x: str(x.get("authoredOn") or ""))
        if sr.get("status") == "completed":
            status = "completed"
        elif sr.get("status") == "revoked":
            status = "cancelled"
        elif sr_ref in manual:
            business = code_values(manual[sr_ref].get("businessStatus"))
            status = (
                "no consent: manual"
                if t.BUSINESS_NO_CONSENT.code in business
                else "unmatched: manual"
            )
        elif attempts:
            status = str(attempts[-1].get("status"))
        else:
            status = str(sr.get("status"))
        by_status[status] += 1
        by_domain[domain][status] += 1
        sr_status[sr_ref] = status

    # caseload: distinct patients of the month's requests per requester (the handlers' rule)
    patients_of: dict[str, set[str]] = defaultdict(set)
    for cr in requests.values():
        requester = ref(cr.get("requester"))
        pid = patient_id(cr)
        if requester and pid and cr.get("status") != "entered-in-error":
            patients_of[requester].add(pid)
    caseloads = [
        Caseload(cm, len(patients_of.get(cm, set())), capacities.get(cm, 0)) for cm in care_managers
    ]

    # billing
    minutes: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item in charges:
        if item.get("status") == "entered-in-error" or not ident(item, "time-entry"):
            continue
        program = next(
            (str(e["valueCoding"]["code"]) for e in item.get("extension") or []
             if e.get("url") == PROGRAM_EXTENSION and e.get("valueCoding")),
            None,
        )  # fmt: skip
        pid = patient_id(item)
        if program and pid:
            minutes[program][pid] += float((item.get("quantity") or {}).get("value") or 0)
    units: dict[str, Counter[str]] = defaultdict(Counter)
    billed_patients: dict[str, set[str]] = defaultdict(set)
    for item in billable:
        value = ident(item, "charge-item")
        if not value or item.get("status") != "billable":
            continue
        # one ChargeItem per patient, program, month and code; quantity = units
        _pid, program, _month, cpt = value.rsplit(":", 3)
        units[program][cpt] += int((item.get("quantity") or {}).get("value") or 1)
        billed_patients[program].add(_pid)
    programs = sorted(
        set(minutes) | set(units),
        key=lambda p: list(t.PROGRAMS).index(p) if p in t.PROGRAMS else 99,
    )
    billing = [
        Billing(p, dict(sorted(units[p].items())), len(billed_patients[p]), len(minutes[p]),
                sorted(minutes[p].values()), LADDERS.get(p))
        for p in programs
    ]  # fmt: skip

    emitted = Counter(
        CloudEvent.from_json_bytes(r.value).type for r in broker.read_topic(topic_out, timeout=5)
    )
    dead = [
        (d.error_type or "-", d.event_type or "-", d.error_message or "")
        for d in list_dead_letters(broker, topic_dlq, timeout=5)
    ]
    lead = max(caseloads, key=lambda c: c.patients).care_manager if caseloads else "-"
    items, source = worklist(data.base_url, lead, now.date()) if caseloads else ([], "-")
    active_by_program = Counter(_program(p) or "?" for p in plans if p.get("status") == "active")
    if screenings_skipped is None:
        screened = screening_figures(data, prefix, srs, tasks, sr_status)
        read += screened[1]
        screenings = screened[0]
    else:
        screenings = ScreeningFigures(skipped=screenings_skipped)
    return Summary(
        patients=len({patient_id(p) for p in plans}),
        care_plans=dict(sorted(active_by_program.items())),
        funnel=funnel,
        escalations=escalations,
        referrals_by_status=dict(by_status.most_common()),
        referrals_by_domain={d: dict(c.most_common()) for d, c in sorted(by_domain.items())},
        referral_attempts=sum(len(v) for v in ref_tasks.values()),
        tcm=tcm_deadlines(tasks, now),
        caseloads=caseloads,
        billing=billing,
        dead_letters=dead,
        emitted=dict(sorted(emitted.items())),
        worklist_for=lead,
        worklist=items,
        worklist_source=source,
        snapshots=list(snapshots),
        consent=consent_status(plans, tasks, len(_mine(data.search("Consent"), prefix))),
        disenrolled=disenrolments(plans),
        clinical=clinical_loop(tasks),
        screenings=screenings,
        fhir_searches=data.searches - start_searches,
        resources_read=read,
    )


def screening_figures(
    data: FhirData,
    prefix: str,
    service_requests: Sequence[Json],
    tasks: Sequence[Json],
    referral_status: Mapping[str, str],
) -> tuple[ScreeningFigures, int]:
    """This run's questionnaires, the Observations derived from them and the SDOH Conditions
    (health concerns): what `screen_outcomes.outcomes` counts; and how many resources were read."""
    responses = _mine(data.search("QuestionnaireResponse"), prefix)
    observations = _mine(data.search("Observation"), prefix)
    concern = t.CONDITION_HEALTH_CONCERN
    conditions = _mine(data.search("Condition", {"category": f"{concern.system}|{concern.code}"}),
                       prefix)  # fmt: skip
    figures = outcomes(responses, observations, conditions, service_requests, tasks,
                       referral_status)  # fmt: skip
    return figures, len(responses) + len(observations) + len(conditions)


def consent_status(plans: Sequence[Json], tasks: Sequence[Json], consents: int) -> Figures:
    """Consent to care management: Consent resources written, enrolments still pending (a draft
    CarePlan with an open "obtain consent" Task), and referrals held for consent to contact."""
    pending = sum(1 for p in plans if p.get("status") == "draft")
    obtain = sum(
        1 for task in tasks
        if t.TASK_OBTAIN_CONSENT.code in code_values(task.get("code"))
        and task.get("status") in OPEN
    )  # fmt: skip
    figures = {"consents recorded": consents, "enrolments waiting for consent": pending,
               "open tasks to obtain consent": obtain}  # fmt: skip
    return Figures("Consent", "consents, draft care plans and consent tasks", figures)


def disenrolments(plans: Sequence[Json]) -> Figures:
    """Disenrolments (carecoord.patient.disenrolled): CarePlans ended, by reason."""
    reasons: Counter[str] = Counter()
    for plan in plans:
        if plan.get("status") not in ("completed", "revoked"):
            continue
        reason = next((str(e.get("valueCode")) for e in plan.get("extension") or []
                       if e.get("url") == t.DISENROLMENT_REASON_EXTENSION), "ended")  # fmt: skip
        reasons[reason] += 1
    figures = {f"disenrolled ({r})": n for r, n in sorted(reasons.items())}
    return Figures("Disenrolments", "care plans ended", figures or {"disenrolled": 0})


def clinical_loop(tasks: Sequence[Json]) -> Figures:
    """Clinical questions: routed to the provider, answered (completed), escalated past their
    due time, and answers waiting for the care manager to relay."""
    review = [task for task in tasks if _task_kind(task) == "clinical-review"]
    relay = [task for task in tasks if t.TASK_RELAY_ANSWER.code in code_values(task.get("code"))]
    escalated = sum(1 for task in review if task.get("focus"))
    figures = {
        "questions sent to a provider": len(review) - escalated,
        "answered": sum(1 for task in review if task.get("status") == "completed"),
        "escalated past their deadline": escalated,
        "answers still to relay to the patient": sum(
            1 for task in relay if task.get("status") in OPEN
        ),
    }
    return Figures("Clinical questions", "the clinical review tasks", figures)


def _table(
    header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  "
) -> list[str]:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return [
        indent
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]


def _short(reference: str) -> str:
    return reference.split("/", 1)[-1]


def screening_text(f: ScreeningFigures) -> list[str]:
    """Screens done, positives and what followed, per instrument; nothing when the demo did not
    simulate them (its output says so once, before the summary)."""
    if f.skipped:
        return []
    if not f.any:
        return ["Screenings and check-ins: none completed in the period"]
    out = [f"Screenings and check-ins (from {f.source})"]
    rows = [(r.label, r.done, r.positive, r.not_scored) for r in f.rows if r.done]
    out += _table(("", "done", "positive", "not scored"), rows)
    for r in f.rows:
        if not r.positive:
            continue
        urgent = f", {r.urgent} with thoughts of self-harm" if r.urgent else ""
        out.append(f"  {r.label}: {r.positive} positive ({r.positive_label}){urgent}; then:")
        out += [f"    {n:>4}  {what}" for what, n in r.followed.items()]
    return out


def render_text(s: Summary) -> str:
    """The summary as plain text for the terminal."""
    out: list[str] = []
    add = out.append
    plans = ", ".join(f"{p} {n}" for p, n in s.care_plans.items())
    add(f"Patients: {s.patients} with care plans ({plans})")
    add("")
    add("Outreach this month, per care manager (the month's outreach and its calls)")
    rows = []
    for cm, f in s.funnel.items():
        pct = f"{100 * f.reached / f.due:.0f}%" if f.due else "-"
        rows.append((_short(cm), f.due, f.attempted, f.attempts, f.reached, pct, f.escalated,
                     f.declined, f.wrong_number))  # fmt: skip
    header = ("care manager", "due", "attempted", "calls", "reached", "%", "escalated",
              "declined", "wrong no.")  # fmt: skip
    out += _table(header, rows)
    add("")
    add("Escalations and routed work (tasks)")
    out += _table(("", "tasks"), list(s.escalations.items()))
    add("")
    needs = sum(s.referrals_by_status.values())
    add(f"Community referrals: {needs} needs, {s.referral_attempts} referrals to organisations")
    add("  by status: " + (", ".join(f"{k} {v}" for k, v in s.referrals_by_status.items()) or "-"))
    for domain, statuses in s.referrals_by_domain.items():
        add(f"  {domain:<26} " + ", ".join(f"{k} {v}" for k, v in statuses.items()))
    add("")
    add("Caseload against capacity (distinct patients of the month's outreach requests)")
    out += _table(
        ("care manager", "patients", "capacity", "load"),
        [(_short(c.care_manager), c.patients, c.capacity, f"{c.load:.0%}") for c in s.caseloads],
    )
    add("")
    add("Billable this month")
    bill_rows: list[tuple[object, ...]] = []
    for b in s.billing:
        none = NOT_ON_MINUTES if b.ladder is None else "no threshold reached yet"
        codes_ = ", ".join(f"{cpt} x{n}" for cpt, n in b.units.items()) or none
        bill_rows.append((b.program, codes_, b.patients_billed, b.patients_with_time))
    out += _table(("program", "codes earned (units)", "patients billed", "with time"), bill_rows)
    add("")
    kinds = Counter(w.label for w in s.worklist).most_common()
    add(f"Worklist of {_short(s.worklist_for)} on the last day: {len(s.worklist)} items ("
        + ", ".join(f"{k} {v}" for k, v in kinds) + ")")  # fmt: skip
    for feature in (s.tcm, s.consent, s.disenrolled, s.clinical):
        if feature.any:  # left out when the period produced nothing for it
            add("")
            add(f"{feature.title} (from {feature.note})")
            out += _table(("", "number"), list(feature.figures.items()))
    if screens := screening_text(s.screenings):
        out += ["", *screens]
    add("")
    add(f"Dead letters: {len(s.dead_letters)}")
    for error, etype, message in s.dead_letters:
        add(f"  {error}: {etype}: {message[:70]}")
    emitted = ", ".join(f"{k.removeprefix('carecoord.')} {v}" for k, v in s.emitted.items())
    add(f"Emitted on the outbound topic: {emitted}")
    add(f"(read back from FHIR: {s.resources_read} resources in {s.fhir_searches} searches)")
    return "\n".join(out)
