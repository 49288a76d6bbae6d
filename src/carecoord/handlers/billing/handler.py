"""Billable care-management time, within Medicare's program rules.

carecoord.time.logged -> one ChargeItem per time entry (status not-billable, code carecoord
care-management-time, quantity in minutes, the program, role and flags in extensions; identifier =
the event id) and, for the patient's calendar month, ONE ChargeItem per billing code (status
billable, identifier patient:program:YYYY-MM:code, `quantity` = units, updated as units accrue)
plus carecoord.billing.threshold-reached for each unit newly reached.

What the month bills is decided by carecoord.handlers.billing.rules (sources there and in
docs/billing-rules.md), from all the month's entries, under the CMS rules in force that month
(rules.RULE_YEARS, keyed by effective date: a 2025 month by the 2025 rules, a 2026 month by the
CY 2026 PFS final rule, e.g. RPM 99470 at 10 minutes and the APCM add-on G0570 in place of 99484):
- clinical staff time and practitioner time climb their own codes (CCM 99490/99439 vs
  99491/99437, PCM 99426/99427 vs 99424/99425); complex CCM (99487/99489) is decided per patient
  and month (`complex` on an entry; `complex_ccm` is only the default); BHI 99484; RPM
  99457/99458 only with an interactive communication in the month; APCM G0556-G0558;
- add-on caps (`addon_limits`, default 99439/99427/99458: 2 a month);
- nothing without consent (time before the consent date is kept, not billed), after the
  disenrolment date, or with fewer chronic conditions than the program needs;
- CCM and PCM are exclusive per billing practitioner and month (the one with more minutes is
  billed); APCM bundles CCM, PCM and TCM codes of the same practitioner.
A code the month no longer bills (e.g. 99490 once the month became complex CCM) is set to
not-billable with a note, never deleted.

Minutes never count twice: a duplicate time.logged (same event id) finds its entry and adds
nothing, re-announcing the units it crossed under the same ids; an entry counts toward exactly
the program it names. The month is the calendar month of `performed_at` in its own offset.

carecoord.rpm.reading (RPM device supply from readings: 99454 / 99445, 99453) is the same
handler's other route, in billing/devices.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.resource import Resource

from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import finish, instant
from carecoord.caremodel.identifiers import (
    add_create,
    business_identifier_json,
    carecoord_identifier,
    identifier_system,
    identifier_value,
)
from carecoord.core.catalog import BillingThresholdReached, TimeLogged
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.fhir.models import revised, to_json
from carecoord.fhir.reading import as_json, element, field, items
from carecoord.handlers.billing import devices
from carecoord.handlers.billing.config import CHARGE_ITEM_ID as CHARGE_ITEM_ID
from carecoord.handlers.billing.config import LADDERS, BillingConfig
from carecoord.handlers.billing.config import PROGRAM_EXTENSION as PROGRAM_EXTENSION
from carecoord.handlers.billing.reads import MonthReads
from carecoord.handlers.billing.rules import (
    COMPLEX_CCM,
    Charge,
    Enrolment,
    Ladder,
    TimeEntry,
    excluded_reason,
    month_charges,
    units_reached,
)
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.model import Month, as_date, reference_str, referring, version_of

__all__ = ["COMPLEX_CCM", "HANDLERS", "LADDERS", "BillingConfig", "Ladder", "units_reached"]

log = logging.getLogger(__name__)

TIME_LOGGED = TimeLogged.event_type
THRESHOLD_REACHED = BillingThresholdReached.event_type
TIME_ENTRY_ID = identifier_system("time-entry")
# On a billed ChargeItem: the month's total minutes of the code's program when last updated.
TOTAL_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/care-minutes-total"
# On a time entry: its role, flags, and the units it crossed ("99490:1"), for re-announcing.
ENTRY_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/time-entry-"
_PRACTITIONER_PREFIXES = ("Practitioner/", "PractitionerRole/")

CODE_PROGRAM: dict[str, str] = {
    **{c: "CCM" for c in ("99490", "99439", "99487", "99489", "99491", "99437")},
    **{c: "PCM" for c in ("99424", "99425", "99426", "99427")},
    **{c: "RPM" for c in ("99457", "99458", "99470")},
    **{c: "BHI" for c in ("99484", "G0568", "G0569", "G0570")},
    **{c: "APCM" for c in ("G0556", "G0557", "G0558")},
    **{c: "TCM" for c in ("99495", "99496")},
}
_CODE_SYSTEMS = (t.CPT, t.HCPCS)


def month_label(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def threshold_value(patient_id: str, program: str, month: str, cpt: str, unit: int) -> str:
    """The id key of one unit's announcement (carecoord.billing.threshold-reached)."""
    return identifier_value(patient_id, program, month, cpt, str(unit))


