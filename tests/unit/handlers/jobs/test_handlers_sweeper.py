"""The sweeper: deterministic events for due outreach, nearly-overdue outreach and overdue
Tasks; after the handlers ran, sweeping again yields nothing new."""

from __future__ import annotations

from datetime import UTC, datetime

from carecoord.handlers.jobs.sweeper import sweep
from carecoord.handlers.programs import care_tasks, enrolment, outreach
from support.care_management import Runner, attempted, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]
CONFIG = {"lead_care_manager": "Practitioner/lead", "supervisor": "Practitioner/sup"}


def _run_sweep(run: Runner, now: datetime) -> list[str]:
    events = sweep(run.fhir, now, run.config)
    for event in events:
        run.run(event)
    return [e.id for e in events]


def test_next_month_gets_its_outreach_request_and_review_task() -> None:
    run = Runner(SPECS, CONFIG)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2024-05-03"))
    ids = _run_sweep(run, datetime(2024, 6, 2, tzinfo=UTC))
    plan = run.fhir.all("CarePlan")[0]
    assert f"sweep:outreach-due:CarePlan/{plan['id']}:2024-06" in ids
    june = [
        r
        for r in run.fhir.all("CommunicationRequest")
        if r["occurrencePeriod"]["start"] == "2024-06-01"
    ]
    assert len(june) == 1 and june[0]["requester"] == {"reference": "Practitioner/cm1"}
    assert len(run.fhir.tasks("care-plan-review")) == 2
    again = sweep(run.fhir, datetime(2024, 6, 2, 0, 5, tzinfo=UTC), run.config)
    assert not [e for e in again if e.type == "carecoord.outreach.due"]


def test_outreach_still_open_near_the_end_of_the_month_is_escalated_once() -> None:
    run = Runner(SPECS, CONFIG)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2024-05-03"))
    run.run(enrolled("p2", care_manager="Practitioner/cm1", start="2024-05-03"))
    run.run(attempted("p2", 0, "answered"))
    assert not any("nearly" in i for i in _run_sweep(run, datetime(2024, 5, 20, tzinfo=UTC)))
    ids = _run_sweep(run, datetime(2024, 5, 28, tzinfo=UTC))
    assert len([i for i in ids if i.startswith("sweep:outreach-nearly-overdue:")]) == 1
    [task] = run.fhir.tasks("outreach-escalation")
    assert task["for"] == {"reference": "Patient/p1"}
    assert len([e for e in run.emitted if e.type == "carecoord.outreach.escalated"]) == 1
    # the sweeper racing a third unanswered attempt: still one escalation
    for n in range(3):
        run.run(attempted("p1", n, "no-answer", at="2024-05-2{n}T10:00:00Z"))
    assert not any("nearly" in i for i in _run_sweep(run, datetime(2024, 5, 29, tzinfo=UTC)))
    assert len(run.fhir.tasks("outreach-escalation")) == 1


def test_overdue_tasks_are_reported_until_escalated() -> None:
    run = Runner(SPECS, CONFIG)
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2024-05-03"))
    now = datetime(2024, 5, 12, tzinfo=UTC)  # medication reconciliation was due 2024-05-10
    first = sweep(run.fhir, now, run.config)
    assert [e.type for e in first] == ["carecoord.task.overdue"]
    assert [e.id for e in sweep(run.fhir, now, run.config)] == [e.id for e in first]
    run.run(first[0])
    assert sweep(run.fhir, now, run.config) == []
    assert len(run.fhir.tasks("overdue-escalation")) == 1


def test_sweep_config_keeps_a_setting_another_handler_leaves_unset() -> None:
    from carecoord.handlers.jobs.sweeper import sweep_config

    merged = sweep_config(
        {"care-tasks": {"supervisor": "Practitioner/sup-1"}, "enrolment": {"supervisor": None}}
    )
    assert merged["supervisor"] == "Practitioner/sup-1"


def test_the_in_service_sweeper_runs_for_clinical_routing_alone() -> None:
    """Overdue clinical questions are found by the sweeper: a deployment running only the
    clinical-routing handler still gets it, at the default interval."""
    from types import SimpleNamespace

    from carecoord.handlers.jobs.sweeper import periodic_jobs

    def service(*names: str) -> SimpleNamespace:
        handlers = SimpleNamespace(names=names, configs={n: {} for n in names})
        return SimpleNamespace(handlers=handlers, settings=SimpleNamespace(sweeper_interval=300.0))

    assert [i for i, _ in periodic_jobs(service("clinical-routing"))] == [300.0]
    assert periodic_jobs(service("billing")) == []
