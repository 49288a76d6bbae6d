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
- [PFS-2026] CY 2026 PFS final rule, CMS-1832-F, 90 FR 49266-50481 (Nov 5 2025; govinfo FR Doc
  2025-19787), effective Jan 1 2026: RPM 99445 (device supply, 2-15 days of data in 30 days; not
  with 99454, 16-30 days) and 99470 (treatment management, first 10 minutes in a calendar month,
  at least one real-time interactive communication), as summarised by Rimidi (Nov 3 2025) and
  Prevounce (Dec 2 2025); APCM behavioural health add-ons G0568/G0569 (CoCM) and G0570 (general
  BHI), billed only with G0556-G0558 by the same practitioner in the same month, not with
  99484/99492-99494 (FairPath "APCM Behavioral Health Add-On Rule (2026)"; G0570's HCPCS 2026
  long descriptor: "per calendar month", no minimum time). Corrected by CMS-1832-F2, 91 FR
  12071-12082 (Mar 12 2026, FR Doc 2026-04797, typographical and technical errors; its text
  was not read with the research tool, so no change here is attributed to it).
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
    """A base code reached at `first_at` minutes, then an add-on code per `addon_every` more.
    `lead` is a shorter code billed instead of the base from `lead_at` minutes until `first_at`
    (RPM 99470 for 10-19 minutes, then 99457 in its place: the two are not billed together)."""

    first: str
    first_at: int
    addon: str | None = None
    addon_every: int = 0
    lead: str | None = None
    lead_at: int = 0


