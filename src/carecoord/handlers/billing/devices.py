"""RPM device supply, billed from readings: carecoord.rpm.reading -> the period's 99454 / 99445
and the episode's 99453.

Each reading is stored as an Observation (code carecoord rpm-reading, the device, the time;
identifier = the event id, a conditional create), as time entries are stored as ChargeItems: a
redelivered reading finds its Observation and counts once. No values are stored.

- **Episode of care**: the RPM enrolment, i.e. the patient's latest RPM CarePlan, from its
  start (`period.start`). A new enrolment is a new episode.
- **30-day periods**: consecutive from the episode start (day 1-30, 31-60, ...); the rules in
  force on the period's last day (its date of service) decide its codes (rules.RULE_YEARS).
- **Days**: distinct calendar days with a reading in the period, in the billing handler's
  `timezone` (the practice's; UTC unless configured). Readings before consent, before the
  episode start or after the disenrolment date are stored but not counted.
- **Codes**: 16-30 days bill 99454; 2-15 days bill 99445 from 2026 (not both: a period reaching
  16 sets its 99445 not-billable); fewer bill nothing. 99453 (set-up and education) is billed
  once per episode, with the episode's first device-supply code. One billable ChargeItem per
  code and period (identifier patient:RPM:<period start>:<code>), announced once with
  carecoord.billing.threshold-reached.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.observation import Observation

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import (
    add_create,
    business_identifier_json,
    carecoord_identifier,
    identifier_system,
    identifier_value,
)
from carecoord.core.catalog import BillingThresholdReached, RpmReading
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader
from carecoord.core.router import Delivery, Handlers
from carecoord.fhir.batch_reads import Search, search_together
from carecoord.handlers.billing.config import CHARGE_ITEM_ID, PROGRAM_EXTENSION, BillingConfig
from carecoord.handlers.billing.rules import (
    RPM_DEVICE_2_15,
    RPM_DEVICE_16_30,
    RPM_PERIOD_DAYS,
    RPM_SETUP,
    Enrolment,
    TimeEntry,
    device_code,
    excluded_reason,
    rules_for,
)
from carecoord.handlers.care.enrolment_state import carecoord_consents, carecoord_plans, states_of
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.model import as_date, as_instant, reference_str, version_of

log = logging.getLogger(__name__)

READING_ID = identifier_system("rpm-reading")
DEVICE_CODES = (RPM_DEVICE_16_30, RPM_DEVICE_2_15)


@dataclass(frozen=True)
class Period:
    """One 30-day RPM period of an episode: `start` .. `end` inclusive."""

    start: date
    end: date


def period_of(episode_start: date, day: date) -> Period | None:
    """The 30-day period of the episode that `day` falls in (None: before the episode)."""
    if day < episode_start:
        return None
    k = (day - episode_start).days // RPM_PERIOD_DAYS
    start = episode_start + timedelta(days=k * RPM_PERIOD_DAYS)
    return Period(start, start + timedelta(days=RPM_PERIOD_DAYS - 1))


def reading_day(observed: datetime, zone: tzinfo) -> date:
    """The calendar day of a reading in the practice's zone (a naive time is UTC)."""
    aware = observed if observed.tzinfo else observed.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


def readings_of(found: Iterable[Any], patient: str) -> dict[str, datetime]:
    """event id -> time of the patient's stored readings among search results (re-filtered)."""
    out: dict[str, datetime] = {}
    for obs in found:
        if obs.get_resource_type() != "Observation" or obs.status == "entered-in-error":
            continue
        if reference_str(obs.subject) != patient or not t.concept_has(obs.code, t.RPM_READING):
            continue
        ident = carecoord_identifier(obs)
        when = as_instant(obs.effectiveDateTime)
        if ident is not None and ident[0] == READING_ID and when is not None:
            out[ident[1]] = when
    return out


def days_in(period: Period, times: Iterable[datetime], zone: tzinfo, counts: Any = None) -> int:
    """Distinct days of `period` with a reading; `counts(day)` (optional) filters the days."""
    days = {reading_day(w, zone) for w in times}
    return len(
        {d for d in days if period.start <= d <= period.end and (counts is None or counts(d))}
    )


def reading_search(patient: str, since: date) -> Search:
    """The patient's stored readings from `since` (a lower bound only, docs/architecture.md)."""
    return (
        "Observation",
        [
            ("subject", patient),
            ("code", f"{t.RPM_READING.system}|{t.RPM_READING.code}"),
            ("date", f"ge{since.isoformat()}"),
        ],
    )


def episode_start(plan: Any) -> date | None:
    period = getattr(plan, "period", None)
    return as_date(period.start) if period is not None else None


# ---------------------------------------------------------------------------------------------
# The route (included by billing/handler.py: one "billing" handler)

handlers = Handlers("billing", config=BillingConfig)


