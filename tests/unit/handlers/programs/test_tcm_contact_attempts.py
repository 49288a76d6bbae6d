"""TCM's pure decisions: which Communications are unsuccessful contact attempts, when an
episode's deadlines were met, and which episodes are over (docs/billing-rules.md T1-T6)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.envelope import new_event
from carecoord.handlers.care.model import build
from carecoord.handlers.programs import enrolment, tcm
from carecoord.handlers.programs.tcm import (
    TcmConfig,
    deadlines_met,
    episodes_ended,
    unsuccessful_attempts,
)
from carecoord.testing import InMemoryFhir
from support.care_management import Runner, enrolled

P = "Patient/p1"
START, DUE = date(2025, 8, 29), date(2025, 9, 3)


def comm(sent: str | None, status: str = "not-done", subject: str = P, n: int = 0) -> Any:
    body: dict[str, Any] = {"id": f"c{n}", "status": status, "subject": {"reference": subject}}
    if sent is not None:
        body["sent"] = sent
    return build("Communication", body)


def count(*comms: Any) -> int:
    return unsuccessful_attempts(list(comms), P, START, DUE)


def test_an_answered_call_is_not_an_unsuccessful_attempt() -> None:
    assert count(comm("2025-09-01T10:00:00Z", "completed")) == 0
    assert count(comm("2025-09-01T10:00:00Z", "in-progress")) == 0
    assert count(comm("2025-09-01T10:00:00Z"), comm("2025-09-02T10:00:00Z", "completed", n=1)) == 1


def test_unsuccessful_attempts_of_the_patient_in_the_window_count_once_per_time() -> None:
    assert count(comm("2025-09-01T10:00:00Z"), comm("2025-09-02T10:00:00Z", n=1)) == 2
    assert count(comm("2025-09-01T10:00:00Z"), comm("2025-09-01T10:00:00Z", n=1)) == 1
    # The window's ends count: the discharge day and the due date.
    assert count(comm("2025-08-29T08:00:00Z"), comm("2025-09-03T20:00:00Z", n=1)) == 2


@pytest.mark.parametrize(
    "other",
    [
        comm("2025-08-28T23:00:00Z"),  # before the discharge day
        comm("2025-09-04T00:00:00Z"),  # after the due date
        comm("2025-09-01T10:00:00Z", subject="Patient/p2"),  # another patient
        comm(None),  # no time: not a documented attempt
        comm("2025-09"),  # a partial date: no day
    ],
    ids=["before", "after", "other-patient", "no-time", "partial-date"],
)
def test_other_communications_are_not_attempts(other: Any) -> None:
    assert count(other) == 0


def test_only_communications_count() -> None:
    task = build(
        "Task", {"id": "t", "status": "failed", "intent": "order", "for": {"reference": P}}
    )
    assert unsuccessful_attempts([task], P, START, DUE) == 0


def tcm_task(work: t.Code, due: str | None, done: str | None, *, status: str = "") -> Any:
    body: dict[str, Any] = {
        "id": work.code,
        "status": status or ("completed" if done else "requested"),
        "intent": "order",
        "code": work.concept_json(),
        "for": {"reference": P},
        "authoredOn": "2025-08-29T10:00:00Z",
    }
    if due is not None:
        body["restriction"] = {"period": {"end": due}}
    if done is not None:
        body["executionPeriod"] = {"start": done, "end": done}
    return build("Task", body)


def episode(
    contact: str | None = "2025-09-03",
    visit: str | None = "2025-09-10",
    reconciled: str | None = "2025-09-10",
) -> list[Any]:
    return [
        tcm_task(t.TASK_TCM_INTERACTIVE_CONTACT, "2025-09-03", contact),
        tcm_task(t.TASK_TCM_FACE_TO_FACE, "2025-09-12", visit),
        tcm_task(t.TASK_MEDICATION_RECONCILIATION, "2025-09-12", reconciled),
    ]


def test_deadlines_met_on_their_last_day() -> None:
    assert deadlines_met(episode())
    assert deadlines_met(episode(visit="2025-09-12", reconciled="2025-09-12"))


@pytest.mark.parametrize(
    "tasks",
    [
        episode(contact="2025-09-04"),  # a day late
        episode(contact=None),  # never made
        episode(visit="2025-09-13", reconciled="2025-09-12"),
        episode(reconciled="2025-09-11"),  # after the visit
        episode(visit=None),
        episode()[:2],  # a Task missing
    ],
    ids=["contact-late", "no-contact", "visit-late", "reconciled-after", "no-visit", "missing"],
)
def test_deadlines_missed(tasks: list[Any]) -> None:
    assert not deadlines_met(tasks)


def test_attempts_stand_for_the_contact_only_when_there_are_enough() -> None:
    tasks = episode(contact=None)
    assert deadlines_met(tasks, attempts=2)
    assert deadlines_met(tasks, attempts=3, required_attempts=3)
    assert not deadlines_met(tasks, attempts=1)
    assert not deadlines_met(tasks, attempts=2, required_attempts=3)
    assert not deadlines_met(tasks, required_attempts=1)  # no attempts unless counted
    # Attempts never excuse a late visit.
    assert not deadlines_met(episode(contact=None, visit="2025-09-13"), attempts=5)


def test_a_task_without_a_due_date_is_not_met() -> None:
    tasks = episode()
    tasks[1] = tcm_task(t.TASK_TCM_FACE_TO_FACE, None, "2025-09-10")
    assert not deadlines_met(tasks)


def test_completion_falls_back_to_last_modified() -> None:
    late = tcm_task(t.TASK_TCM_INTERACTIVE_CONTACT, "2025-09-03", None, status="completed")
    late = build("Task", {**late.model_dump(mode="json"), "lastModified": "2025-09-05T10:00:00Z"})
    on_time = build(
        "Task", {**late.model_dump(mode="json"), "lastModified": "2025-09-02T10:00:00Z"}
    )
    assert not deadlines_met([late, *episode()[1:]])
    assert deadlines_met([on_time, *episode()[1:]])


def test_completion_falls_back_to_when_it_was_authored() -> None:
    contact = tcm_task(t.TASK_TCM_INTERACTIVE_CONTACT, "2025-09-03", None, status="completed")
    assert deadlines_met([contact, *episode()[1:]])  # authored 29 August, the discharge day
    late = build("Task", {**contact.model_dump(mode="json"), "authoredOn": "2025-09-04T09:00:00Z"})
    assert not deadlines_met([late, *episode()[1:]])


def test_a_cancelled_task_is_not_completed() -> None:
    tasks = episode()
    tasks[0] = tcm_task(
        t.TASK_TCM_INTERACTIVE_CONTACT, "2025-09-03", "2025-09-02", status="cancelled"
    )
    assert not deadlines_met(tasks)


def _discharged_and_contacted(run: Runner, *statuses: str) -> None:
    run.run(enrolled("p1", care_manager="Practitioner/cm1", start="2025-08-01"))
    run.run(
        new_event(
            "carecoord.patient.discharged",
            "p1",
            {
                "discharged_at": "2025-08-29T15:00:00+00:00",
                "facility": "General",
                "setting": "inpatient",
                "complexity": "moderate",
            },
            id="discharge-p1",
        )
    )
    for n, status in enumerate(statuses):
        run.fhir.put(
            {
                "resourceType": "Communication",
                "id": f"call-{n}",
                "status": status,
                "subject": {"reference": P},
                "sent": f"2025-09-0{n + 1}T10:00:00Z",
            }
        )
    for task in run.fhir.all("Task"):
        if task["code"]["coding"][0]["code"] in ("tcm-face-to-face", "medication-reconciliation"):
            task.update(status="completed", executionPeriod={"end": "2025-09-10"})
            run.fhir.put(task)


def _billed(run: Runner) -> list[str]:
    [(_, ref)] = episodes_ended(run.fhir, datetime(2025, 9, 28, tzinfo=UTC))
    run.run(new_event("carecoord.tcm.episode-ended", "p1", {"episode": ref}, id="end"))
    items = [c for c in run.fhir.all("ChargeItem") if c["status"] == "billable"]
    return [c["code"]["coding"][0]["code"] for c in items]


def test_an_answered_call_and_one_unanswered_do_not_stand_for_the_contact() -> None:
    run = Runner([*enrolment.HANDLERS, *tcm.HANDLERS])
    _discharged_and_contacted(run, "completed", "not-done")
    assert _billed(run) == []
    run = Runner([*enrolment.HANDLERS, *tcm.HANDLERS])
    _discharged_and_contacted(run, "not-done", "not-done")
    assert _billed(run) == ["99495"]


class Recorded(InMemoryFhir):
    def __init__(self) -> None:
        super().__init__()
        self.params: list[list[tuple[str, str]]] = []

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.params.append(list(params))
        return super().search(resource_type, [])  # a server ignoring the parameters


def test_episodes_ended_search_and_refilter() -> None:
    fhir = Recorded()
    fhir.put(
        {
            "resourceType": "EpisodeOfCare",
            "id": "open",
            "status": "active",
            "patient": {"reference": P},
        }
    )  # no period: never over
    fhir.put(
        {
            "resourceType": "EpisodeOfCare",
            "id": "done",
            "status": "finished",
            "patient": {"reference": P},
            "period": {"start": "2025-01-01", "end": "2025-01-30"},
        }
    )
    assert episodes_ended(fhir, datetime(2025, 9, 28, tzinfo=UTC)) == []
    assert fhir.params == [[("identifier", f"{tcm.EPISODE_ID}|"), ("status", "active")]]


def test_episodes_end_the_day_after_their_period(monkeypatch: pytest.MonkeyPatch) -> None:
    fhir = InMemoryFhir()
    fhir.put(
        {
            "resourceType": "EpisodeOfCare",
            "id": "e1",
            "status": "active",
            "identifier": [{"system": tcm.EPISODE_ID, "value": "p1:2025-08-29"}],
            "patient": {"reference": P},
            "period": {"start": "2025-08-29", "end": "2025-09-27"},
        }
    )
    assert episodes_ended(fhir, datetime(2025, 9, 27, 23, tzinfo=UTC)) == []
    assert episodes_ended(fhir, datetime(2025, 9, 28, tzinfo=UTC)) == [("p1", "EpisodeOfCare/e1")]
    # The day is UTC's, whatever the zone of `now`.
    late = datetime.fromisoformat("2025-09-27T22:00:00-05:00")
    assert episodes_ended(fhir, late) == [("p1", "EpisodeOfCare/e1")]
    monkeypatch.setenv("TZ", "America/Chicago")  # and whatever the machine's zone
    time.tzset()
    try:
        assert episodes_ended(fhir, late) == [("p1", "EpisodeOfCare/e1")]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_config_calendar_uses_configured_holidays() -> None:
    config = TcmConfig(holidays=[date(2025, 9, 2)], federal_holidays=False)
    assert config.calendar().add_business_days(date(2025, 8, 29), 2) == date(2025, 9, 3)
