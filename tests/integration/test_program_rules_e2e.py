"""One patient through the program rules on the real servers: enrolment pending consent, time
logged before consent (kept, never billed), consent, billed time, a discharge and its TCM episode
(deadlines, the care manager's call list, 99496 once they were met), and disenrolment (plan
revoked, consent inactive, outreach revoked, Tasks cancelled, nothing billed after it). Events go
through the real broker and runtime; the sweeper's episode-ended trigger too."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition
from typer.testing import CliRunner

from carecoord.caremodel import terminology as t
from carecoord.catalog import TcmEpisodeEnded
from carecoord.cli import app
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.fhir.models import to_json
from carecoord.handlers.care.model import as_date, build, reference_str, version_of
from carecoord.handlers.care.task_paths import complete
from carecoord.handlers.jobs.sweeper import sweep
from carecoord.handlers.jobs.worklist import worklist
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def _conditions(pipeline: Pipeline, patient: str) -> list[str]:
    return [
        "Condition/"
        + str(
            pipeline.fhir.create(
                Condition.model_validate(
                    {
                        "subject": {"reference": f"Patient/{patient}"},
                        "code": {"coding": [{"system": ICD10, "code": code}]},
                    }
                )
            ).id
        )
        for code in ("E11.9", "I10")
    ]


def _run(pipeline: Pipeline, *events: CloudEvent) -> None:
    pipeline.publish(*events)
    pipeline.wait_idle()
    assert pipeline.dead_letters() == []


def _of(pipeline: Pipeline, rtype: str, patient: str, param: str = "patient") -> list[Any]:
    found = pipeline.fhir.search(rtype, {param: f"Patient/{patient}"})
    return [r for r in found if r.get_resource_type() == rtype]


def _logged(patient: str, n: int, minutes: int, at: str, cm: str) -> CloudEvent:
    data = {"program": "CCM", "minutes": minutes, "activity": "care coordination", "by": cm,
            "performed_at": at}  # fmt: skip
    return new_event("carecoord.time.logged", patient, data, id=f"{patient}-time-{n}")


def _billed(pipeline: Pipeline, patient: str) -> dict[str, int]:
    return {
        i.code.coding[0].code: int(i.quantity.value)
        for i in _of(pipeline, "ChargeItem", patient, "subject")
        if i.status == "billable"
    }


def test_consent_discharge_tcm_and_disenrolment(
    pipeline: Pipeline, unique: str, fhir_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = f"rules-{unique}"
    cm = f"Practitioner/cm-{unique}"
    conditions = _conditions(pipeline, patient)
    enrol = {"program": "CCM", "provider": f"Practitioner/dr-{unique}", "care_manager": cm,
             "start": "2026-03-02", "conditions": conditions}  # fmt: skip

    # 1. Enrolled without consent: pending.
    _run(pipeline, new_event("carecoord.patient.enrolled", patient, enrol, id=f"{patient}-en"))
    (plan,) = _of(pipeline, "CarePlan", patient)
    assert plan.status == "draft"
    (obtain,) = [k for k in _of(pipeline, "Task", patient)
                 if t.concept_has(k.code, t.TASK_OBTAIN_CONSENT)]  # fmt: skip
    assert obtain.status not in ("completed", "cancelled") and reference_str(obtain.owner) == cm

    # 2. Time before consent is recorded, never billed.
    _run(pipeline, _logged(patient, 1, 25, "2026-03-03T10:00:00+00:00", cm))
    assert _billed(pipeline, patient) == {}

    # 3. Consent: Consent resource, plan active, the obtain-consent Task completed.
    consent = {"program": "CCM", "date": "2026-03-05", "method": "verbal", "recorded_by": cm}
    _run(pipeline, new_event("carecoord.consent.recorded", patient, consent, id=f"{patient}-c"))
    (record,) = _of(pipeline, "Consent", patient)
    assert record.status == "active" and as_date(record.dateTime) == date(2026, 3, 5)
    assert pipeline.fhir.read("CarePlan", plan.id).status == "active"
    assert pipeline.fhir.read("Task", obtain.id).status == "completed"

    # 4. Time after consent bills 99490 (the 25 minutes before consent do not count).
    _run(pipeline, _logged(patient, 2, 25, "2026-03-06T10:00:00+00:00", cm))
    assert _billed(pipeline, patient) == {"99490": 1}
    entries = [i for i in _of(pipeline, "ChargeItem", patient, "subject")
               if i.status == "not-billable"]  # fmt: skip
    assert len(entries) == 2
    assert sum(any(e.url.endswith("not-billed") for e in i.extension or []) for i in entries) == 1

    # 5. Discharge (Monday 9 March, high complexity): the TCM episode and its deadlines.
    discharge = {"discharged_at": "2026-03-09T14:00:00+00:00", "facility": "General",
                 "setting": "inpatient", "complexity": "high"}  # fmt: skip
    _run(pipeline, new_event("carecoord.patient.discharged", patient, discharge,
                             id=f"{patient}-dc"))  # fmt: skip
    (episode,) = _of(pipeline, "EpisodeOfCare", patient)
    assert episode.status == "active"
    assert (as_date(episode.period.start), as_date(episode.period.end)) == (
        date(2026, 3, 9),
        date(2026, 4, 7),
    )
    tcm_tasks = {
        k.code.coding[0].code: k
        for k in _of(pipeline, "Task", patient)
        if reference_str(k.focus) == f"EpisodeOfCare/{episode.id}"
    }
    due = {code: as_date(k.restriction.period.end) for code, k in tcm_tasks.items()}
    assert due == {
        "tcm-interactive-contact": date(2026, 3, 11),  # 2 business days
        "tcm-face-to-face": date(2026, 3, 16),  # 7 days (high)
        "medication-reconciliation": date(2026, 3, 16),
    }
    assert {reference_str(k.owner) for k in tcm_tasks.values()} == {cm}
    reconciliation = tcm_tasks["medication-reconciliation"]
    assert f"CarePlan/{plan.id}" in {reference_str(b) for b in reconciliation.basedOn or []}

    # 6. The call list on the 12th: the missed contact deadline comes first.
    calls = worklist(pipeline.fhir, cm, date(2026, 3, 12))
    (row,) = [r for r in calls.rows if r.patient == f"Patient/{patient}"]
    assert row.reasons[0].kind == "tcm-overdue" and row.reasons[0].due == date(2026, 3, 11)
    assert row.programs == ("CCM",)
    monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", fhir_base_url)  # the CLI: FHIR only
    monkeypatch.delenv("CARECOORD_KAFKA_BOOTSTRAP", raising=False)
    cli = CliRunner().invoke(
        app, ["worklist", "--care-manager", cm, "--date", "2026-03-12", "--json"]
    )
    assert cli.exit_code == 0, cli.output
    listed = json.loads(cli.stdout)
    assert listed["date"] == "2026-03-12" and listed["month"] == "2026-03"
    (mine,) = [r for r in listed["patients"] if r["patient"] == f"Patient/{patient}"]
    assert mine["reasons"][0]["kind"] == "tcm-overdue"
    assert mine["reasons"][0]["due"] == "2026-03-11"

    # 7. Every TCM Task done in time; the sweeper ends the episode after its 30 days.
    for code, when in (
        ("tcm-interactive-contact", datetime(2026, 3, 10, 15, tzinfo=UTC)),
        ("medication-reconciliation", datetime(2026, 3, 13, 11, tzinfo=UTC)),
        ("tcm-face-to-face", datetime(2026, 3, 13, 12, tzinfo=UTC)),
    ):
        task = pipeline.fhir.read("Task", tcm_tasks[code].id)
        body = to_json(complete(task, reason="Done", at=when))
        body["executionPeriod"] = {**body.get("executionPeriod", {}), "end": when.isoformat()}
        pipeline.fhir.update(build("Task", body), if_match=version_of(task))
    ended = [
        e
        for e in sweep(pipeline.fhir, datetime(2026, 4, 8, 6, tzinfo=UTC))
        if e.type == TcmEpisodeEnded.event_type
        and e.data.get("episode") == f"EpisodeOfCare/{episode.id}"
    ]
    assert len(ended) == 1
    _run(pipeline, *ended)
    finished = pipeline.fhir.read("EpisodeOfCare", episode.id)
    assert finished.status == "finished"
    assert _billed(pipeline, patient) == {"99490": 1, "99496": 1}

    # 8. Disenrolment at the end of March: plan revoked, consent inactive, outreach revoked,
    #    open Tasks of the plan cancelled; April time is kept but not billed.
    disenrol = {"program": "CCM", "reason": "patient-request", "effective_date": "2026-03-31"}
    _run(pipeline, new_event("carecoord.patient.disenrolled", patient, disenrol,
                             id=f"{patient}-dis"))  # fmt: skip
    revoked = pipeline.fhir.read("CarePlan", plan.id)
    assert revoked.status == "revoked" and as_date(revoked.period.end) == date(2026, 3, 31)
    (record,) = _of(pipeline, "Consent", patient)
    assert record.status == "inactive"
    assert as_date(record.provision.period.end) == date(2026, 3, 31)
    requests = _of(pipeline, "CommunicationRequest", patient)
    assert requests and {r.status for r in requests} <= {"revoked", "completed"}
    plan_ref = f"CarePlan/{plan.id}"
    plan_tasks = [
        k for k in _of(pipeline, "Task", patient) if plan_ref in map(reference_str, k.basedOn or [])
    ]
    assert plan_tasks and all(k.status in ("completed", "cancelled") for k in plan_tasks)
    _run(pipeline, _logged(patient, 3, 30, "2026-04-02T10:00:00+00:00", cm))
    assert _billed(pipeline, patient) == {"99490": 1, "99496": 1}

    # The emitted events: one threshold (99490, unit 1), TCM billable once, ids stable.
    out = pipeline.outbound()
    thresholds = [e for e in out if e.type == "carecoord.billing.threshold-reached"]
    assert [(e.data["cpt"], e.data["unit"]) for e in thresholds] == [("99490", 1)]
    billable = [e for e in out if e.type == "carecoord.tcm.billable"]
    assert [(e.data["cpt"], e.data["date_of_service"]) for e in billable] == [
        ("99496", "2026-04-07")
    ]
    assert billable[0].subject == f"Patient/{patient}"


def test_two_unanswered_calls_after_a_discharge_count_as_the_tcm_contact(
    pipeline: Pipeline, unique: str
) -> None:
    """CMS TCM FAQ: two timely, documented, unsuccessful attempts (here carecoord's own outreach
    attempts, through the broker) stand for the interactive contact; the visit and the
    reconciliation on time, the episode bills 99496 on the real server."""
    patient = f"tcm-tries-{unique}"
    cm = f"Practitioner/cm-{unique}"
    consent = {"date": "2026-03-02", "method": "verbal", "recorded_by": cm}
    enrol = {"program": "CCM", "provider": f"Practitioner/dr-{unique}", "care_manager": cm,
             "start": "2026-03-02", "conditions": _conditions(pipeline, patient),
             "consent": consent}  # fmt: skip
    _run(pipeline, new_event("carecoord.patient.enrolled", patient, enrol, id=f"{patient}-en"))
    discharge = {"discharged_at": "2026-03-09T14:00:00+00:00", "facility": "General",
                 "setting": "inpatient", "complexity": "high"}  # fmt: skip
    _run(pipeline, new_event("carecoord.patient.discharged", patient, discharge,
                             id=f"{patient}-dc"))  # fmt: skip
    for n, at in enumerate(("2026-03-10T15:00:00+00:00", "2026-03-11T16:00:00+00:00")):
        call = {"channel": "phone", "outcome": "no-answer", "attempted_at": at, "by": cm}
        _run(pipeline, new_event("carecoord.outreach.attempted", patient, call,
                                 id=f"{patient}-call-{n}"))  # fmt: skip
    (episode,) = _of(pipeline, "EpisodeOfCare", patient)
    tasks = {
        k.code.coding[0].code: k
        for k in _of(pipeline, "Task", patient)
        if reference_str(k.focus) == f"EpisodeOfCare/{episode.id}"
    }
    for code in ("medication-reconciliation", "tcm-face-to-face"):
        when = datetime(2026, 3, 13, 12, tzinfo=UTC)
        task = pipeline.fhir.read("Task", tasks[code].id)
        body = to_json(complete(task, reason="Done", at=when))
        body["executionPeriod"] = {**body.get("executionPeriod", {}), "end": when.isoformat()}
        pipeline.fhir.update(build("Task", body), if_match=version_of(task))
    assert pipeline.fhir.read("Task", tasks["tcm-interactive-contact"].id).status != "completed"
    ended = [
        e
        for e in sweep(pipeline.fhir, datetime(2026, 4, 8, 6, tzinfo=UTC))
        if e.type == TcmEpisodeEnded.event_type
        and e.data.get("episode") == f"EpisodeOfCare/{episode.id}"
    ]
    _run(pipeline, *ended)
    assert _billed(pipeline, patient) == {"99496": 1}
