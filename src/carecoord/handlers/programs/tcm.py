"""Transitional care management: an episode per discharge, its deadlines, and 99495/99496 at
the episode's end only when the deadlines were met (docs/billing-rules.md T1-T6; sources: the
CMS MLN "Transitional Care Management Services" booklet and CMS's TCM FAQs).

Handler "tcm":
- `carecoord.patient.discharged` {discharged_at, facility, setting, complexity} -> EpisodeOfCare
  (type TCM, status active, period = the discharge date + 29 days: the 30-day service period
  starts on the discharge date; identifier tcm-episode | patient:date), and Tasks focused on it:
  interactive contact due within 2 business days (weekends, US federal holidays and configured
  `holidays` excluded), a face-to-face visit due in 14 days (moderate) or 7 (high), medication
  reconciliation due no later than the visit. A patient in CCM/PCM has the reconciliation on
  that care plan too (basedOn).
- `carecoord.tcm.episode-ended` (the sweeper, once the period is over) -> if every Task was
  completed by its due date (completion = executionPeriod.end, else lastModified; the contact
  also counts as made after 2 (`contact_attempts`) unsuccessful attempts by its due date: not-done
  Communications of the patient, e.g. carecoord's outreach attempts), a billable
  ChargeItem 99495 (moderate) or 99496 (high), occurrence the 30th day, and
  `carecoord.tcm.billable`; the episode is finished either way (a missed deadline is recorded on
  it and nothing is billed).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import (
    add_create,
    business_identifier_json,
    identifier_system,
    identifier_value,
)
from carecoord.core.catalog import (
    PatientDischarged,
    TcmBillable,
    TcmEpisodeEnded,
)
from carecoord.core.config import HandlerConfig
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.handlers.care.business_days import BusinessCalendar
from carecoord.handlers.care.enrolment_state import enrolment_states
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.model import (
    as_date,
    build,
    patient_of,
    reference_str,
    version_of,
)
from carecoord.handlers.care.old_type_names import old_type_names

log = logging.getLogger(__name__)

EPISODE_ID = identifier_system("tcm-episode")
PERIOD_DAYS = 30  # the discharge day and the next 29
VISIT_DAYS = {"moderate": 14, "high": 7}
CPT = {"moderate": "99495", "high": "99496"}
CONTACT_BUSINESS_DAYS = 2
CONTACT_ATTEMPTS = 2


class TcmConfig(HandlerConfig):
    config_name: ClassVar[str] = "tcm"

    holidays: list[date] = Field(default_factory=list)  # practice holidays besides federal ones
    federal_holidays: bool = True
    owner: str | None = None  # owner of the Tasks when the patient has no care manager
    # TCM-FAQ: "If two or more separate attempts are made in a timely manner and documented ...
    # but are unsuccessful, and if all other TCM criteria are met, the service may be reported."
    contact_attempts: int = Field(default=2, ge=1)

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.holidays, federal=self.federal_holidays)


def deadlines(discharge: date, complexity: str, config: TcmConfig) -> dict[str, date]:
    """Due dates of an episode's Tasks (pure)."""
    visit = discharge + timedelta(days=VISIT_DAYS[complexity])
    return {
        t.TASK_TCM_INTERACTIVE_CONTACT.code: config.calendar().add_business_days(
            discharge, CONTACT_BUSINESS_DAYS
        ),
        t.TASK_TCM_FACE_TO_FACE.code: visit,
        t.TASK_MEDICATION_RECONCILIATION.code: visit,
    }


def _ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": t.TCM_EXTENSION_BASE + name, **value}


handlers = Handlers(
    "tcm",
    config=TcmConfig,
    description="TCM episodes: deadlines after a discharge; 99495/99496 when they were met.",
)


