"""The time-based triggers, as events: `sweep(fhir, now, config)` reads FHIR and returns the
events that are due at `now`; `carecoord sweep` produces them to the input topic, where the
handlers do the work idempotently.

- `carecoord.outreach.due` stage "due": an active CarePlan has no outreach request for the month
  of `now` (id `sweep:outreach-due:CarePlan/<id>:<YYYY-MM>`).
- `carecoord.outreach.due` stage "nearly-overdue": within `days_before_period_end` days of the
  month's end a monthly request is still active and not escalated
  (id `sweep:outreach-nearly-overdue:CommunicationRequest/<id>:<YYYY-MM>`).
- `carecoord.task.overdue`: an open care-management Task's restriction.period.end has passed and
  it was not escalated yet (id `sweep:task-overdue:Task/<id>`).
- `carecoord.clinical.overdue`: a clinical question, or its first escalation, is past its
  response deadline unanswered (carecoord.handlers.clinical.loop.clinical_overdue; id
  `sweep:clinical-overdue:Task/<question>:<level>`).
- `carecoord.care-manager.reassign`: only with the reassignment handler's configuration under key
  "reassignment" (as `sweep_config` puts it): per patient of a care manager marked `active: false`
  (reason "left") or beyond one's `capacity` this month (reason "over-capacity", the most recently
  enrolled) (id `sweep:reassign:<patient>:Practitioner/<id>:<YYYY-MM>`).

Pure and deterministic: the same FHIR state and `now` give the same event ids, so running it
every few minutes (or twice at once) only re-sends events the handlers treat as replays. Searches
are narrow (active plans, this month's requests, open Tasks of the work types, this month's
escalations) and re-filtered here, since some servers ignore parameters they don't support.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.caremodel.workflow import OPEN
from carecoord.core.catalog import CareManagerReassign, TcmEpisodeEnded
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import FhirReader
from carecoord.handlers.care.model import (
    CARE_PLAN_ID,
    OUTREACH_REQUEST_ID,
    CareConfig,
    Month,
    as_date,
    identifier_value,
    outreach_key,
    patient_of,
    ref_of,
    reference_str,
)
from carecoord.handlers.care.patient_context import program_of
from carecoord.handlers.clinical.loop import clinical_overdue
from carecoord.handlers.programs.care_tasks import is_overdue
from carecoord.handlers.programs.reassignment import due_reassignments
from carecoord.handlers.programs.tcm import episodes_ended

log = logging.getLogger(__name__)

SOURCE = "urn:carecoord:sweep"
# The handlers whose configuration the sweeper reads (merged in this order).
SWEEP_HANDLERS = ("care-tasks", "enrolment", "outreach")
# Key of the reassignment handler's configuration inside the sweeper's (see sweep_config).
REASSIGNMENT_CONFIG_KEY = "reassignment"


def sweep(
    fhir: FhirReader, now: datetime, config: Mapping[str, Any] | None = None
) -> list[CloudEvent]:
    """Events for every time-based trigger due at `now` (sorted by id)."""
    cfg = CareConfig.from_mapping(config)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    month = Month.of(now)
    requests = _month_requests(fhir, month)
    events = [*_outreach_due(fhir, now, month, requests)]
    if now.date() >= month.end - timedelta(days=cfg.days_before_period_end):
        events += _nearly_overdue(fhir, now, month, requests)
    events += _tasks_overdue(fhir, now, cfg)
    events += clinical_overdue(fhir, now)
    events += _tcm_episodes_ended(fhir, now)
    reassignment = (config or {}).get(REASSIGNMENT_CONFIG_KEY)
    if isinstance(reassignment, Mapping):
        events += _reassign(fhir, now, month, CareConfig.from_mapping(reassignment))
    return sorted(events, key=lambda e: e.id)


def _event(
    event_id: str, type_: str, patient_id: str, now: datetime, data: dict[str, Any]
) -> CloudEvent:
    return new_event(type_, patient_id, data, id=event_id, source=SOURCE, time=now)


def _month_requests(fhir: FhirReader, month: Month) -> dict[str, Any]:
    """This month's monthly outreach requests by business key (authoredOn lies in the month)."""
    found = fhir.search(
        "CommunicationRequest",
        [
            ("identifier", f"{OUTREACH_REQUEST_ID}|"),
            ("authored", f"ge{month.start.isoformat()}"),
            ("authored", f"le{month.end.isoformat()}"),
        ],
    )
    out: dict[str, Any] = {}
    for cr in found:
        key = identifier_value(cr, OUTREACH_REQUEST_ID)
        if key and key.endswith(f":{month.label}"):
            out[key] = cr
    return out


