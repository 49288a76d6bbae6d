"""Enrolment, outreach escalation, overdue tasks and the sweeper against the real FHIR server
(sekmet), through the real processor: every event's effects are one transaction there, and
replays are conditional creates the server resolves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.fhir.client import FhirClient
from carecoord.handlers.jobs.sweeper import sweep
from carecoord.handlers.processing import HandlerProcessor
from carecoord.handlers.programs import care_tasks, enrolment, outreach
from support.enrolment import consented

pytestmark = pytest.mark.integration

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]


class Pipeline:
    def __init__(self, fhir: FhirClient, config: dict[str, Any]) -> None:
        self.fhir = fhir
        self.config = config
        self.processor = HandlerProcessor(SPECS, fhir, config={s.name: config for s in SPECS})
        self.emitted: list[Emit] = []

    def publish(self, *events: CloudEvent) -> None:
        for event in events:
            self.emitted.extend(self.processor.process(event))

    def sweep(self, now: datetime, patients: set[str]) -> list[str]:
        # The FHIR server is shared by the whole session: only this test's patients.
        events = [e for e in sweep(self.fhir, now, self.config) if e.patient_id in patients]
        self.publish(*events)
        return [e.id for e in events]

    def of(self, resource_type: str, patient: str) -> list[Any]:
        return self.fhir.search(resource_type, {"patient": f"Patient/{patient}"})

    def tasks(self, patient: str, code: str) -> list[Any]:
        return [t for t in self.of("Task", patient) if t.code.coding[0].code == code]


@pytest.fixture
def fhir(fhir_base_url: str) -> Iterator[FhirClient]:
    client = FhirClient(fhir_base_url)
    yield client
    client.close()


def _enrolled(patient: str, **data: Any) -> CloudEvent:
    body = consented(
        {"program": "CCM", "provider": "Practitioner/doc", "start": "2024-05-03", **data}
    )
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}")


def _attempt(patient: str, n: int, outcome: str, day: int | None = None) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": f"2024-05-{day or 10 + n:02d}T10:00:00Z",
        "by": "Practitioner/cm",
    }
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}-{n}")


def test_enrolment_assigns_by_capacity_and_replays_create_nothing(
    fhir: FhirClient, unique: str
) -> None:
    cms = [f"Practitioner/cm-a-{unique}", f"Practitioner/cm-b-{unique}"]
    config = {
        "care_managers": [{"reference": r, "capacity": 1} for r in cms],
        "supervisor": f"Practitioner/sup-{unique}",
    }
    pipe = Pipeline(fhir, config)
    patients = [f"p{i}-{unique}" for i in range(3)]
    for p in patients:
        pipe.publish(_enrolled(p), _enrolled(p))
    managers = {}
    for p in patients:
        [plan] = pipe.of("CarePlan", p)
        assert not plan.contained  # a standalone US Core CareTeam, referenced by the plan
        [link] = plan.careTeam
        team = fhir.read("CareTeam", link.reference.split("/")[1])
        managers[p] = {m.member.reference for m in team.participant} - {"Practitioner/doc"}
        assert len(pipe.of("CommunicationRequest", p)) == 1
        assert len(pipe.tasks(p, "care-plan-review")) == 1
    assert sorted(next(iter(managers[p])) for p in patients[:2]) == sorted(cms)
    assert managers[patients[2]] == set()  # nobody overloaded...
    [assign] = pipe.tasks(patients[2], "assign-care-manager")
    assert assign.owner.reference == f"Practitioner/sup-{unique}"  # ...the supervisor decides


def test_three_unanswered_attempts_escalate_once_answered_ones_never(
    fhir: FhirClient, unique: str
) -> None:
    pipe = Pipeline(fhir, {"lead_care_manager": f"Practitioner/lead-{unique}"})
    silent, reached = f"silent-{unique}", f"reached-{unique}"
    for p in (silent, reached):
        pipe.publish(_enrolled(p, care_manager=f"Practitioner/cm-{unique}"))
    for n, outcome in enumerate(["no-answer", "voicemail", "no-answer", "no-answer"]):
        pipe.publish(_attempt(silent, n, outcome), _attempt(silent, n, outcome))
    pipe.publish(_attempt(reached, 0, "answered"))
    for n in range(1, 4):
        pipe.publish(_attempt(reached, n, "no-answer"))
    assert len(pipe.of("Communication", silent)) == 4
    [task] = pipe.tasks(silent, "outreach-escalation")
    [request] = [r for r in pipe.of("CommunicationRequest", silent) if r.medium[0].text == "phone"]
    assert task.priority == "urgent"
    assert task.focus.reference == f"CommunicationRequest/{request.id}"
    assert task.owner.reference == f"Practitioner/lead-{unique}"
    assert {r.medium[0].text for r in pipe.of("CommunicationRequest", silent)} == {"phone", "sms"}
    escalated = [e for e in pipe.emitted if e.type == "carecoord.outreach.escalated"]
    # Each attempt was delivered twice; the redelivery of the one that escalated re-emits the
    # same event (transactional outbox, at-least-once): one escalation id, never a second.
    assert {(e.id, e.subject) for e in escalated} == {(escalated[0].id, f"Patient/{silent}")}
    assert pipe.tasks(reached, "outreach-escalation") == []
    # an answer later in the month completes the request and closes the escalation
    pipe.publish(_attempt(silent, 9, "answered", day=25))
    [task] = pipe.tasks(silent, "outreach-escalation")
    assert task.status == "cancelled"
    assert {r.status for r in pipe.of("CommunicationRequest", silent)} == {"completed"}


def test_wrong_number_and_declined(fhir: FhirClient, unique: str) -> None:
    pipe = Pipeline(fhir, {"lead_care_manager": f"Practitioner/lead-{unique}"})
    wrong, declined = f"wrong-{unique}", f"declined-{unique}"
    for p in (wrong, declined):
        pipe.publish(_enrolled(p, care_manager=f"Practitioner/cm-{unique}"))
    pipe.publish(_attempt(wrong, 0, "wrong-number"))
    assert len(pipe.tasks(wrong, "verify-contact-details")) == 1
    pipe.publish(_attempt(declined, 0, "declined"))
    for n in range(1, 4):
        pipe.publish(_attempt(declined, n, "no-answer"))
    [request] = pipe.of("CommunicationRequest", declined)
    assert request.status == "revoked"
    assert pipe.tasks(declined, "outreach-escalation") == []


def test_sweeper_creates_next_month_escalates_near_period_end_and_overdue_tasks(
    fhir: FhirClient, unique: str
) -> None:
    config = {
        "lead_care_manager": f"Practitioner/lead-{unique}",
        "supervisor": f"Practitioner/sup-{unique}",
    }
    pipe = Pipeline(fhir, config)
    p = f"swept-{unique}"
    pipe.publish(_enrolled(p, care_manager=f"Practitioner/cm-{unique}"))
    # 2024-05-28: within 5 days of the month's end, outreach never answered; tasks overdue
    first = pipe.sweep(datetime(2024, 5, 28, tzinfo=UTC), {p})
    assert any(i.startswith("sweep:outreach-nearly-overdue:") for i in first)
    assert any(i.startswith("sweep:task-overdue:") for i in first)
    assert len(pipe.tasks(p, "outreach-escalation")) == 1
    assert len(pipe.tasks(p, "overdue-escalation")) == 2  # assessment + med rec are past due
    assert pipe.sweep(datetime(2024, 5, 28, 0, 5, tzinfo=UTC), {p}) == []  # idempotent
    # June: the month's outreach request and review Task appear
    june = pipe.sweep(datetime(2024, 6, 3, tzinfo=UTC), {p})
    # ...and May's care-plan review, due 2024-05-31, is now overdue
    assert sorted(i.split(":")[1] for i in june) == ["outreach-due", "task-overdue"]
    periods = sorted(
        r.occurrencePeriod.start.isoformat()
        for r in pipe.of("CommunicationRequest", p)
        if r.medium[0].text == "phone"
    )
    assert periods == ["2024-05-01", "2024-06-01"]
    assert pipe.sweep(datetime(2024, 6, 3, 0, 5, tzinfo=UTC), {p}) == []
