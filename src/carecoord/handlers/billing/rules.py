"""Medicare program rules for care-management time: which codes a patient's month bills, and how
many units. Pure: no FHIR, no I/O. The billing handler (billing/handler.py) reads the
month's time entries and the patient's programs from FHIR, asks `month_charges` what the month
bills, and reconciles its ChargeItems (one per code and month, quantity = units) with the answer.

Every rule names its source; docs/billing-rules.md has the table. Sources:
- [MLN-CCM] CMS MLN Booklet "Chronic Care Management Services", MLN909188 (Sept 2022, May 2024).
- [PFS-2022] CY 2022 PFS final rule, 86 FR 64996 (Nov 19 2021): 99439, 99437, 99424-99427.
- [REGENCE] Regence reimbursement policy 122 "Chronic Care Management Services" (99439 "cannot
  be billed more than twice per calendar month"; complex and non-complex CCM not both a month).
- [AAFP-APCM] AAFP "Using Advanced Primary Care Management Services Codes G0556, G0557 and
  G0558" (the codes bundled into APCM, from the CY 2025 PFS final rule).
- [AAFP-BHI] AAFP "Behavioral health integration (BHI) services" (BHI may be billed in the same
  month as CCM or TCM; time counted for one service not counted for another).
- [RPM-2021] CY 2021 PFS final rule as summarised by Foley & Lardner, "2021 Remote Patient
  Monitoring FAQs: CMS Issues Final Rule" (99457 requires interactive communication in the month).
Where a source could not be found with the research tool the docs table says so; the default
is then configurable (BillingConfig).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from carecoord.handlers.care.model import DEFAULT_CONSENT_REQUIRED

Role = Literal["clinical-staff", "practitioner"]


@dataclass(frozen=True)
class Ladder:
    """A base code reached at `first_at` minutes, then an add-on code per `addon_every` more."""

    first: str
    first_at: int
    addon: str | None = None
    addon_every: int = 0


# Clinical staff time directed by the billing practitioner [MLN-CCM], [PFS-2022].
CCM_STAFF = Ladder("99490", 20, "99439", 20)
COMPLEX_CCM = Ladder("99487", 60, "99489", 30)
PCM_STAFF = Ladder("99426", 30, "99427", 30)
# Time personally spent by the physician / qualified health care professional [PFS-2022].
CCM_PRACTITIONER = Ladder("99491", 30, "99437", 30)
PCM_PRACTITIONER = Ladder("99424", 30, "99425", 30)
# RPM treatment management: clinical staff, physician or QHP time alike [RPM-2021].
RPM = Ladder("99457", 20, "99458", 20)
# General BHI: at least 20 minutes of clinical staff time a month; no add-on code.
BHI = Ladder("99484", 20)

# Add-on units a month. 99439: CMS allows 2 [MLN-CCM], [REGENCE]. 99427 and 99458: 2, the
# limit payers apply (no CMS statement found with the research tool; see the docs table).
# 99437, 99425, 99489: no monthly cap found in CPT/CMS sources with the tool: uncapped unless
# configured.
DEFAULT_ADDON_LIMITS: dict[str, int] = {"99439": 2, "99427": 2, "99458": 2}

# Programs one billing practitioner cannot bill for the same patient in the same month [MLN-CCM]
# (CCM and PCM; a different practitioner may bill the other).
DEFAULT_EXCLUSIVE: tuple[tuple[str, ...], ...] = (("CCM", "PCM"),)

# Codes not separately billable by the practitioner who bills APCM that month [AAFP-APCM].
APCM_CODES = frozenset({"G0556", "G0557", "G0558"})
APCM_BUNDLED = frozenset(
    {
        "99424", "99425", "99426", "99427",  # PCM
        "99487", "99489", "99490", "99491", "99437", "99439",  # CCM
        "99495", "99496",  # TCM
    }
)  # fmt: skip

# Chronic conditions the care plan must address: CCM two or more, PCM one (single high-risk
# condition) [MLN-CCM]; BHI a behavioral health condition.
DEFAULT_MIN_CONDITIONS: dict[str, int] = {"CCM": 2, "PCM": 1, "BHI": 1}

# Which program wins when exclusive programs both reach a threshold for one practitioner and
# month: CMS does not say; carecoord bills the one with more billable minutes, ties in this order.
PROGRAM_PRIORITY = ("APCM", "CCM", "PCM", "BHI", "RPM", "TCM")


def units_reached(
    ladder: Ladder, minutes: float, addon_limits: Mapping[str, int] | None = None
) -> list[tuple[str, int]]:
    """Every (CPT, unit) a month total of `minutes` has reached, in order."""
    if minutes < ladder.first_at:
        return []
    out = [(ladder.first, 1)]
    if ladder.addon and ladder.addon_every > 0:
        extra = int((minutes - ladder.first_at) // ladder.addon_every)
        limit = (addon_limits or {}).get(ladder.addon)
        if limit is not None:
            extra = min(extra, limit)
        out.extend((ladder.addon, unit) for unit in range(1, extra + 1))
    return out


def next_threshold(ladder: Ladder, minutes: float, addon_limits: Mapping[str, int]) -> int | None:
    """Minutes still needed for the next unit (None: nothing more can be billed this month)."""
    if minutes < ladder.first_at:
        return int(-(-(ladder.first_at - minutes) // 1))
    if not ladder.addon or ladder.addon_every <= 0:
        return None
    units = int((minutes - ladder.first_at) // ladder.addon_every)
    limit = addon_limits.get(ladder.addon)
    if limit is not None and units >= limit:
        return None
    goal = ladder.first_at + (units + 1) * ladder.addon_every
    return int(-(-(goal - minutes) // 1))


@dataclass(frozen=True)
class TimeEntry:
    """One logged stretch of time, as the billing handler reads it back."""

    event_id: str
    program: str
    performed: date
    minutes: float
    role: Role = "clinical-staff"
    complex: bool | None = None
    billing_practitioner: str | None = None
    interactive: bool = False
    qmb: bool = False
    by: str | None = None


@dataclass(frozen=True)
class Enrolment:
    """What the rules need to know about a patient's program: consent, end, conditions."""

    program: str
    consent_from: date | None = None  # consent date; None: no consent recorded
    ends: date | None = None  # disenrolment effective date (last day billable)
    conditions: int = 0
    provider: str | None = None  # default billing practitioner