def _outreach_due(
    fhir: FhirReader, now: datetime, month: Month, requests: Mapping[str, Any]
) -> list[CloudEvent]:
    events = []
    plans: list[Any] = fhir.search(
        "CarePlan", [("identifier", f"{CARE_PLAN_ID}|"), ("status", "active")]
    )
    for plan in plans:
        patient_id = patient_of(plan)
        program = program_of(plan)
        start = as_date(plan.period.start) if plan.period else None
        end = as_date(plan.period.end) if plan.period else None
        if plan.status != "active" or not identifier_value(plan, CARE_PLAN_ID):
            continue
        if patient_id is None or program is None or start is None:
            continue
        if Month.of(start) > month or (end is not None and end < month.start):
            continue
        if outreach_key(patient_id, program, month) in requests:
            continue
        plan_ref = ref_of(plan)
        events.append(
            _event(
                f"sweep:outreach-due:{plan_ref}:{month.label}",
                "carecoord.outreach.due",
                patient_id,
                now,
                {
                    "period_start": month.start.isoformat(),
                    "period_end": month.end.isoformat(),
                    "stage": "due",
                    "care_plan": plan_ref,
                },
            )
        )
    return events


def _nearly_overdue(
    fhir: FhirReader, now: datetime, month: Month, requests: Mapping[str, Any]
) -> list[CloudEvent]:
    escalations: list[Any] = fhir.search(
        "Task",
        [
            ("code", f"{t.TASK_OUTREACH_ESCALATION.system}|{t.TASK_OUTREACH_ESCALATION.code}"),
            ("authored-on", f"ge{month.start.isoformat()}"),
        ],
    )
    escalated = {
        reference_str(task.focus)
        for task in escalations
        if t.concept_has(task.code, t.TASK_OUTREACH_ESCALATION)
    }
    events = []
    for cr in requests.values():
        cr_ref = ref_of(cr)
        patient_id = patient_of(cr)
        if cr.status != "active" or cr_ref in escalated or patient_id is None:
            continue
        events.append(
            _event(
                f"sweep:outreach-nearly-overdue:{cr_ref}:{month.label}",
                "carecoord.outreach.due",
                patient_id,
                now,
                {
                    "period_start": month.start.isoformat(),
                    "period_end": month.end.isoformat(),
                    "stage": "nearly-overdue",
                    "outreach": cr_ref,
                },
            )
        )
    return events


def _tasks_overdue(fhir: FhirReader, now: datetime, cfg: CareConfig) -> list[CloudEvent]:
    del cfg  # every configured work type is a WORK_TASK_TYPES code
    codes = ",".join(f"{c.system}|{c.code}" for c in t.WORK_TASK_TYPES.values())
    tasks: list[Any] = fhir.search("Task", [("code", codes), ("status", ",".join(OPEN))])
    events = []
    for task in tasks:
        if not any(t.concept_has(task.code, c) for c in t.WORK_TASK_TYPES.values()):
            continue
        patient_id = patient_of(task)
        if patient_id is None or not is_overdue(task, now):
            continue
        task_ref = ref_of(task)
        events.append(
            _event(
                f"sweep:task-overdue:{task_ref}",
                "carecoord.task.overdue",
                patient_id,
                now,
                {"task": task_ref},
            )
        )
    return events


def _tcm_episodes_ended(fhir: FhirReader, now: datetime) -> list[CloudEvent]:

    return [
        _event(
            f"sweep:tcm-episode-ended:{ref}", TcmEpisodeEnded.event_type, pid, now, {"episode": ref}
        )
        for pid, ref in episodes_ended(fhir, now)
        if pid
    ]


def _reassign(fhir: FhirReader, now: datetime, month: Month, cfg: CareConfig) -> list[CloudEvent]:
    return [
        _event(
            f"sweep:reassign:{due.patient_id}:{due.care_manager}:{month.label}",
            CareManagerReassign.event_type,
            due.patient_id,
            now,
            {"care_manager": due.care_manager, "reason": due.reason, "month": month.label},
        )
        for due in due_reassignments(fhir, cfg, month)
    ]


def sweep_config(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The sweeper's configuration: the merged configs of the handlers it triggers; the
    reassignment handler's (if enabled) nested under "reassignment", so its care managers and
    capacities are exactly the ones that handler uses and nothing else is overridden."""
    merged: dict[str, Any] = {}
    for name in SWEEP_HANDLERS:
        # An unset value (None) of one handler must not hide another handler's setting.
        merged.update(
            {k: v for k, v in configs.get(name, {}).items() if v is not None or k not in merged}
        )
    if REASSIGNMENT_CONFIG_KEY in configs:
        merged[REASSIGNMENT_CONFIG_KEY] = dict(configs[REASSIGNMENT_CONFIG_KEY])
    return merged


def periodic_jobs(service: Any) -> list[tuple[float, Callable[[], None]]]:
    """The sweep as a periodic job of `carecoord run` (carecoord.service.app hook): every
    `sweeper_interval` seconds (CARECOORD_SWEEPER_INTERVAL; 0 turns it off) its events go to the
    input topic. Off unless a handler it triggers (outreach, care-tasks, clinical-routing) is
    enabled."""
    names = set(service.handlers.names)
    interval = float(service.settings.sweeper_interval)
    if interval <= 0 or not names & {"outreach", "care-tasks", "clinical-routing"}:
        return []
    config = sweep_config(service.handlers.configs)
    CareConfig.from_mapping(config)  # fail at start, not in the job, on a bad config
    CareConfig.from_mapping(config.get(REASSIGNMENT_CONFIG_KEY))

    def sweep_job() -> None:
        events = sweep(service.fhir, datetime.now(UTC), config)
        service.publish(events)
        log.info("sweep published", extra={"events": len(events)})

    return [(interval, sweep_job)]
