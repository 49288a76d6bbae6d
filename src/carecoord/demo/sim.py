"""The demo's practice: care managers, patients and what happens to them in a month, as events.

Nothing here writes FHIR or talks to Kafka: each simulated day, `Simulator.day()` returns what the
outside world does that day — catalog events (from the EHR, the care managers' phones, the
referral platform), the community organisations' updates of referral Tasks on the FHIR server
(each followed by a FHIR notification), and a few poison messages. The runner
(`carecoord.demo.runner`) sends them through the real service.

Determinism: every random draw comes from a `random.Random` seeded with the seed *and* the thing it
is about (a patient, a referral Task's business identifier), so the same seed gives the same month
whatever order the server returns things in.

**The event mix** is the table `EVENT_MIX`: one line per kind of event, run in table order each
day. A line whose event type is not in the catalog (`carecoord.core.catalog.INBOUND`) is
skipped. To add a kind: write a generator `(sim, day) -> list[CloudEvent]` and add one `Mix(...)`
line. The practice's own people finish their Tasks on the FHIR server (`Simulator.care_team`:
TCM contacts and visits, providers' answers to clinical questions), as the organisations do
theirs (`_organisations`); the server notifies carecoord of each.

**Screenings and check-ins** (`carecoord.demo.screens`) are on only when the runner finds a loaded
handler for `carecoord.assessment.completed` (`Simulator.screening`): each day's completed
questionnaires are `DayPlan.screenings`, written to the FHIR server before their events are sent.
The Hunger Vital Sign then screens for food insecurity, so the call's social-needs screening
(`social_needs`) leaves that domain to it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from carecoord.core.catalog import INBOUND
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.demo import screens as sc
from carecoord.demo.screens import Screening

MONTH_START = date(2026, 11, 1)
SOURCE = "urn:carecoord:demo"

# Event types of the later features (discharge, disenrolment, consent); a Mix line whose type is
# not in the catalog is skipped.
DISCHARGED = "carecoord.patient.discharged"
DISENROLLED = "carecoord.patient.disenrolled"
CONSENT = "carecoord.consent.recorded"

CARE_MANAGER_NAMES = ("rivera", "chen", "okoro", "lindqvist", "haddad", "moreau", "tanaka")
PROVIDERS = ("Practitioner/dr-okafor", "Practitioner/dr-silva", "Practitioner/dr-brennan")
# The sample directory's postal codes, and one it does not cover (referrals there go unmatched).
POSTAL_CODES = (("62701", 0.3), ("62702", 0.25), ("62703", 0.2), ("62704", 0.2), ("62799", 0.05))
LANGUAGES = ((None, 0.78), ("es", 0.17), ("vi", 0.05))
# (program, share of the panel). TCM patients arrive on discharge during the month.
PROGRAM_MIX = (("CCM", 0.52), ("RPM", 0.13), ("PCM", 0.10), ("BHI", 0.13), ("TCM", 0.12))
# Gravity domains and the share of screened patients with that need (published prevalence among
# Medicare/Medicaid care-management populations is roughly 10-15 % food, 5-10 % housing,
# 5-10 % transport, 5-8 % utilities).
SDOH_PREVALENCE = (
    ("food-insecurity", 0.13),
    ("housing-instability", 0.07),
    ("transportation-insecurity", 0.09),
    ("utility-insecurity", 0.06),
)
# Minutes of one care-management contact, by program: (low, high).
CONTACT_MINUTES = {
    "CCM": (8, 24),
    "PCM": (10, 30),
    "RPM": (6, 18),
    "BHI": (10, 25),
    "TCM": (15, 35),
}
QUESTIONS = (
    "Can I take ibuprofen with my new blood pressure pill?",
    "My morning sugars are above 250 for three days, should the insulin dose change?",
    "I feel dizzy when I stand up since the new medication started.",
    "The inhaler refill ran out, can the doctor send a new prescription?",
    "My ankles are more swollen this week.",
)


@dataclass(frozen=True)
class Rates:
    """Realistic answer rates and prevalences (care-management programmes typically reach 30-40 %
    of patients on the first call, 60-75 % within the month)."""

    consent_pending: float = 0.08  # consent to care management not recorded yet
    named_care_manager: float = 0.97  # the EHR names the care manager; else carecoord assigns
    wrong_number: float = 0.05  # the number on file is wrong (first call)
    declines: float = 0.03  # the patient declines when reached
    # (probability one call is answered, share of patients)
    reachability: tuple[tuple[float, float], ...] = ((0.75, 0.3), (0.4, 0.4), (0.12, 0.3))
    voicemail: float = 0.35  # of unanswered calls, a voicemail was left
    max_calls: int = 5  # calls a care manager makes before giving up for the month
    extra_contacts: tuple[int, int] = (0, 2)  # further care-management contacts once reached
    clinical_question: float = 0.07  # reached patients who raise a clinical question
    urgent_question: float = 0.25
    disenrol: float = 0.01
    consent_given_later: float = 0.5  # of pending consents, given during the month
    poison_days: tuple[int, ...] = (2, 9, 17)  # days a poison message arrives (if simulated)


@dataclass(frozen=True)
class Scale:
    patients: int = 600
    care_managers: int = 3
    seed: int = 7
    days: int = 30
    run: str = "demo"  # unique per run: patient ids stay apart on a shared server

    @property
    def period(self) -> str:
        """The simulated period in words, e.g. "5 days: 1\u20135 November 2026" (an en dash)."""
        last = MONTH_START + timedelta(days=self.days - 1)
        span = f"{MONTH_START.day}" if self.days == 1 else f"{MONTH_START.day}\u2013{last.day}"
        plural = "" if self.days == 1 else "s"
        return f"{self.days} day{plural}: {span} {MONTH_START:%B %Y}"

    @property
    def last_day(self) -> date:
        return MONTH_START + timedelta(days=self.days - 1)

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 30:
            raise ValueError("--days must be between 1 and 30 (one month)")
        if self.patients < 1 or not 1 <= self.care_managers <= len(CARE_MANAGER_NAMES):
            raise ValueError(
                f"--patients must be >= 1 and --care-managers 1..{len(CARE_MANAGER_NAMES)}"
            )


@dataclass
class SimPatient:
    id: str
    program: str
    provider: str
    care_manager: str  # who the practice has in mind (named in the event or not)
    named: bool  # the enrolment event names the care manager
    consent: Literal["given", "pending"]
    postal_code: str
    language: str | None
    reachability: float
    wrong_number: bool
    declines: bool
    enrol_day: int
    first_call_day: int
    # outreach state
    calls: int = 0
    next_call_day: int | None = None
    reached_day: int | None = None
    declined: bool = False
    contacts: list[int] = field(default_factory=list)  # days of further contacts once reached
    disenrolled: bool = False

    @property
    def ref(self) -> str:
        return f"Patient/{self.id}"


@dataclass(frozen=True)
class OrgUpdate:
    """A community organisation changes a referral Task on the FHIR server (then the server's
    Subscription notifies carecoord)."""

    task_id: str
    status: str
    reason: str | None = None


CareKind = Literal["tcm-contact", "tcm-visit", "clinical-review"]


@dataclass(frozen=True)
class CareTaskView:
    """An open Task of the practice's own people on the FHIR server: a TCM deadline Task for the
    care manager, a clinical-review Task for a provider."""

    id: str
    kind: CareKind
    patient_id: str


@dataclass
class DayPlan:
    day: int
    events: list[CloudEvent] = field(default_factory=list)
    org_updates: list[OrgUpdate] = field(default_factory=list)  # on FHIR + notification
    poison: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value)
    # completed questionnaires: on the FHIR server first, then their events (in `events`)
    screenings: list[Screening] = field(default_factory=list)


@dataclass(frozen=True)
class ReferralTaskView:
    """What the simulated organisations see of an open referral Task on the FHIR server."""

    id: str
    key: str  # business identifier value (deterministic across runs)
    status: str
    patient_id: str


@dataclass(frozen=True)
class Mix:
    name: str
    event_type: str
    generate: Callable[[Simulator, int], list[CloudEvent]]


def _pick(rng: random.Random, table: Sequence[tuple[Any, float]]) -> Any:
    r = rng.random() * sum(w for _, w in table)
    for value, weight in table:
        r -= weight
        if r <= 0:
            return value
    return table[-1][0]


class Simulator:
    def __init__(self, scale: Scale, rates: Rates | None = None) -> None:
        self.scale = scale
        self.rates = rates or Rates()
        self.care_managers = [
            f"Practitioner/cm-{name}" for name in CARE_MANAGER_NAMES[: scale.care_managers]
        ]
        self.patients = [self._patient(i) for i in range(scale.patients)]
        self.by_id = {p.id: p for p in self.patients}
        self.reached_today: list[SimPatient] = []
        self.questions: list[tuple[SimPatient, int, str]] = []  # (patient, day, event id)
        # referral Task key -> (status, first day seen in it)
        self.referrals_seen: dict[str, tuple[str, int]] = {}
        self.skipped = [m for m in EVENT_MIX if m.event_type not in INBOUND]
        # screenings and check-ins: on when the service has a handler for them (the runner says)
        self.screening = False
        self.screened: list[Screening] = []

    # -- the practice ---------------------------------------------------------------------------

    def rng(self, *about: object) -> random.Random:
        # without the run's prefix (unique per run) in ids and keys: the same seed, the same month
        prefix = f"{self.scale.run}-"
        return random.Random(
            ":".join(str(a).replace(prefix, "") for a in (self.scale.seed, *about))
        )

    def _patient(self, i: int) -> SimPatient:
        rng = self.rng("patient", i)
        r = self.rates
        program = str(_pick(rng, PROGRAM_MIX))
        days = self.scale.days
        if program == "TCM":  # discharged during the month: enrolled on discharge, called next day
            enrol = rng.randint(1, max(1, days - 1))
            first_call = min(days, enrol + 1)
        else:  # the month's panel: enrolled on the first day, called over the first weeks
            enrol = 1
            first_call = rng.randint(1, max(1, round(days * 0.7)))
        care_manager = self.care_managers[i % len(self.care_managers)]
        return SimPatient(
            id=f"{self.scale.run}-{i:04d}",
            program=program,
            provider=PROVIDERS[i % len(PROVIDERS)],
            care_manager=care_manager,
            named=rng.random() < r.named_care_manager,
            consent="pending" if rng.random() < r.consent_pending else "given",
            postal_code=str(_pick(rng, POSTAL_CODES)),
            language=_pick(rng, LANGUAGES),
            reachability=float(_pick(rng, r.reachability)),
            wrong_number=rng.random() < r.wrong_number,
            declines=rng.random() < r.declines,
            enrol_day=enrol,
            first_call_day=first_call,
            next_call_day=first_call,
        )

    def at(self, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(MONTH_START + timedelta(days=day - 1), time(hour, minute), UTC)

    def event(
        self, type_: str, patient: SimPatient, data: dict[str, Any], key: str, when: datetime
    ) -> CloudEvent:
        return new_event(
            type_, patient.id, data, id=f"demo:{patient.id}:{key}", source=SOURCE, time=when
        )

    # -- one day ----------------------------------------------------------------------------------

    def day(self, day: int, referrals: Iterable[ReferralTaskView] = ()) -> DayPlan:
        """What happens on `day` (1-based), given the open referral Tasks on the FHIR server."""
        plan = DayPlan(day)
        self.reached_today = []
        for mix in EVENT_MIX:
            if mix.event_type in INBOUND:
                plan.events.extend(mix.generate(self, day))
        if self.screening:
            plan.screenings = screenings(self, day)
            self.screened += plan.screenings
            plan.events += [
                self.event(
                    sc.ASSESSMENT_COMPLETED, self.by_id[s.patient],
                    {"questionnaire_response": s.reference}, f"assessment:{s.id}", s.authored,
                )
                for s in plan.screenings
            ]  # fmt: skip
        kafka_updates, plan.org_updates = self._organisations(day, list(referrals))
        plan.events.extend(kafka_updates)
        if day in self.rates.poison_days or (day == self.scale.days and not self._poisoned(day)):
            plan.poison.extend(self._poison(day))
        return plan

    def _poisoned(self, day: int) -> bool:
        return any(d < day for d in self.rates.poison_days)

    def _poison(self, day: int) -> list[tuple[bytes, bytes]]:
        """Messages a buggy upstream might send: they must go to the dead-letter topic."""
        p = self.patients[day % len(self.patients)]
        kinds = (
            b'{"specversion": "1.0", "id": "demo-bad-json", "type": ',  # truncated JSON
            new_event(  # a type the catalog does not have
                "carecoord.patient.teleported", p.id, {}, id=f"demo:poison:{day}:type",
                source=SOURCE, time=self.at(day, 12),
            ).to_json_bytes(),
            new_event(  # data failing the catalog schema (negative minutes)
                "carecoord.time.logged", p.id,
                {"program": p.program, "minutes": -5, "activity": "x", "by": p.care_manager,
                 "performed_at": self.at(day, 12).isoformat()},
                id=f"demo:poison:{day}:schema", source=SOURCE, time=self.at(day, 12),
            ).to_json_bytes(),
        )  # fmt: skip
        index = self.rates.poison_days.index(day) if day in self.rates.poison_days else 0
        return [(p.id.encode(), kinds[index % len(kinds)])]

    # -- the practice's own people ---------------------------------------------------------------

    def care_team(self, day: int, tasks: Iterable[CareTaskView]) -> list[OrgUpdate]:
        """The practice finishing its own Tasks on the FHIR server at the end of `day` (carecoord
        hears of it by notification): a care manager completes a TCM patient's interactive contact
        the day a call reaches them; 85 % of TCM patients have their face-to-face visit 3 to 12
        days after discharge; a provider answers a clinical question (from a call, or raised by a
        screening) one or two days after it was asked, by completing its clinical-review Task."""
        due: Counter[tuple[str, int]] = Counter(
            (p.id, asked + 1 + self.rng("answer", p.id).randint(0, 1))
            for p, asked, _ in self.questions
        )
        due.update(  # the questions a screening raised (the assessments handler asks them)
            (s.patient, s.day + 1 + self.rng("answer", s.id).randint(0, 1))
            for s in self.screened
            if s.positive and s.instrument != sc.HVS
        )
        updates: list[OrgUpdate] = []
        answered: Counter[str] = Counter()
        for task in sorted(tasks, key=lambda t: t.id):
            p = self.by_id.get(task.patient_id)
            if p is None:
                continue
            rng = self.rng("visit", p.id)
            if task.kind == "tcm-contact":
                done = p.reached_day == day
            elif task.kind == "tcm-visit":
                done = rng.random() < 0.85 and p.enrol_day + rng.randint(3, 12) == day
            else:  # one answer per patient's question, on the day the provider gets to it
                done = answered[p.id] < due[(p.id, day)]
                if done:
                    answered[p.id] += 1
            if done:
                updates.append(OrgUpdate(task.id, "completed"))
        return updates

    # -- community organisations ---------------------------------------------------------------

    def _organisations(
        self, day: int, referrals: list[ReferralTaskView]
    ) -> tuple[list[CloudEvent], list[OrgUpdate]]:
        """Organisations answer referrals a few days after they see them: accept 65 %, reject
        22 %, never answer 13 %; accepted work starts, then completes (80 %) or fails; the practice
        cancels some (the patient no longer needs it). Half the organisations update the Task on
        the FHIR server (carecoord hears of it by notification), half through the referral
        platform, which publishes `carecoord.referral.status-changed`."""
        events: list[CloudEvent] = []
        updates: list[OrgUpdate] = []
        for task in sorted(referrals, key=lambda t: t.key):
            seen = self.referrals_seen.get(task.key)
            if seen is None or seen[0] != task.status:
                self.referrals_seen[task.key] = (task.status, day)
                seen = (task.status, day)
            since = day - seen[1]
            rng = self.rng("referral", task.key, task.status)
            delay = rng.randint(1, 3)
            if since < delay:
                continue
            status: str | None = None
            reason: str | None = None
            r = rng.random()
            if task.status in ("requested", "received"):
                if r < 0.65:
                    status = "accepted"
                elif r < 0.87:
                    status, reason = (
                        "rejected",
                        rng.choice(
                            ("waiting list full", "outside our service area", "not eligible")
                        ),
                    )
            elif task.status == "accepted":
                if r < 0.08:
                    status, reason = "cancelled", "patient no longer needs the service"
                elif r < 0.95:
                    status = "in-progress"
            elif task.status == "in-progress":
                if r < 0.8:
                    status = "completed"
                elif r < 0.85:
                    status, reason = "failed", "could not reach the patient"
            if status is None:
                continue
            patient = self.by_id.get(task.patient_id)
            via_fhir = status != "cancelled" and self.rng("channel", task.key).random() < 0.5
            if via_fhir or patient is None:
                updates.append(OrgUpdate(task.id, status, reason))
                continue
            data: dict[str, Any] = {"task": f"Task/{task.id}", "status": status}
            if reason:
                data["reason"] = reason
            when = self.at(day, 16, len(events) % 60)
            events.append(
                self.event(
                    "carecoord.referral.status-changed",
                    patient,
                    data,
                    f"referral:{task.key}:{status}",
                    when,
                )
            )
        return events, updates


# ---------------------------------------------------------------------------------------------
# Generators: (sim, day) -> that day's events of one kind


def condition_refs(p: Any) -> list[str]:
    """The problems the EHR lists for the patient: CCM needs two or more chronic conditions
    (CMS), the other programs one. `condition_resources` writes them before the month starts."""
    n = 2 if p.program == "CCM" else 1
    return [f"Condition/{p.program.lower()}-dx{i}-{p.id}" for i in range(n)]


def condition_resources(sim: Simulator) -> list[dict[str, Any]]:
    """The EHR's Condition resources for every patient (written with PUT at known ids)."""
    out = []
    for p in sim.patients:
        for ref in condition_refs(p):
            out.append({
                "resourceType": "Condition", "id": ref.removeprefix("Condition/"),
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active"}]},
                "subject": {"reference": f"Patient/{p.id}"},
            })  # fmt: skip
    return out