# ---------------------------------------------------------------------------------------------
# Reading back


@dataclass(frozen=True)
class Entry:
    id: str | None
    event_id: str
    program: str
    month: str
    minutes: float
    time: TimeEntry | None = None
    crossed: tuple[str, ...] = ()


def _ext(item: Any, name: str) -> Any:
    for e in items(element(item, "extension")):
        if field(e, "url") == ENTRY_EXTENSION + name:
            for attr in ("valueBoolean", "valueCode", "valueString", "valueReference"):
                value = field(e, attr)
                if value is not None:
                    return field(value, "reference") if attr == "valueReference" else value
    return None


def _entry_of(item: Any) -> Entry | None:
    found = carecoord_identifier(item)
    if found is None or found[0] != TIME_ENTRY_ID or element(item, "status") == "entered-in-error":
        return None
    extensions = items(element(item, "extension"))
    program = next(
        (
            field(field(e, "valueCoding"), "code")
            for e in extensions
            if field(e, "url") == PROGRAM_EXTENSION and field(e, "valueCoding") is not None
        ),
        None,
    )
    day = as_date(element(item, "occurrenceDateTime"))
    qty = field(element(item, "quantity"), "value")
    if not program or day is None or qty is None:
        return None
    performer = next(
        (
            reference_str(field(p, "actor"))
            for p in items(element(item, "performer"))
            if field(p, "actor") is not None
        ),
        None,
    )
    role = _ext(item, "role") or "clinical-staff"
    entry = TimeEntry(
        event_id=found[1],
        program=str(program),
        performed=day,
        minutes=float(qty),
        role="practitioner" if role == "practitioner" else "clinical-staff",
        complex=_ext(item, "complex"),
        billing_practitioner=_ext(item, "billing-practitioner"),
        interactive=bool(_ext(item, "interactive")),
        qmb=bool(_ext(item, "qmb")),
        by=performer,
    )
    crossed = tuple(
        str(field(e, "valueString"))
        for e in extensions
        if field(e, "url") == ENTRY_EXTENSION + "crossed" and field(e, "valueString")
    )
    return Entry(item.id, found[1], str(program), month_label(day), float(qty), entry, crossed)


@dataclass(frozen=True)
class LoggedTime:
    """A time entry as the worklist counts it: `billed` is False when it was recorded as not
    billable (e.g. before consent)."""

    program: str
    month: str
    role: str
    minutes: float
    billed: bool


def charge_entries(found: Sequence[Any], patient: str) -> list[LoggedTime]:
    """The patient's time entries among ChargeItems (re-filtered: type, subject)."""
    out: list[LoggedTime] = []
    for item in referring(found, "ChargeItem", "subject", patient):
        entry = _entry_of(item)
        if entry is None or entry.time is None:
            continue
        billed = _ext(item, "not-billed") is None
        out.append(LoggedTime(entry.program, entry.month, entry.time.role, entry.minutes, billed))
    return out


def _billed(item: Any) -> tuple[str, str, str] | None:
    """(program, month, code) of a billing-code ChargeItem, or None."""
    found = carecoord_identifier(item)
    if found is None or found[0] != CHARGE_ITEM_ID or element(item, "status") == "entered-in-error":
        return None
    cpt = next(
        (
            field(c, "code")
            for c in items(field(element(item, "code"), "coding"))
            if field(c, "system") in _CODE_SYSTEMS
        ),
        None,
    )
    day = as_date(field(element(item, "occurrencePeriod"), "start"))
    if cpt not in CODE_PROGRAM or day is None:
        return None
    return CODE_PROGRAM[str(cpt)], month_label(day), str(cpt)


# ---------------------------------------------------------------------------------------------
# The handler


handlers = Handlers(
    "billing",
    config=BillingConfig,
    description="Accumulate care-management time; bill the month's codes under CMS rules",
)


