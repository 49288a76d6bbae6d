"""Billable care-management time.

carecoord.time.logged -> one ChargeItem per time entry (status not-billable, code carecoord
care-management-time, quantity in minutes, the program in an extension; identifier = the event id)
and, when the patient's total for that program and calendar month crosses a threshold, one
ChargeItem per CPT unit reached (status billable; identifier patient:program:YYYY-MM:cpt:unit;
supportingInformation -> the entry that crossed it) plus carecoord.billing.threshold-reached.

Thresholds (`ladder`): CCM 99490 at 20 min then 99439 per further 20; complex CCM (config
`complex_ccm`) 99487 at 60 then 99489 per further 30; PCM 99426 at 30 then 99427 per further 30;
RPM 99457 at 20 then 99458 per further 20. `addon_limits` caps add-on units (e.g. {"99439": 2}).
Other programs record time without thresholds.

Rules that keep minutes from counting twice:
- a duplicate time.logged (same event id) finds its entry already recorded and adds nothing;
- a time entry counts toward exactly the program it names, never toward another;
- CCM and PCM (config `exclusive_programs`) are not billed for one patient in one month: the first
  of them to reach a threshold claims the month; the other's time is still recorded, unbilled.
The month is the calendar month of `performed_at` in its own UTC offset. The threshold event's id
is derived from the threshold's identifier, so each threshold is announced under one id however
often an event is replayed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.resource import Resource
from pydantic import Field

from carecoord.core.catalog import TimeLogged, parse_data, require_patient
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.fhir import terminology as t
from carecoord.fhir.care import charge_item
from carecoord.fhir.identifiers import (
    add_create,
    business_identifier_json,
    carecoord_identifier,
    identifier_system,
    identifier_value,
)
from carecoord.fhir.models import to_json
from carecoord.handlers.event_ids import derived_id

log = logging.getLogger(__name__)

TIME_LOGGED = "carecoord.time.logged"
THRESHOLD_REACHED = "carecoord.billing.threshold-reached"
TIME_ENTRY_ID = identifier_system("time-entry")
CHARGE_ITEM_ID = identifier_system("charge-item")
PROGRAM_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/care-program"
# On a threshold ChargeItem: the month's total minutes when it was reached.
TOTAL_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/care-minutes-total"
_PRACTITIONER_PREFIXES = ("Practitioner/", "PractitionerRole/")


@dataclass(frozen=True)
class Ladder:
    """A base code reached at `first_at` minutes, then an add-on code per `addon_every` more."""

    first: str
    first_at: int
    addon: str | None = None
    addon_every: int = 0


LADDERS: dict[str, Ladder] = {
    "CCM": Ladder("99490", 20, "99439", 20),
    "PCM": Ladder("99426", 30, "99427", 30),
    "RPM": Ladder("99457", 20, "99458", 20),
}
COMPLEX_CCM = Ladder("99487", 60, "99489", 30)
CODE_PROGRAM: dict[str, str] = {
    "99490": "CCM",
    "99439": "CCM",
    "99487": "CCM",
    "99489": "CCM",
    "99426": "PCM",
    "99427": "PCM",
    "99457": "RPM",
    "99458": "RPM",
}


class BillingConfig(HandlerConfig):
    """Configuration of the "billing" handler."""

    config_name: ClassVar[str] = "billing"

    complex_ccm: bool = False  # bill CCM as complex CCM (99487/99489)
    addon_limits: dict[str, int] = Field(default_factory=dict)  # CPT -> max units a month
    exclusive_programs: list[list[str]] = Field(default_factory=lambda: [["CCM", "PCM"]])

    def ladder(self, program: str) -> Ladder | None:
        if program == "CCM" and self.complex_ccm:
            return COMPLEX_CCM
        return LADDERS.get(program)


# ---------------------------------------------------------------------------------------------
# Pure arithmetic


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


def month_label(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def threshold_value(patient_id: str, program: str, month: str, cpt: str, unit: int) -> str:
    """The identifier value of a threshold ChargeItem (same as carecoord.fhir.care.charge_item)."""
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


def _entry_of(item: Any) -> Entry | None:
    found = carecoord_identifier(item)
    if found is None or found[0] != TIME_ENTRY_ID or item.status == "entered-in-error":
        return None
    program = next(
        (
            e.valueCoding.code
            for e in item.extension or []
            if e.url == PROGRAM_EXTENSION and e.valueCoding is not None
        ),
        None,
    )
    when = item.occurrenceDateTime
    qty = item.quantity.value if item.quantity is not None else None
    if not program or when is None or qty is None:
        return None
    day = when if isinstance(when, date) else date.fromisoformat(str(when)[:10])
    return Entry(item.id, found[1], str(program), month_label(day), float(qty))


def _billed(item: Any) -> tuple[str, str] | None:
    """(program, month) of a threshold ChargeItem, or None."""
    found = carecoord_identifier(item)
    if found is None or found[0] != CHARGE_ITEM_ID or item.status == "entered-in-error":
        return None
    cpt = next((c.code for c in (item.code.coding or []) if c.system == t.CPT), None)
    period = item.occurrencePeriod
    if cpt not in CODE_PROGRAM or period is None or period.start is None:
        return None
    start = period.start
    day = start if isinstance(start, date) else date.fromisoformat(str(start)[:10])
    return CODE_PROGRAM[str(cpt)], month_label(day)


# ---------------------------------------------------------------------------------------------
# The handler


def handle_time_logged(event: CloudEvent, ctx: HandlerContext) -> Effects:
    pid = require_patient(event)
    data = parse_data(event, TimeLogged)
    config = BillingConfig.of(ctx.config)
    patient = f"Patient/{pid}"
    day = data.performed_at.date()
    month = month_label(day)
    entry_value = identifier_value(event.id)

    items: list[Any] = [
        r
        for r in ctx.fhir.search("ChargeItem", {"subject": patient})
        if r.get_resource_type() == "ChargeItem"
        and getattr(getattr(r, "subject", None), "reference", None) == patient
    ]
    entries = [e for e in (_entry_of(i) for i in items) if e is not None]
    thresholds = [i for i in items if _billed(i) is not None]
    fx = Effects()

    mine = next((e for e in entries if e.event_id == entry_value), None)
    if mine is not None:  # a duplicate: nothing new; announce again what this entry crossed
        for item in thresholds:
            supporting = {s.reference for s in item.supportingInformation or []}
            if f"ChargeItem/{mine.id}" in supporting:
                _emit(fx, pid, item, mine.program, month)
        log.info("duplicate time entry ignored", extra={"event_id": event.id})
        return fx

    entry_ref = add_create(fx, _entry(event.id, patient, data))
    ladder = config.ladder(data.program)
    if ladder is None:
        return fx
    for group in config.exclusive_programs:
        if data.program in group and any(
            b is not None and b[1] == month and b[0] != data.program and b[0] in group
            for b in (_billed(i) for i in thresholds)
        ):
            log.info(
                "time recorded; month already billed under an exclusive program",
                extra={"event_id": event.id, "program": data.program},
            )
            return fx
    total = data.minutes + sum(
        e.minutes for e in entries if e.program == data.program and e.month == month
    )
    existing = {
        ident[1] for ident in (carecoord_identifier(i) for i in thresholds) if ident is not None
    }
    performer = data.by if data.by.startswith(_PRACTITIONER_PREFIXES) else None
    for cpt, unit in units_reached(ladder, total, config.addon_limits):
        if threshold_value(pid, data.program, month, cpt, unit) in existing:
            continue
        item = charge_item(
            patient=patient,
            program=data.program,
            month=day,
            cpt=cpt,
            unit=unit,
            performer=performer,
            entered=event.time or ctx.now(),
            supporting=[entry_ref],
        )
        body = to_json(item)
        body["extension"] = [{"url": TOTAL_EXTENSION, "valueDecimal": total}]
        item = ChargeItem.model_validate(body)
        add_create(fx, item)
        _emit(fx, pid, item, data.program, month)
    return fx


def _entry(event_id: str, patient: str, data: TimeLogged) -> Resource:
    program = t.PROGRAMS[data.program]
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": [business_identifier_json("time-entry", event_id)],
        "extension": [{"url": PROGRAM_EXTENSION, "valueCoding": program.json()}],
        "status": "not-billable",
        "code": t.CARE_MANAGEMENT_TIME.concept_json(),
        "subject": {"reference": patient},
        "occurrenceDateTime": data.performed_at.isoformat(),
        "quantity": {"value": data.minutes, "unit": "min", "system": t.UCUM, "code": "min"},
    }
    if data.by.startswith(_PRACTITIONER_PREFIXES):
        body["performer"] = [{"actor": {"reference": data.by}}]
    return ChargeItem.model_validate(body)


def _emit(fx: Effects, pid: str, item: Any, program: str, month: str) -> None:
    ident = carecoord_identifier(item)
    if ident is None:
        return
    cpt = next((c.code for c in item.code.coding or [] if c.system == t.CPT), None)
    data: dict[str, Any] = {
        "program": program,
        "month": month,
        "cpt": cpt,
        "unit": int(unit) if (unit := ident[1].rsplit(":", 1)[-1]).isdigit() else None,
        "charge_item_identifier": f"{ident[0]}|{ident[1]}",
    }
    if item.id:
        data["charge_item"] = f"ChargeItem/{item.id}"
    total = next((e.valueDecimal for e in item.extension or [] if e.url == TOTAL_EXTENSION), None)
    if total is not None:
        data["total_minutes"] = float(total)
    fx.emit(THRESHOLD_REACHED, f"Patient/{pid}", data, derived_id(ident[0], ident[1]))


HANDLERS: list[HandlerSpec] = [
    HandlerSpec(
        name="billing",
        event_types=(TIME_LOGGED,),
        handle=handle_time_logged,
        default_config=BillingConfig().model_dump(mode="json"),
        description="Accumulate care-management time; record CPT thresholds as ChargeItems",
        config_model=BillingConfig,
    )
]