@handlers.on(RpmReading)
def handle_reading(d: Delivery[RpmReading, BillingConfig]) -> Effects:
    patient = d.patient
    zone = d.config.zone()
    day = reading_day(d.data.observed_at, zone)
    mine = identifier_value(d.event.id)
    fx = Effects()

    plans, consents = search_together(
        d.fhir,
        [("CarePlan", [("patient", patient)]), ("Consent", [("patient", patient)])],
    )
    state = states_of(
        carecoord_plans(plans, d.patient_id), carecoord_consents(consents, d.patient_id)
    ).get("RPM")
    start = episode_start(state.plan) if state is not None and state.plan is not None else None
    period = period_of(start, day) if start is not None else None
    since = (period.start if period is not None else day) - timedelta(days=1)
    found, items = _period_reads(d.fhir, patient, since)
    stored = readings_of(found, patient)
    if mine in stored:  # redelivered: counted already; the outbox re-announces what it did
        log.info("duplicate rpm reading ignored")
        return fx
    add_create(fx, _observation(d.event.id, patient, d.data))
    if state is None or period is None or start is None:
        log.info("rpm reading recorded, not billable", extra={"reason": "not-enrolled"})
        return fx

    enrolment = Enrolment(
        "RPM", state.consent_from, state.ends, len(state.conditions),
        state.provider or d.config.billing_practitioner,
    )  # fmt: skip
    rules = d.config.rules()

    def counts(d: date) -> bool:
        return excluded_reason(TimeEntry(mine, "RPM", d, 0), enrolment, rules) is None

    times = [*stored.values(), d.data.observed_at]
    days = days_in(period, times, zone, counts)
    code = device_code(days, rules_for(period.end))
    billed = _billed(items)
    if code is None:
        return fx
    current = billed.get(charge_key(d.patient_id, period.start.isoformat(), code))
    if current is None or current.status != "billable":
        _bill(fx, d.patient_id, period, code, days, enrolment.provider, current)
        for other in DEVICE_CODES:  # one device-supply code a period
            item = billed.get(charge_key(d.patient_id, period.start.isoformat(), other))
            if other != code and item is not None and item.status == "billable":
                fx.update(_not_billable(item), version_of(item))
    episode = f"episode-{start.isoformat()}"
    if charge_key(d.patient_id, episode, RPM_SETUP) not in billed:
        _bill(fx, d.patient_id, period, RPM_SETUP, days, enrolment.provider, None, episode=episode)
    return fx


def _period_reads(fhir: FhirReader, patient: str, since: date) -> tuple[list[Any], list[Any]]:
    """The readings and ChargeItems from `since` (one batch where declared), and the 99453 of
    any episode (ChargeItems by code: it may be older than the period)."""
    setup = f"{t.BILLING_CODES[RPM_SETUP].system}|{RPM_SETUP}"
    found, items, setups = search_together(
        fhir,
        [
            reading_search(patient, since),
            ("ChargeItem", [("subject", patient), ("occurrence", f"ge{since.isoformat()}")]),
            ("ChargeItem", [("subject", patient), ("code", setup)]),
        ],
    )
    return found, [*items, *setups]


def _billed(items: Sequence[Any]) -> dict[str, Any]:
    """Identifier value -> the ChargeItems carecoord wrote (callers look up their key)."""
    out: dict[str, Any] = {}
    for item in items:
        if item.get_resource_type() != "ChargeItem" or item.status == "entered-in-error":
            continue
        ident = carecoord_identifier(item)
        if ident is not None and ident[0] == CHARGE_ITEM_ID:
            out[ident[1]] = item
    return out


def charge_key(pid: str, when: str, code: str) -> str:
    """The identifier value of a device ChargeItem: `when` is the period start (99454/99445)
    or the episode ("episode-<start>", 99453)."""
    return identifier_value(pid, "RPM", when, code)


def _observation(event_id: str, patient: str, data: RpmReading) -> Observation:
    observed = data.observed_at if data.observed_at.tzinfo else data.observed_at.replace(tzinfo=UTC)
    return Observation.model_validate(
        {
            "resourceType": "Observation",
            "identifier": [business_identifier_json("rpm-reading", event_id)],
            "status": "final",
            "code": t.RPM_READING.concept_json(),
            "subject": {"reference": patient},
            "effectiveDateTime": observed.isoformat(),
            "device": {"reference": data.device},
        }
    )


def _bill(
    fx: Effects,
    pid: str,
    period: Period,
    code: str,
    days: int,
    practitioner: str | None,
    existing: Any | None,
    episode: str | None = None,
) -> None:
    when = episode or period.start.isoformat()
    key = charge_key(pid, when, code)
    body: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "identifier": [business_identifier_json("charge-item", pid, "RPM", when, code)],
        "extension": [{"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS["RPM"].json()}],
        "status": "billable",
        "code": t.BILLING_CODES[code].concept_json(),
        "subject": {"reference": f"Patient/{pid}"},
        "occurrencePeriod": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "quantity": {"value": 1},
        "note": [{"text": f"{days} days with device readings in the 30-day period"}],
    }  # fmt: skip
    if practitioner and practitioner.startswith(("Practitioner/", "PractitionerRole/")):
        body["performer"] = [
            {"function": t.PERFORMER_BILLING.concept_json(), "actor": {"reference": practitioner}}
        ]
    if existing is None:
        item = ChargeItem.model_validate(body)
        add_create(fx, item)
    else:
        body["id"] = existing.id
        item = ChargeItem.model_validate(body)
        fx.update(item, version_of(existing))
    announce = BillingThresholdReached(
        program="RPM",
        month=f"{period.end.year:04d}-{period.end.month:02d}",
        cpt=code,
        unit=1,
        charge_item_identifier=f"{CHARGE_ITEM_ID}|{key}",
        days=days,
        **({"charge_item": f"ChargeItem/{existing.id}"} if existing is not None else {}),
    )
    fx.emit(announce, f"Patient/{pid}", id=derived_id(CHARGE_ITEM_ID, key))


def _not_billable(item: Any) -> ChargeItem:
    body = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    body["status"] = "not-billable"
    body["note"] = [
        *(body.get("note") or []),
        {"text": "No longer billable: the period reached another device-supply code"},
    ]
    return ChargeItem.model_validate(body)