@dataclass(frozen=True)
class Rules:
    addon_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_ADDON_LIMITS))
    exclusive: Sequence[Sequence[str]] = DEFAULT_EXCLUSIVE
    consent_required: Sequence[str] = DEFAULT_CONSENT_REQUIRED
    min_conditions: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_CONDITIONS))
    complex_default: bool = False
    rpm_requires_interaction: bool = True
    apcm_bundles: bool = True


@dataclass(frozen=True)
class Charge:
    """A code the month bills: `units` of `cpt` for `program`, billed by `practitioner`."""

    program: str
    cpt: str
    units: int
    practitioner: str | None
    minutes: float
    entries: tuple[str, ...]  # event ids of the entries that count towards it


def excluded_reason(entry: TimeEntry, enrolment: Enrolment | None, rules: Rules) -> str | None:
    """Why an entry is not billable at all (None: it counts)."""
    if enrolment is None:
        return "not-enrolled"
    if entry.program in rules.consent_required and (
        enrolment.consent_from is None or entry.performed < enrolment.consent_from
    ):
        return "no-consent"
    if enrolment.ends is not None and entry.performed > enrolment.ends:
        return "disenrolled"
    if enrolment.conditions < rules.min_conditions.get(entry.program, 0):
        return "ineligible-conditions"
    return None


def _ladder_charges(
    program: str,
    ladder: Ladder,
    entries: Sequence[TimeEntry],
    practitioner: str | None,
    rules: Rules,
) -> list[Charge]:
    total = sum(e.minutes for e in entries)
    units: dict[str, int] = {}
    for cpt, _ in units_reached(ladder, total, rules.addon_limits):
        units[cpt] = units.get(cpt, 0) + 1
    ids = tuple(sorted(e.event_id for e in entries))
    return [Charge(program, cpt, n, practitioner, total, ids) for cpt, n in units.items()]