@handlers.on(TimeLogged)
def handle_time_logged(d: Delivery[TimeLogged, BillingConfig]) -> Effects:
    rules = d.config.rules()
    patient = d.patient
    day = d.data.performed_at.date()
    month = month_label(day)
    entry_value = identifier_value(d.event.id)

    reads = MonthReads(d.fhir, d.patient_id, day)  # one round trip where the server batches
    items = reads.charge_items
    entries = [e for e in (_entry_of(i) for i in items) if e is not None]
    billed = {b: i for i in items if (b := _billed(i)) is not None}
    fx = Effects()

    mine = next((e for e in entries if e.event_id == entry_value), None)
    if mine is not None:  # a duplicate: nothing new; announce again what this entry crossed
        for label in mine.crossed:
            cpt, _, unit = label.partition(":")
            program = CODE_PROGRAM.get(cpt, mine.program)
            item = billed.get((program, mine.month, cpt))
            if item is not None and unit.isdigit():
                _emit(fx, d.patient_id, item, program, mine.month, cpt, int(unit), None)
        log.info("duplicate time entry ignored")
        return fx

    states = reads.states()
    enrolments = {
        program: Enrolment(
            program=program,
            consent_from=s.consent_from,
            ends=s.ends,
            conditions=len(s.conditions),
            provider=s.provider or d.config.billing_practitioner,
        )
        for program, s in states.items()
        if s.plan is not None
    }
    this = TimeEntry(
        event_id=entry_value,
        program=d.data.program,
        performed=day,
        minutes=d.data.minutes,
        role=d.data.role,
        complex=d.data.complex,
        billing_practitioner=d.data.billing_practitioner,
        interactive=d.data.interactive,
        qmb=d.data.qmb,
        by=d.data.by if d.data.by.startswith(_PRACTITIONER_PREFIXES) else None,
    )
    month_entries = [e.time for e in entries if e.month == month and e.time is not None]
    month_entries.append(this)
    if any(e.program == "RPM" for e in month_entries) and reads.interaction_in_month():
        month_entries = [
            replace(e, interactive=True) if e.program == "RPM" else e for e in month_entries
        ]
    charges = month_charges(month_entries, enrolments, rules)

    crossed: list[tuple[Charge, int]] = []
    current: dict[tuple[str, str], Any] = {
        (p, c): i for (p, m, c), i in billed.items() if m == month
    }
    for charge in charges:
        item = current.get((charge.program, charge.cpt))
        billed_units = _billable_units(item)
        before = int(billed_units) if billed_units is not None else 0
        crossed += [(charge, unit) for unit in range(before + 1, charge.units + 1)]
    reason = excluded_reason(this, enrolments.get(d.data.program), rules)
    entry_ref = add_create(fx, _entry(d.event.id, patient, d.data, crossed, reason))
    entry_refs = {e.event_id: f"ChargeItem/{e.id}" for e in entries if e.id}
    entry_refs[entry_value] = entry_ref

    for charge in charges:
        item = current.get((charge.program, charge.cpt))
        state = states.get(charge.program)
        conditions = state.conditions if state is not None else ()
        body = _charge_json(
            d.patient_id,
            month,
            day,
            charge,
            month_entries,
            entry_refs,
            conditions,
            d.ctx,
            d.event,
            reads,
        )
        if item is None:
            resource = finish(ChargeItem, body, "R4")
            add_create(fx, resource)
        else:
            quantity = field(element(item, "quantity"), "value")
            if (
                element(item, "status") == "billable"
                and quantity == charge.units
                and entry_value not in charge.entries
            ):
                continue
            body["id"] = item.id
            body["meta"] = {"versionId": version_of(item)} if version_of(item) else None
            resource = finish(ChargeItem, body, "R4")
            fx.update(resource, version_of(item))
        for c, n in crossed:
            if c is charge:
                _emit(fx, d.patient_id, resource if item is None else item, charge.program, month,
                      charge.cpt, n, charge.minutes)  # fmt: skip
    wanted = {(c.program, c.cpt) for c in charges}
    for key, item in current.items():
        if key not in wanted and element(item, "status") == "billable":
            body = to_json(item)
            body["status"] = "not-billable"
            body["note"] = [
                *(body.get("note") or []),
                {"text": "No longer billable this month under the program rules"},
            ]
            fx.update(revised(item, body), version_of(item))
    if reason is not None:
        log.info("time recorded, not billable", extra={"reason": reason})
    return fx


def _billable_units(item: Any) -> Any:
    """The quantity of a stored ChargeItem that is billable (read as JSON), else None."""
    if item is None or element(item, "status") != "billable":
        return None
    return field(element(item, "quantity"), "value")