def enrolments(sim: Simulator, day: int) -> list[CloudEvent]:
    out = []
    for p in sim.patients:
        if p.enrol_day != day:
            continue
        data: dict[str, Any] = {
            "program": p.program,
            "provider": p.provider,
            "start": (MONTH_START + timedelta(days=day - 1)).isoformat(),
            "conditions": condition_refs(p),
        }
        if p.consent == "given":  # documented at enrolment (CMS: before services start)
            data["consent"] = {"date": data["start"], "method": "verbal",
                               "recorded_by": p.care_manager}  # fmt: skip
        if p.named:
            data["care_manager"] = p.care_manager
        if p.program == "TCM":
            data["discharged_on"] = data["start"]  # extra field: the discharge date
        out.append(sim.event("carecoord.patient.enrolled", p, data, "enrolled", sim.at(day, 8)))
    return out


def _weekend(day: int) -> bool:
    return (MONTH_START + timedelta(days=day - 1)).weekday() >= 5


def outreach_calls(sim: Simulator, day: int) -> list[CloudEvent]:
    """The care managers' calls (weekdays; TCM follow-up calls on any day)."""
    out = []
    r = sim.rates
    for p in sim.patients:
        if p.next_call_day != day or p.reached_day or p.declined or p.disenrolled:
            continue
        if _weekend(day) and p.program != "TCM":
            p.next_call_day = day + 1
            continue
        rng = sim.rng("call", p.id, p.calls)
        p.calls += 1
        if p.wrong_number and p.calls == 1:
            outcome = "wrong-number"
        elif rng.random() < p.reachability:
            outcome = "declined" if p.declines else "answered"
        else:
            outcome = "voicemail" if rng.random() < r.voicemail else "no-answer"
        minute = rng.randint(0, 59)
        when = sim.at(day, 9 + rng.randint(0, 6), minute)
        who = p.care_manager
        data: dict[str, Any] = {
            "channel": "phone",
            "outcome": outcome,
            "attempted_at": when.isoformat(),
            "by": who,
            "duration_minutes": rng.randint(8, 25) if outcome == "answered" else 1,
        }
        out.append(sim.event("carecoord.outreach.attempted", p, data, f"call-{p.calls}", when))
        if outcome == "answered":
            p.reached_day = day
            sim.reached_today.append(p)
            extra = rng.randint(*r.extra_contacts)
            p.contacts = sorted(
                day + rng.randint(2, 12) for _ in range(extra) if day + 2 <= sim.scale.days
            )
        elif outcome == "declined":
            p.declined = True
            p.next_call_day = None
        elif p.calls >= r.max_calls:
            p.next_call_day = None
        else:  # wrong numbers are fixed within a few days; TCM is chased daily
            gap = 1 if p.program == "TCM" else rng.randint(2, 4)
            p.next_call_day = day + gap + (3 if outcome == "wrong-number" else 0)
    return out