@handlers.on(PatientDischarged)
def handle_discharged(d: Delivery[PatientDischarged, TcmConfig]) -> Effects:
    day = d.data.discharged_at.date()
    states = enrolment_states(d.fhir, d.patient_id)
    active = [s for s in states.values() if s.plan is not None and s.plan.status == "active"]
    owner = next((s.care_manager for s in active if s.care_manager), None) or d.config.owner
    owner = owner or next((s.provider for s in active if s.provider), None)
    if owner is None:
        raise HandlerError("no care manager or tcm owner for the discharge", event_id=d.event.id)
    end = day + timedelta(days=PERIOD_DAYS - 1)
    episode = build(
        "EpisodeOfCare",
        {
            "identifier": [business_identifier_json("tcm-episode", d.patient_id, day.isoformat())],
            "status": "active",
            "type": [t.EPISODE_TYPE_TCM.concept_json()],
            "patient": {"reference": d.patient},
            "period": {"start": day.isoformat(), "end": end.isoformat()},
            "careManager": {"reference": owner} if owner.startswith("Practitioner") else None,
            "extension": [
                _ext("complexity", valueCode=d.data.complexity),
                _ext("setting", valueCode=d.data.setting),
                _ext("facility", valueString=d.data.facility),
                _ext("discharged-at", valueDateTime=d.data.discharged_at.isoformat()),
            ],
        },
    )
    fx = Effects()
    episode_ref = add_create(fx, episode)
    due = deadlines(day, d.data.complexity, d.config)
    ccm_plans = [s.plan for s in active if s.program in ("CCM", "PCM")]
    codes = {
        t.TASK_TCM_INTERACTIVE_CONTACT.code: t.TASK_TCM_INTERACTIVE_CONTACT,
        t.TASK_TCM_FACE_TO_FACE.code: t.TASK_TCM_FACE_TO_FACE,
        t.TASK_MEDICATION_RECONCILIATION.code: t.TASK_MEDICATION_RECONCILIATION,
    }
    for code, work in codes.items():
        plan = ccm_plans[0] if ccm_plans and code == t.TASK_MEDICATION_RECONCILIATION.code else None
        task = care.work_task(
            key=f"tcm:{day.isoformat()}",
            patient=d.patient,
            work=work,
            owner=owner,
            due=due[code],
            care_plan=f"CarePlan/{plan.id}" if plan is not None else None,
            priority="urgent" if code == t.TASK_TCM_INTERACTIVE_CONTACT.code else "routine",
            authored_on=d.data.discharged_at,
        )
        body = to_json(task)
        body["focus"] = {"reference": episode_ref}
        add_create(fx, build("Task", body))
    log.info("tcm episode opened", extra={"complexity": d.data.complexity})
    return fx


def _completed_on(task: Any) -> date | None:
    if task.status != "completed":
        return None
    period = task.executionPeriod
    if period is not None and period.end is not None:
        return as_date(period.end)
    return as_date(task.lastModified) or as_date(task.authoredOn)


def _due(task: Any) -> date | None:
    restriction = task.restriction
    return as_date(restriction.period.end) if restriction and restriction.period else None


def unsuccessful_attempts(communications: list[Any], patient: str, start: date, due: date) -> int:
    """Separate documented attempts to reach the patient that did not reach them: not-done
    Communications of the patient (carecoord's outreach attempts, or the EHR's) sent from the
    discharge day to the contact's due date, one per distinct time."""
    times = {
        comm.sent
        for comm in communications
        if comm.get_resource_type() == "Communication"
        and comm.status == "not-done"
        and reference_str(comm.subject) == patient
        and (day := as_date(comm.sent)) is not None
        and start <= day <= due
    }
    return len(times)


def deadlines_met(
    tasks: list[Any], attempts: int = 0, required_attempts: int = CONTACT_ATTEMPTS
) -> bool:
    """Every TCM Task completed by its due date (the interactive contact also counts as met
    after `required_attempts` unsuccessful attempts by then: TCM-FAQ); reconciliation no later
    than the visit."""
    by_code: dict[str, Any] = {}
    for task in tasks:
        for work in (
            t.TASK_TCM_INTERACTIVE_CONTACT,
            t.TASK_TCM_FACE_TO_FACE,
            t.TASK_MEDICATION_RECONCILIATION,
        ):
            if t.concept_has(task.code, work):
                by_code[work.code] = task
    if len(by_code) != 3:
        return False
    done = {code: _completed_on(task) for code, task in by_code.items()}
    for code, task in by_code.items():
        due, when = _due(task), done[code]
        if code == t.TASK_TCM_INTERACTIVE_CONTACT.code and attempts >= required_attempts:
            continue
        if when is None or due is None or when > due:
            return False
    visit = done[t.TASK_TCM_FACE_TO_FACE.code]
    reconciled = done[t.TASK_MEDICATION_RECONCILIATION.code]
    return visit is not None and reconciled is not None and reconciled <= visit