def _condition_codes(reads: MonthReads, conditions: Sequence[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ref in conditions:
        condition = reads.condition(ref)
        if condition is None:
            continue
        code = element(condition, "code")
        if code is not None:
            out.append(as_json(code))
    return out


def _charge_json(
    pid: str,
    month: str,
    day: date,
    charge: Charge,
    entries: Sequence[TimeEntry],
    entry_refs: Mapping[str, str],
    conditions: Sequence[str],
    ctx: HandlerContext,
    event: CloudEvent,
    reads: MonthReads,
) -> dict[str, Any]:
    first = Month.of(day)
    counted = [e for e in entries if e.event_id in set(charge.entries)]
    performers: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for e in counted:
        if e.by and (e.by, e.role) not in seen:
            seen.add((e.by, e.role))
            function = (
                t.PERFORMER_PRACTITIONER if e.role == "practitioner" else t.PERFORMER_CLINICAL_STAFF
            )
            performers.append({"function": function.concept_json(), "actor": {"reference": e.by}})
    if charge.practitioner and charge.practitioner.startswith(_PRACTITIONER_PREFIXES):
        performers.append(
            {
                "function": t.PERFORMER_BILLING.concept_json(),
                "actor": {"reference": charge.practitioner},
            }
        )
    enterer = next((e.by for e in reversed(counted) if e.by), None)
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": [
            business_identifier_json("charge-item", pid, charge.program, month, charge.cpt)
        ],
        "extension": [
            {"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS[charge.program].json()},
            {"url": TOTAL_EXTENSION, "valueDecimal": charge.minutes},
        ],
        "status": "billable",
        "code": t.BILLING_CODES[charge.cpt].concept_json(),
        "subject": {"reference": f"Patient/{pid}"},
        "occurrencePeriod": {"start": first.start.isoformat(), "end": first.end.isoformat()},
        "quantity": {"value": charge.units},
        "performer": performers or None,
        "enterer": {"reference": enterer} if enterer else None,
        "enteredDate": (event.time or ctx.now()).isoformat(),
        "reason": _condition_codes(reads, conditions) or None,
        "supportingInformation": [
            *({"reference": entry_refs[i]} for i in charge.entries if i in entry_refs),
            *({"reference": c} for c in conditions),
        ],
    }
    return {k: v for k, v in body.items() if v is not None}


def _entry(
    event_id: str,
    patient: str,
    data: TimeLogged,
    crossed: Sequence[tuple[Charge, int]],
    reason: str | None,
) -> Resource:
    program = t.PROGRAMS[data.program]
    extensions: list[dict[str, Any]] = [
        {"url": PROGRAM_EXTENSION, "valueCoding": program.json()},
        {"url": ENTRY_EXTENSION + "role", "valueCode": data.role},
    ]
    if data.complex is not None:
        extensions.append({"url": ENTRY_EXTENSION + "complex", "valueBoolean": data.complex})
    if data.billing_practitioner:
        extensions.append(
            {
                "url": ENTRY_EXTENSION + "billing-practitioner",
                "valueReference": {"reference": data.billing_practitioner},
            }
        )
    if data.interactive:
        extensions.append({"url": ENTRY_EXTENSION + "interactive", "valueBoolean": True})
    if data.qmb:
        extensions.append({"url": ENTRY_EXTENSION + "qmb", "valueBoolean": True})
    if reason:
        extensions.append({"url": ENTRY_EXTENSION + "not-billed", "valueCode": reason})
    extensions += [
        {"url": ENTRY_EXTENSION + "crossed", "valueString": f"{c.cpt}:{unit}"}
        for c, unit in crossed
    ]
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": [business_identifier_json("time-entry", event_id)],
        "extension": extensions,
        "status": "not-billable",
        "code": t.CARE_MANAGEMENT_TIME.concept_json(),
        "subject": {"reference": patient},
        "occurrenceDateTime": instant(data.performed_at),
        "quantity": {"value": data.minutes, "unit": "min", "system": t.UCUM, "code": "min"},
    }
    if data.by.startswith(_PRACTITIONER_PREFIXES):
        body["performer"] = [{"actor": {"reference": data.by}}]
    return finish(ChargeItem, body, "R4")


def _emit(
    fx: Effects,
    pid: str,
    item: Any,
    program: str,
    month: str,
    cpt: str,
    unit: int,
    total: float | None,
) -> None:
    ident = carecoord_identifier(item)
    if ident is None:
        return
    data: dict[str, Any] = {
        "program": program,
        "month": month,
        "cpt": cpt,
        "unit": unit,
        "charge_item_identifier": f"{ident[0]}|{ident[1]}",
    }
    if item.id:
        data["charge_item"] = f"ChargeItem/{item.id}"
    if total is None:
        total = next(
            (float(e.valueDecimal) for e in item.extension or [] if e.url == TOTAL_EXTENSION),
            None,
        )
    if total is not None:
        data["total_minutes"] = float(total)
    key = threshold_value(pid, program, month, cpt, unit)
    fx.emit(BillingThresholdReached(**data), f"Patient/{pid}", id=derived_id(CHARGE_ITEM_ID, key))


handlers.include(devices.handlers)  # carecoord.rpm.reading: device supply from readings

HANDLERS: list[HandlerSpec] = [handlers.spec]