def logged_time(sim: Simulator, day: int) -> list[CloudEvent]:
    """Care-management time: the call that reached the patient, then further contacts."""
    out = []
    for p in sim.patients:
        contacts = [("call", day)] if p.reached_day == day else []
        contacts += [("contact", d) for d in p.contacts if d == day]
        for n, (kind, _) in enumerate(contacts):
            if p.disenrolled:
                continue
            rng = sim.rng("time", p.id, day, n)
            low, high = CONTACT_MINUTES[p.program]
            when = sim.at(day, 11 + n)
            activity = "outreach call" if kind == "call" else rng.choice(
                ("medication review", "care-plan update", "coordination with specialist",
                 "symptom follow-up")
            )  # fmt: skip
            data = {
                "program": p.program,
                "minutes": rng.randint(low, high),
                "activity": activity,
                "by": p.care_manager,
                "performed_at": when.isoformat(),
            }
            out.append(sim.event("carecoord.time.logged", p, data, f"time-{day}-{n}", when))
    return out


def social_needs(sim: Simulator, day: int) -> list[CloudEvent]:
    """Screening on the call that reaches the patient (Gravity domains at realistic prevalence)."""
    out = []
    for p in sim.reached_today:
        rng = sim.rng("sdoh", p.id)
        for domain, prevalence in SDOH_PREVALENCE:
            if rng.random() >= prevalence or (sim.screening and domain == "food-insecurity"):
                continue
            when = sim.at(day, 13)
            data: dict[str, Any] = {
                "domain": domain,
                "postal_code": p.postal_code,
                "consent_to_contact": p.consent == "given",
            }
            if p.language:
                data["language"] = p.language
            out.append(sim.event("carecoord.sdoh.need-identified", p, data, f"sdoh-{domain}", when))
    return out