def _program_charges(
    program: str, entries: Sequence[TimeEntry], practitioner: str | None, rules: Rules
) -> list[Charge]:
    staff = [e for e in entries if e.role == "clinical-staff"]
    personal = [e for e in entries if e.role == "practitioner"]
    if program == "CCM":
        # One CCM family a month (CPT; [REGENCE] for complex vs non-complex): complex CCM when
        # the month is flagged complex and staff time reaches 60 minutes; else practitioner time
        # (99491) once it reaches 30; else clinical staff time (99490).
        flags = [e.complex for e in entries if e.complex is not None]
        is_complex = flags[-1] if flags else rules.complex_default
        if is_complex and sum(e.minutes for e in staff) >= COMPLEX_CCM.first_at:
            return _ladder_charges(program, COMPLEX_CCM, staff, practitioner, rules)
        if sum(e.minutes for e in personal) >= CCM_PRACTITIONER.first_at:
            return _ladder_charges(program, CCM_PRACTITIONER, personal, practitioner, rules)
        return _ladder_charges(program, CCM_STAFF, staff, practitioner, rules)
    if program == "PCM":
        if sum(e.minutes for e in personal) >= PCM_PRACTITIONER.first_at:
            return _ladder_charges(program, PCM_PRACTITIONER, personal, practitioner, rules)
        return _ladder_charges(program, PCM_STAFF, staff, practitioner, rules)
    if program == "RPM":
        if rules.rpm_requires_interaction and not any(e.interactive for e in entries):
            return []
        return _ladder_charges(program, RPM, entries, practitioner, rules)
    if program == "BHI":
        return _ladder_charges(program, BHI, entries, practitioner, rules)
    if program == "APCM":
        # Not time-based: one code a month by level (G0558 for a QMB, G0557 for two or more
        # chronic conditions, else G0556) [AAFP-APCM]; the level is decided by the caller.
        return []
    return []  # TCM time is billed by the episode (carecoord.handlers.programs.tcm), not by minutes


def apcm_code(conditions: int, qmb: bool) -> str:
    """The APCM level [AAFP-APCM]: G0556 (0-1 chronic conditions), G0557 (2+), G0558 (2+, QMB)."""
    if conditions >= 2:
        return "G0558" if qmb else "G0557"
    return "G0556"


def month_charges(
    entries: Iterable[TimeEntry],
    enrolments: Mapping[str, Enrolment],
    rules: Rules,
) -> list[Charge]:
    """Every code one patient's month bills, given all the month's time entries (any program)."""
    by_group: dict[tuple[str, str | None], list[TimeEntry]] = {}
    for entry in entries:
        enrolment = enrolments.get(entry.program)
        if excluded_reason(entry, enrolment, rules) is not None:
            continue
        assert enrolment is not None
        practitioner = entry.billing_practitioner or enrolment.provider
        by_group.setdefault((entry.program, practitioner), []).append(entry)
    charges: list[Charge] = []
    for (program, practitioner), group in sorted(by_group.items(), key=lambda kv: str(kv[0])):
        if program == "APCM":
            enrolment = enrolments[program]
            code = apcm_code(enrolment.conditions, any(e.qmb for e in group))
            ids = tuple(sorted(e.event_id for e in group))
            total = sum(e.minutes for e in group)
            charges.append(Charge(program, code, 1, practitioner, total, ids))
            continue
        charges += _program_charges(program, group, practitioner, rules)
    return _exclusive(charges, rules)


def _exclusive(charges: list[Charge], rules: Rules) -> list[Charge]:
    """Per billing practitioner: one program of each exclusive group, and nothing APCM bundles."""
    kept = list(charges)
    practitioners = {c.practitioner for c in kept}
    for practitioner in practitioners:
        mine = [c for c in kept if c.practitioner == practitioner]
        drop: set[str] = set()
        for group in rules.exclusive:
            programs = {c.program: c.minutes for c in mine if c.program in group}
            if len(programs) > 1:
                winner = max(
                    programs, key=lambda p: (programs[p], -_priority(p))
                )  # more minutes, then priority
                drop |= {p for p in programs if p != winner}
        apcm = rules.apcm_bundles and any(c.cpt in APCM_CODES for c in mine)
        kept = [
            c
            for c in kept
            if c.practitioner != practitioner
            or (c.program not in drop and not (apcm and c.cpt in APCM_BUNDLED))
        ]
    return sorted(kept, key=lambda c: (c.program, c.cpt))


def _priority(program: str) -> int:
    return PROGRAM_PRIORITY.index(program) if program in PROGRAM_PRIORITY else len(PROGRAM_PRIORITY)


def ladder_for(
    program: str, role: Role = "clinical-staff", complex_: bool = False
) -> Ladder | None:
    """The ladder a program's time climbs (for the worklist's minutes-to-next-threshold)."""
    if program == "CCM":
        if complex_:
            return COMPLEX_CCM
        return CCM_PRACTITIONER if role == "practitioner" else CCM_STAFF
    if program == "PCM":
        return PCM_PRACTITIONER if role == "practitioner" else PCM_STAFF
    return {"RPM": RPM, "BHI": BHI}.get(program)
