"""A patient referred on an in-memory FHIR server holding the sample HSDS directory, run through
the real processor (carecoord.testing.run_events)."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.healthcareservice import HealthcareService

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import care_plan, care_team
from carecoord.directory.hsds import import_directory
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of, handlers
from carecoord.handlers.referrals.ranking import ReferralCriteria
from carecoord.testing import events
from carecoord.testing.fhir import InMemoryFhir
from carecoord.testing.run import NOW, run_events
from support.paths import SAMPLE_DIRECTORY

SAMPLE = SAMPLE_DIRECTORY
CONFIG = {"referrals": {"organization": "Organization/practice", "practice_phone": "+1 555 0100"}}


class _Writer:
    def __init__(self, fhir: InMemoryFhir) -> None:
        self.fhir = fhir

    def search(self, resource_type: str, params: Any) -> list[Any]:
        return self.fhir.search(resource_type, params)

    def apply(self, writes: Any) -> None:
        self.fhir.apply(list(writes))


def referred(*, plan: bool = False) -> tuple[InMemoryFhir, Any]:
    """A patient referred to the best match of the sample directory (with an active CarePlan
    if `plan`): (FHIR, the first Task)."""
    fhir = InMemoryFhir()
    if plan:
        fhir.put(to_json(care_plan(patient="Patient/p1", program="CCM", start=NOW.date())))
    assert import_directory(_Writer(fhir), json.loads(SAMPLE.read_text())).problems == []
    team = care_team(patient="Patient/p1", program="CCM", start=NOW.date(),
                     care_manager="Practitioner/cm-1", provider="Practitioner/dr-1")  # fmt: skip
    fhir.put(to_json(team))
    run = run_events(handlers, events.sdoh_need_identified("p1"), fhir=fhir, config=CONFIG)
    assert run.dead_letters == []
    return fhir, referral_tasks(fhir)[0]


def referral_tasks(fhir: InMemoryFhir) -> list[Any]:
    found = [tk for tk in fhir.resources("Task") if attempt_of(tk) is not None]
    return sorted(found, key=lambda tk: attempt_of(tk).number)  # type: ignore[union-attr]


def status_changed(fhir: InMemoryFhir, task: Any, status: str, event_id: str, **data: Any) -> Any:
    ev = events.referral_status_changed("p1", f"Task/{task.id}", status, id=event_id, **data)
    run = run_events(handlers, ev, fhir=fhir, config=CONFIG)
    assert run.dead_letters == []
    return run


def patient_referral_tasks(fhir: Any, patient: str) -> list[Any]:
    """The patient's referral Tasks on a FHIR server (any FhirReader), by attempt number."""
    found = [
        task
        for task in fhir.search("Task", {"patient": f"Patient/{patient}"})
        if task.get_resource_type() == "Task" and attempt_of(task) is not None
    ]
    return sorted(found, key=lambda task: attempt_of(task).number)  # type: ignore[union-attr]


FOOD_NEED = ReferralCriteria(domain="food-insecurity", postal_code="62701")


def food_service(sid: str, capacity: str | None = None, **extra: Any) -> HealthcareService:
    """An active food-insecurity HealthcareService, with a capacityStatus if given."""
    data: dict[str, Any] = {
        "resourceType": "HealthcareService",
        "id": sid,
        "name": sid,
        "active": True,
        "providedBy": {"reference": f"Organization/{sid}"},
        "category": [{"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": FOOD_NEED.domain}]}],
        **extra,
    }
    if capacity is not None:
        status = {"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": capacity}]}
        data["extension"] = [
            {
                "url": t.CAPACITY_STATUS_EXTENSION,
                "extension": [
                    {"url": "capacityStatus", "valueCodeableConcept": status},
                    {"url": "capacityNotes", "valueString": "about 15 on the waitlist"},
                ],
            }
        ]
    return HealthcareService.model_validate(data)