def patient_resources(sim: Simulator) -> list[dict[str, Any]]:
    """The EHR's Patient resources: a synthetic id and the postal code only (the assessments
    handler refers a positive SDOH screen to the organisations serving it). Written with PUT at
    known ids when screenings are simulated."""
    return [
        {"resourceType": "Patient", "id": p.id, "active": True,
         "address": [{"use": "home", "postalCode": p.postal_code}]}
        for p in sim.patients
    ]  # fmt: skip


def screenings(sim: Simulator, day: int) -> list[Screening]:
    """The practice's screening mix on the call that first reaches the patient this month, and a
    medication check-in on some later care-management contacts (`carecoord.demo.screens`)."""
    out = []
    for p in sim.reached_today:
        if p.disenrolled:
            continue
        for n, instrument in enumerate(sc.SCREENING_MIX):
            rng = sim.rng("screen", instrument, p.id)
            if rng.random() >= sc.share(sc.SCREENING_MIX[instrument], p.program):
                continue
            urgent = False
            if instrument == sc.PHQ9:
                answers, positive, urgent = sc.phq9(rng, p.program)
            elif instrument == sc.GAD7:
                answers, positive = sc.gad7(rng, p.program)
            else:
                answers, positive = sc.hunger_vital_sign(rng, p.program)
            out.append(Screening(
                f"{p.id}-{sc.SLUGS[instrument]}-{day}", instrument, p.id, p.care_manager, day,
                sim.at(day, 13, 5 * n), answers, positive, urgent,
            ))  # fmt: skip
    for p in sim.patients:
        if p.disenrolled or day not in p.contacts or p.reached_day == day:
            continue
        for n, contact in enumerate(p.contacts):
            rng = sim.rng("check-in", p.id, day, n)
            if contact != day or rng.random() >= sc.CHECK_IN_SHARE:
                continue
            answers, missed = sc.check_in(rng)
            out.append(Screening(
                f"{p.id}-{sc.SLUGS[sc.CHECK_IN]}-{day}-{n}", sc.CHECK_IN, p.id, p.care_manager,
                day, sim.at(day, 11 + n, 30), answers, missed,
            ))  # fmt: skip
    return out