def episode_tasks(found: list[Any], patient_id: str, episode: str) -> list[Any]:
    """The episode's Tasks (focused on it) among the patient's search results (re-filtered)."""
    return [
        task
        for task in found
        if task.get_resource_type() == "Task"
        and patient_of(task) == patient_id
        and reference_str(task.focus) == episode
    ]


@handlers.on(TcmEpisodeEnded)
def handle_episode_ended(d: Delivery[TcmEpisodeEnded, TcmConfig]) -> Effects:
    fx = Effects()
    try:
        episode: Any = d.fhir.read("EpisodeOfCare", d.data.episode.split("/", 1)[1])
    except (FhirNotFound, FhirGone):
        return fx
    if episode.status != "active" or reference_str(episode.patient) != d.patient:
        return fx
    found: list[Any] = d.fhir.search("Task", [("patient", d.patient)])
    tasks = episode_tasks(found, d.patient_id, d.data.episode)
    complexity = next(
        (e.valueCode for e in episode.extension or [] if e.url.endswith("tcm-complexity")),
        "moderate",
    )
    start = as_date(episode.period.start)
    end = as_date(episode.period.end)
    assert start is not None and end is not None
    contact = next(
        (task for task in tasks if t.concept_has(task.code, t.TASK_TCM_INTERACTIVE_CONTACT)), None
    )  # its due date as set at the discharge (holidays configured then)
    contact_due = (_due(contact) if contact is not None else None) or deadlines(
        start, "moderate", d.config
    )[t.TASK_TCM_INTERACTIVE_CONTACT.code]
    sent = [("sent", f"ge{start.isoformat()}"), ("sent", f"le{contact_due.isoformat()}")]
    communications: list[Any] = d.fhir.search(
        "Communication", [("subject", d.patient), *sent]
    )  # re-filtered: a server ignoring `sent` costs bytes, not correctness
    attempts = unsuccessful_attempts(communications, d.patient, start, contact_due)
    met = deadlines_met(tasks, attempts, d.config.contact_attempts)
    body = to_json(episode)
    body["status"] = "finished"
    body.setdefault("extension", []).append(_ext("deadlines-met", valueBoolean=met))
    fx.update(build("EpisodeOfCare", body), version_of(episode))
    if not met:
        log.info("tcm deadlines missed: not billable", extra={"episode": d.data.episode})
        return fx
    cpt = CPT[str(complexity)]
    key = identifier_value(d.patient_id, "TCM", start.isoformat(), cpt)
    item = build(
        "ChargeItem",
        {
            "identifier": [
                business_identifier_json("charge-item", d.patient_id, "TCM", start.isoformat(), cpt)
            ],
            "status": "billable",
            "code": t.BILLING_CODES[cpt].concept_json(),
            "subject": {"reference": d.patient},
            "context": {"reference": d.data.episode},
            "occurrenceDateTime": end.isoformat(),
            "quantity": {"value": 1},
            "enteredDate": (d.event.time or d.ctx.now()).isoformat(),
            "supportingInformation": [{"reference": f"Task/{task.id}"} for task in tasks],
        },
    )
    add_create(fx, item)
    fx.emit(
        TcmBillable(episode=d.data.episode, cpt=cpt, date_of_service=end.isoformat()),
        d.patient,
        id=derived_id(EPISODE_ID, key),
    )
    return fx


def episodes_ended(fhir: Any, now: datetime) -> list[tuple[str, str]]:
    """(patient id, EpisodeOfCare/id) of active TCM episodes whose 30 days are over."""
    found: list[Any] = fhir.search(
        "EpisodeOfCare", [("identifier", f"{EPISODE_ID}|"), ("status", "active")]
    )
    out = []
    for episode in found:
        end = as_date(episode.period.end) if episode.period else None
        patient = reference_str(episode.patient) or ""
        if episode.status == "active" and end is not None and end < now.astimezone(UTC).date():
            out.append((patient.removeprefix("Patient/"), f"EpisodeOfCare/{episode.id}"))
    return out


HANDLERS: list[HandlerSpec] = [handlers.spec]

__getattr__ = old_type_names(
    __name__, DISCHARGED=PatientDischarged, EPISODE_ENDED=TcmEpisodeEnded, TCM_BILLABLE=TcmBillable
)