# Clinical staff time directed by the billing practitioner [MLN-CCM], [PFS-2022].
CCM_STAFF = Ladder("99490", 20, "99439", 20)
COMPLEX_CCM = Ladder("99487", 60, "99489", 30)
PCM_STAFF = Ladder("99426", 30, "99427", 30)
# Time personally spent by the physician / qualified health care professional [PFS-2022].
CCM_PRACTITIONER = Ladder("99491", 30, "99437", 30)
PCM_PRACTITIONER = Ladder("99424", 30, "99425", 30)
# RPM treatment management: clinical staff, physician or QHP time alike [RPM-2021].
RPM = Ladder("99457", 20, "99458", 20)
# From 2026: 99470 for the first 10 minutes (10-19 in the month), 99457 from 20 [PFS-2026].
RPM_2026 = Ladder("99457", 20, "99458", 20, lead="99470", lead_at=10)
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
    if ladder.lead and ladder.lead_at <= minutes < ladder.first_at:
        return [(ladder.lead, 1)]
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
    if ladder.lead and minutes < ladder.lead_at:
        return int(-(-(ladder.lead_at - minutes) // 1))
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


def next_code(ladder: Ladder, minutes: float) -> str | None:
    """The code `next_threshold`'s minutes lead to."""
    if ladder.lead and minutes < ladder.lead_at:
        return ladder.lead
    return ladder.first if minutes < ladder.first_at else ladder.addon


# ---------------------------------------------------------------------------------------------
# The CMS rules by date of service: one row per effective date, the month's (or the 30-day
# period's) date of service picks the row in force. A new PFS year is a new row, not a branch.

# RPM device supply and set-up (not time: days with readings, see billing/devices.py).
RPM_SETUP = "99453"  # once per episode of care (carecoord: the RPM enrolment)
RPM_DEVICE_16_30 = "99454"
RPM_DEVICE_2_15 = "99445"
RPM_PERIOD_DAYS = 30
# APCM behavioural health add-ons [PFS-2026]: G0568 CoCM first month, G0569 CoCM later months,
# G0570 general BHI; only with G0556-G0558 of the same practitioner and month, and never with
# the stand-alone BHI / CoCM codes.
APCM_BH_ADDONS = frozenset({"G0568", "G0569", "G0570"})
APCM_BH_EXCLUDED = frozenset({"99484", "99492", "99493", "99494"})
APCM_BH_GENERAL = "G0570"


@dataclass(frozen=True)
class RuleYear:
    """The CMS rules in force from `effective` until the next row's date."""

    effective: date
    rpm: Ladder  # RPM treatment management time
    device_tiers: tuple[tuple[int, str], ...]  # (minimum days with readings, code), most first
    apcm_bh_addons: bool  # G0568-G0570 exist
    source: str


RULE_YEARS: tuple[RuleYear, ...] = (
    # Before 2026: 99457/99458 from 20 minutes; 99454 needs 16 days in 30 [RPM-2021]; no
    # device code for fewer days, no APCM behavioural health add-ons.
    RuleYear(date(2025, 1, 1), RPM, ((16, RPM_DEVICE_16_30),), False, "RPM-2021, AAFP-APCM"),
    # CY 2026 PFS [PFS-2026]: 99470 (10 minutes), 99445 (2-15 days), G0568-G0570.
    RuleYear(
        date(2026, 1, 1),
        RPM_2026,
        ((16, RPM_DEVICE_16_30), (2, RPM_DEVICE_2_15)),
        True,
        "PFS-2026",
    ),
)


def rules_for(day: date) -> RuleYear:
    """The row in force on `day` (a day before the first row: the first row, carecoord's
    oldest rules, as billed before the table existed)."""
    current = RULE_YEARS[0]
    for row in RULE_YEARS:
        if row.effective <= day:
            current = row
    return current


def device_code(days: int, year: RuleYear) -> str | None:
    """The device-supply code of a 30-day period with readings on `days` distinct days."""
    return next((code for least, code in year.device_tiers if days >= least), None)


def days_to_device_code(days: int, year: RuleYear) -> tuple[int, str] | None:
    """(days still needed, code) for the period's next device-supply code; None: at the top."""
    for least, code in sorted(year.device_tiers):
        if days < least:
            return least - days, code
    return None


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
    program: str,
    entries: Sequence[TimeEntry],
    practitioner: str | None,
    rules: Rules,
    year: RuleYear | None = None,
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
        ladder = (year or RULE_YEARS[0]).rpm
        return _ladder_charges(program, ladder, entries, practitioner, rules)
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
    """Every code one patient's month bills, given all the month's time entries (any program),
    under the rules in force that month (`rules_for` the first entry's date)."""
    by_group: dict[tuple[str, str | None], list[TimeEntry]] = {}
    entries = list(entries)
    year = rules_for(min(e.performed for e in entries)) if entries else RULE_YEARS[0]
    for entry in entries:
        enrolment = enrolments.get(entry.program)
        if excluded_reason(entry, enrolment, rules) is not None:
            continue
        assert enrolment is not None
        practitioner = entry.billing_practitioner or enrolment.provider
        by_group.setdefault((entry.program, practitioner), []).append(entry)
    charges: list[Charge] = []
    apcm_by = {practitioner for program, practitioner in by_group if program == "APCM"}
    for (program, practitioner), group in sorted(by_group.items(), key=lambda kv: str(kv[0])):
        if program == "BHI" and year.apcm_bh_addons and practitioner in apcm_by:
            # The practitioner bills APCM this month: general BHI is its add-on G0570 (per
            # calendar month, no minimum time in its descriptor) in place of 99484 [PFS-2026].
            ids = tuple(sorted(e.event_id for e in group))
            total = sum(e.minutes for e in group)
            charges.append(Charge(program, APCM_BH_GENERAL, 1, practitioner, total, ids))
            continue
        if program == "APCM":
            enrolment = enrolments[program]
            code = apcm_code(enrolment.conditions, any(e.qmb for e in group))
            ids = tuple(sorted(e.event_id for e in group))
            total = sum(e.minutes for e in group)
            charges.append(Charge(program, code, 1, practitioner, total, ids))
            continue
        charges += _program_charges(program, group, practitioner, rules, year)
    return apcm_addon_rules(_exclusive(charges, rules))


def apcm_addon_rules(charges: list[Charge]) -> list[Charge]:
    """APCM behavioural health add-ons [PFS-2026]: an add-on without an APCM code of the same
    practitioner is dropped; with one, the stand-alone BHI/CoCM codes of that practitioner are."""
    apcm_by = {c.practitioner for c in charges if c.cpt in APCM_CODES}
    addon_by = {
        c.practitioner for c in charges if c.cpt in APCM_BH_ADDONS and c.practitioner in apcm_by
    }
    return [
        c
        for c in charges
        if not (c.cpt in APCM_BH_ADDONS and c.practitioner not in apcm_by)
        and not (c.cpt in APCM_BH_EXCLUDED and c.practitioner in addon_by)
    ]


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
    program: str, role: Role = "clinical-staff", complex_: bool = False, day: date | None = None
) -> Ladder | None:
    """The ladder a program's time climbs (for the worklist's minutes-to-next-threshold), under
    the rules in force on `day` (default: the oldest row)."""
    if program == "CCM":
        if complex_:
            return COMPLEX_CCM
        return CCM_PRACTITIONER if role == "practitioner" else CCM_STAFF
    if program == "PCM":
        return PCM_PRACTITIONER if role == "practitioner" else PCM_STAFF
    rpm = (rules_for(day) if day is not None else RULE_YEARS[0]).rpm
    return {"RPM": rpm, "BHI": BHI}.get(program)