def clinical_questions(sim: Simulator, day: int) -> list[CloudEvent]:
    out = []
    for p in sim.reached_today:
        rng = sim.rng("question", p.id)
        if rng.random() >= sim.rates.clinical_question:
            continue
        urgency = "urgent" if rng.random() < sim.rates.urgent_question else "routine"
        # the care manager on the call passes it on (and brings the answer back)
        data = {"question": rng.choice(QUESTIONS), "urgency": urgency, "raised_by": p.care_manager}
        event = sim.event("carecoord.clinical.question", p, data, "question", sim.at(day, 14))
        sim.questions.append((p, day, event.id))
        out.append(event)
    return out


# -- discharges, consent, disenrolments (skipped if not in the catalog) ----------------------


def discharges(sim: Simulator, day: int) -> list[CloudEvent]:
    """TCM patients' discharges (today TCM patients arrive as enrolments with `discharged_on`)."""
    return [
        sim.event(
            DISCHARGED, p,
            {"discharged_at": sim.at(day, 7).isoformat(), "facility": "springfield-general",
             "setting": "inpatient",
             "complexity": "high" if sim.rng("tcm", p.id).random() < 0.4 else "moderate"},
            "discharged", sim.at(day, 7),
        )
        for p in sim.patients
        if p.program == "TCM" and p.enrol_day == day
    ]  # fmt: skip


