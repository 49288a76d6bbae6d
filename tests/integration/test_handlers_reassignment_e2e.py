"""Caseload reassignment end to end: patients enrolled with a care manager who then leaves
(marked inactive in the configuration); the sweep finds them, its events go through the real
broker and runtime, and the real FHIR server ends up with every patient's care team, outreach
requests and open Tasks with the other care manager. Replaying the events changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from carecoord.caremodel.workflow import FINAL
from carecoord.catalog import CareManagerReassign, CareManagerReassigned
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.handlers.care.model import Month, reference_str
from carecoord.handlers.jobs.sweeper import sweep, sweep_config
from carecoord.handlers.programs.caseload import caseload_patients
from carecoord.handlers.programs.outreach import care_team_of
from support.enrolment import consented
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

MAY = Month(2024, 5)
RESOURCE_TYPES = ("CarePlan", "CommunicationRequest", "Task")


def _enrolled(patient: str, care_manager: str) -> CloudEvent:
    body = consented(
        {
            "program": "CCM",
            "provider": "Practitioner/doc",
            "care_manager": care_manager,
            "start": "2024-05-03",
        }
    )
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}")


def _attempt(patient: str, outcome: str, by: str) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": "2024-05-10T10:00:00Z",
        "by": by,
    }
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}")


def _resources(pipeline: Pipeline, rtype: str, patient: str) -> list[Any]:
    found = pipeline.fhir.search(rtype, {"patient": f"Patient/{patient}"})
    return [r for r in found if r.get_resource_type() == rtype]


def _versions(pipeline: Pipeline, patients: list[str]) -> dict[str, str]:
    return {
        f"{rtype}/{r.id}": str(r.meta.versionId)
        for patient in patients
        for rtype in RESOURCE_TYPES
        for r in _resources(pipeline, rtype, patient)
    }


def _task_code(task: Any) -> str:
    return str(task.code.coding[0].code)


def test_patients_of_a_care_manager_who_left_move_to_the_other_one(
    pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    cm_a, cm_b = f"Practitioner/cm-a-{unique}", f"Practitioner/cm-b-{unique}"
    patients = [f"ra-{unique}-{n}" for n in range(3)]
    both_active = [{"reference": cm_a}, {"reference": cm_b}]
    working = pipeline_factory(
        config={
            "enrolment": {"care_managers": both_active},
            "outreach": {"lead_care_manager": cm_a, "max_unanswered": 1},
        }
    )
    working.publish(*[_enrolled(p, cm_a) for p in patients])
    working.publish(_attempt(patients[0], "no-answer", cm_a))  # escalation owned by cm A
    working.publish(_attempt(patients[1], "wrong-number", cm_a))  # verify-contact for cm A
    working.wait_idle()
    assert caseload_patients(working.fhir, cm_a, MAY) == set(patients)

    a_left = [{"reference": cm_a, "active": False}, {"reference": cm_b}]
    after = pipeline_factory(
        config={
            "enrolment": {"care_managers": a_left},
            "outreach": {"lead_care_manager": cm_b},
            "reassignment": {"care_managers": a_left},
        }
    )
    now = datetime(2024, 5, 20, 8, tzinfo=UTC)
    config = sweep_config(after.table.configs)
    moves = [e for e in sweep(after.fhir, now, config) if e.type == CareManagerReassign.event_type]
    assert sorted(e.id for e in moves) == [f"sweep:reassign:{p}:{cm_a}:2024-05" for p in patients]
    after.publish(*moves)
    after.wait_idle()
    assert after.dead_letters() == []

    for patient in patients:
        [plan] = _resources(after, "CarePlan", patient)
        assert care_team_of(plan)[0] == cm_b
        requests = _resources(after, "CommunicationRequest", patient)
        assert requests and {reference_str(cr.requester) for cr in requests} == {cm_b}
        open_tasks = [t for t in _resources(after, "Task", patient) if t.status not in FINAL]
        assert open_tasks and {reference_str(t.owner) for t in open_tasks} == {cm_b}
    assert len(_resources(after, "CommunicationRequest", patients[0])) == 2  # + alternative
    escalated = {_task_code(t) for t in _resources(after, "Task", patients[0])}
    assert "outreach-escalation" in escalated
    checks = {_task_code(t) for t in _resources(after, "Task", patients[1])}
    assert "verify-contact-details" in checks
    assert caseload_patients(after.fhir, cm_b, MAY) == set(patients)
    assert caseload_patients(after.fhir, cm_a, MAY) == set()
    announced = [e for e in after.outbound() if e.type == CareManagerReassigned.event_type]
    assert sorted(e.subject for e in announced) == sorted(f"Patient/{p}" for p in patients)
    assert {e.data["care_manager"] for e in announced} == {cm_b}

    # replaying every trigger changes nothing, and the next sweep finds nobody left to move
    before = _versions(after, patients)
    after.publish(*moves)
    after.wait_idle()
    assert _versions(after, patients) == before
    assert after.dead_letters() == []
    # a replay re-announces (at-least-once, transactional outbox) under the same ids only
    replayed = [e for e in after.outbound() if e.type == CareManagerReassigned.event_type]
    assert {e.id for e in replayed} == {e.id for e in announced}
    assert not [
        e for e in sweep(after.fhir, now, config) if e.type == CareManagerReassign.event_type
    ]