def consents(sim: Simulator, day: int) -> list[CloudEvent]:
    """Pending consents given during the month."""
    out = []
    for p in sim.patients:
        if p.consent != "pending":
            continue
        rng = sim.rng("consent", p.id)
        if rng.random() < sim.rates.consent_given_later and rng.randint(2, 28) == day:
            p.consent = "given"
            data = {"program": p.program, "method": "verbal", "recorded_by": p.care_manager,
                    "date": (MONTH_START + timedelta(days=day - 1)).isoformat()}  # fmt: skip
            out.append(sim.event(CONSENT, p, data, "consent", sim.at(day, 10)))
    return out


def disenrolments(sim: Simulator, day: int) -> list[CloudEvent]:
    out = []
    for p in sim.patients:
        rng = sim.rng("disenrol", p.id)
        if p.disenrolled or rng.random() >= sim.rates.disenrol or rng.randint(5, 28) != day:
            continue
        p.disenrolled = True
        data = {
            "program": p.program,
            "reason": rng.choice(("moved", "deceased", "patient-request")),
        }
        out.append(sim.event(DISENROLLED, p, data, "disenrolled", sim.at(day, 15)))
    return out


EVENT_MIX: tuple[Mix, ...] = (
    Mix("discharges", DISCHARGED, discharges),
    Mix(
        "enrolments (the panel on day 1, TCM on discharge)",
        "carecoord.patient.enrolled",
        enrolments,
    ),
    Mix("consent recorded", CONSENT, consents),
    Mix("outreach calls", "carecoord.outreach.attempted", outreach_calls),
    Mix("logged care-management time", "carecoord.time.logged", logged_time),
    Mix("social needs from screening", "carecoord.sdoh.need-identified", social_needs),
    Mix("clinical questions", "carecoord.clinical.question", clinical_questions),
    Mix("disenrolments", DISENROLLED, disenrolments),
)
