"""Community referrals, clinical routing and billing end to end: events through the real broker,
the runtime running every built-in handler, resources on the real FHIR server."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import parse_resource, to_json
from carecoord.handlers.referrals.handler import attempt_of
from support.enrolment import consented
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
REQUESTER = {"referrals": {"requester": "Organization/clinic-e2e"}}
PRACTICE = {
    "referrals": {"organization": "Organization/practice-e2e", "practice_phone": "+1 217 555 0100"}
}
OFFICIAL = Path(__file__).parents[1] / "fixtures" / "hsds" / "service_full.json"
# The official example's taxonomy term is a placeholder ("taxonomy" / "code"); a user maps it
# in configuration. social-connection: no sample service offers it, so only this one matches.
OFFICIAL_MAP = {"taxonomy|code": "social-connection"}


@pytest.fixture(scope="module")
def directory(fhir_base_url: str) -> None:
    """The sample directory (idempotent: every module may import it)."""
    with FhirClient(fhir_base_url) as client:
        report = import_directory(client, json.loads(SAMPLE.read_text()))
    assert report.problems == []


def referral_tasks(pipeline: Pipeline, patient: str) -> list[Any]:
    found = [
        task
        for task in pipeline.fhir.search("Task", {"patient": f"Patient/{patient}"})
        if task.get_resource_type() == "Task" and attempt_of(task) is not None
    ]
    return sorted(found, key=lambda task: attempt_of(task).number)  # type: ignore[union-attr]


def manual_tasks(pipeline: Pipeline, patient: str) -> list[Any]:
    return [
        task
        for task in pipeline.fhir.search("Task", {"patient": f"Patient/{patient}"})
        if task.get_resource_type() == "Task" and t.concept_has(task.code, t.TASK_MANUAL_REFERRAL)
    ]


def counts(pipeline: Pipeline, patient: str) -> dict[str, int]:
    out = {}
    for rtype in ("Condition", "Goal", "ServiceRequest", "Task", "ChargeItem"):
        found = pipeline.fhir.search(rtype, {"subject": f"Patient/{patient}"})
        out[rtype] = len([r for r in found if r.get_resource_type() == rtype])
    return out


def status_changed(
    patient: str, task: Any, status: str, reason: str | None = None, set_by: str | None = None
) -> CloudEvent:
    data = {"task": f"Task/{task.id}", "status": status}
    if reason:
        data["reason"] = reason
    if set_by:
        data["set_by"] = set_by
    return new_event("carecoord.referral.status-changed", patient, data)


def need(patient: str, **data: Any) -> CloudEvent:
    body = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    return new_event("carecoord.sdoh.need-identified", patient, {**body, **data})


def outbound_of(pipeline: Pipeline, type_: str) -> list[CloudEvent]:
    return [e for e in pipeline.outbound() if e.type == type_]


def test_rejected_twice_lands_with_the_third_none_left_is_manual_and_replays_are_harmless(
    directory: None, pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory(config=REQUESTER)
    patient = f"ref-{unique}"
    first_need = need(patient, eligibility=["families"])  # the seniors-only box is ruled out
    pipeline.publish(first_need)
    pipeline.wait_idle()

    services = []
    rejections = []
    for attempt in (1, 2, 3):
        tasks = referral_tasks(pipeline, patient)
        assert [attempt_of(tk).number for tk in tasks] == list(range(1, attempt + 1))  # type: ignore[union-attr]
        current = tasks[-1]
        assert (current.status, current.intent) == ("requested", "order")
        assert t.concept_has(current.code, t.TASK_FULFILL)
        assert current.requester.reference == "Organization/clinic-e2e"
        services.append(attempt_of(current).service)  # type: ignore[union-attr]
        rejections.append(status_changed(patient, current, "rejected", "waiting list full"))
        pipeline.publish(rejections[-1])
        pipeline.wait_idle()
    assert len(set(services)) == 3, "the third attempt went to the third candidate"

    tasks = referral_tasks(pipeline, patient)
    assert [tk.status for tk in tasks] == ["rejected"] * 3
    assert all(tk.statusReason.text == "waiting list full" for tk in tasks)
    (manual,) = manual_tasks(pipeline, patient)
    assert manual.owner.reference == "Organization/clinic-e2e"
    created = outbound_of(pipeline, "carecoord.referral.created")
    unmatched = outbound_of(pipeline, "carecoord.referral.unmatched")
    assert [e.data["attempt"] for e in created] == [1, 2, 3]
    assert len(unmatched) == 1 and len(unmatched[0].data["tried"]) == 3

    before = counts(pipeline, patient)
    pipeline.publish(first_need, *rejections)  # every event delivered a second time
    pipeline.wait_idle()
    assert counts(pipeline, patient) == before
    replayed = outbound_of(pipeline, "carecoord.referral.created")
    assert {e.id for e in replayed} == {e.id for e in created}, "replays re-announce, same ids"
    assert pipeline.dead_letters() == []


def test_completed_referral_closes_the_loop_on_the_care_plan(
    directory: None, pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory(config=PRACTICE)
    patient = f"done-{unique}"
    pipeline.publish(
        new_event(
            "carecoord.patient.enrolled",
            patient,
            consented({"program": "CCM", "provider": f"Practitioner/dr-{unique}",
                       "care_manager": f"Practitioner/cm-{unique}", "start": "2026-03-02"}),
        ),
        need(patient, language="es"),
    )  # fmt: skip
    pipeline.wait_idle()
    assert [(d.error_type, d.error_message) for d in pipeline.dead_letters()] == []
    (task,) = referral_tasks(pipeline, patient)
    # The care manager refers, through their PractitionerRole at the practice (SDOHCC Task
    # requester: PractitionerRole or Organization).
    role = pipeline.fhir.read("PractitionerRole", task.requester.reference.split("/")[1])
    assert role.practitioner.reference == f"Practitioner/cm-{unique}"
    assert role.organization.reference == "Organization/practice-e2e"
    for status in ("accepted", "in-progress"):
        pipeline.publish(status_changed(patient, task, status))
    pipeline.wait_idle()
    # The CBO reports the resulting activity on the Task, then completes it.
    current = to_json(pipeline.fhir.read("Task", task.id))
    current["output"] = [
        {
            "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
            "valueCodeableConcept": {"coding": [{"system": t.SNOMED, "code": "467771000124109"}]},
        }
    ]
    pipeline.fhir.update(parse_resource(current))
    pipeline.publish(status_changed(patient, task, "completed"))
    pipeline.wait_idle()

    assert pipeline.fhir.read("Task", task.id).status == "completed"
    (sr,) = pipeline.fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
    assert sr.status == "completed"
    assert t.concept_has(sr.category[0], t.SR_CATEGORY_SOCIAL_SERVICE)
    goals = [
        g
        for g in pipeline.fhir.search("Goal", {"subject": f"Patient/{patient}"})
        # the test server ignores Goal search parameters: filter here
        if g.subject.reference == f"Patient/{patient}"
    ]
    # carecoord does not decide the Goal is achieved: the care manager reviews it.
    assert len(goals) == 1 and goals[0].lifecycleStatus == "active"
    (review,) = [
        tk
        for tk in pipeline.fhir.search("Task", {"patient": f"Patient/{patient}"})
        if t.concept_has(tk.code, t.TASK_REVIEW_REFERRAL_OUTCOME)
    ]
    assert review.owner.reference == f"Practitioner/cm-{unique}"
    assert review.focus.reference == f"Goal/{goals[0].id}"
    (plan,) = pipeline.fhir.search("CarePlan", {"subject": f"Patient/{patient}"})
    activity = next(a for a in plan.activity if a.reference.reference == f"ServiceRequest/{sr.id}")
    assert activity.outcomeReference[0].reference == f"Task/{task.id}"
    assert activity.outcomeCodeableConcept[0].coding[0].code == "467771000124109"
    assert pipeline.dead_letters() == []


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_a_cbos_cancellation_or_failure_moves_the_referral_on(
    directory: None, pipeline_factory: Callable[..., Pipeline], unique: str, status: str
) -> None:
    pipeline = pipeline_factory(config=REQUESTER)
    patient = f"cbo-{status[:4]}-{unique}"
    pipeline.publish(need(patient))
    pipeline.wait_idle()
    (first,) = referral_tasks(pipeline, patient)
    pipeline.publish(status_changed(patient, first, "accepted"))
    pipeline.publish(status_changed(patient, first, status, "cannot serve", set_by="owner"))
    pipeline.wait_idle()
    tasks = referral_tasks(pipeline, patient)
    assert [tk.status for tk in tasks] == [status, "requested"]
    assert attempt_of(tasks[1]).service != attempt_of(tasks[0]).service  # type: ignore[union-attr]
    (sr,) = pipeline.fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
    assert sr.status == "active"
    assert [e.data["attempt"] for e in outbound_of(pipeline, "carecoord.referral.created")] == [
        1,
        2,
    ]
    assert pipeline.dead_letters() == []


def test_directories_from_the_builders_and_from_open_referrals_example_are_both_matched(
    pipeline_factory: Callable[..., Pipeline], fhir_base_url: str, unique: str
) -> None:
    from carecoord.caremodel.identifiers import add_create
    from carecoord.core.effects import Effects
    from carecoord.directory import builders

    pipeline = pipeline_factory(config=REQUESTER)
    # 1. A directory built with the README's fhir.directory builders.
    fx = Effects()
    org = add_create(
        fx, builders.organization(source=f"e2e-{unique}", source_id="org", name="Budget coaching")
    )
    add_create(
        fx,
        builders.healthcare_service(
            source=f"e2e-{unique}",
            source_id="svc",
            name="Budget coaching",
            organization=org,
            domains=["financial-insecurity"],
            service_area_postal_codes=["62702"],
        ),
    )
    pipeline.fhir.apply(fx.writes)
    # 2. The Open Referral published example payload (GET /services/{id} form).
    with FhirClient(fhir_base_url) as client:
        report = import_directory(client, json.loads(OFFICIAL.read_text()), OFFICIAL_MAP)
    assert report.problems == []

    built_patient, official_patient = f"bld-{unique}", f"orx-{unique}"
    pipeline.publish(
        need(built_patient, domain="financial-insecurity", postal_code="62702"),
        need(official_patient, domain="social-connection", postal_code="62702"),
    )
    pipeline.wait_idle()
    (built_task,) = referral_tasks(pipeline, built_patient)
    built_service = pipeline.fhir.read(
        "HealthcareService",
        attempt_of(built_task).service.split("/")[1],  # type: ignore[union-attr]
    )
    assert built_service.identifier[0].value == f"e2e-{unique}:svc"
    (official_task,) = referral_tasks(pipeline, official_patient)
    official_service = pipeline.fhir.read(
        "HealthcareService",
        attempt_of(official_task).service.split("/")[1],  # type: ignore[union-attr]
    )
    assert official_service.name == "Community Counselling"
    assert pipeline.dead_letters() == []


def test_no_consent_to_contact_sends_nothing_to_an_organisation(
    directory: None, pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory(config=REQUESTER)
    patient = f"nocon-{unique}"
    pipeline.publish(need(patient, consent_to_contact=False))
    pipeline.wait_idle()
    assert referral_tasks(pipeline, patient) == []
    (manual,) = manual_tasks(pipeline, patient)
    assert manual.businessStatus.coding[0].code == t.BUSINESS_NO_CONSENT.code
    assert outbound_of(pipeline, "carecoord.referral.created") == []


def test_clinical_question_goes_to_the_provider_and_never_to_the_logs(
    pipeline: Pipeline, unique: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="carecoord")
    patient = f"clin-{unique}"
    question = f"Can I stop my warfarin before the dental visit? {unique}"
    ask = new_event(
        "carecoord.clinical.question",
        patient,
        {"question": question, "urgency": "urgent", "raised_by": f"Practitioner/cm-{unique}"},
    )
    pipeline.publish(
        new_event(
            "carecoord.patient.enrolled",
            patient,
            consented({"program": "PCM", "provider": f"Practitioner/dr-{unique}",
                       "care_manager": f"Practitioner/cm-{unique}", "start": "2026-03-02"}),
        ),
        ask,
        ask,
    )  # fmt: skip
    pipeline.wait_idle()
    reviews = [
        tk
        for tk in pipeline.fhir.search("Task", {"patient": f"Patient/{patient}"})
        if t.concept_has(tk.code, t.TASK_CLINICAL_REVIEW)
    ]
    assert len(reviews) == 1
    assert reviews[0].owner.reference == f"Practitioner/dr-{unique}"
    assert reviews[0].priority == "stat"
    routed = outbound_of(pipeline, "carecoord.clinical.routed")
    assert routed and {e.id for e in routed} == {routed[0].id}
    assert question not in str(routed[0].data)
    ours = [r for r in caplog.records if r.name.startswith("carecoord")]
    assert any(r.name == "carecoord.handlers.clinical.routing" for r in ours)
    assert not any("warfarin" in r.getMessage() or "warfarin" in str(r.__dict__) for r in ours)


def test_billable_time_thresholds_once_and_never_twice(pipeline: Pipeline, unique: str) -> None:
    from fhir.resources.R4B.condition import Condition

    patient = f"bill-{unique}"
    conditions = [
        "Condition/"
        + str(
            pipeline.fhir.create(
                Condition.model_validate(
                    {"subject": {"reference": f"Patient/{patient}"},
                     "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                          "code": code}]}}
                )
            ).id
        )
        for code in ("E11.9", "I10")
    ]  # fmt: skip
    consent = {"date": "2026-03-01", "method": "verbal", "recorded_by": "Practitioner/cm-1"}
    enrolments = [
        new_event(
            "carecoord.patient.enrolled",
            patient,
            {"program": program, "provider": "Practitioner/dr-1",
             "care_manager": "Practitioner/cm-1", "conditions": conditions[:n],
             "start": "2026-03-01", "consent": consent},
        )
        for program, n in (("CCM", 2), ("PCM", 1), ("RPM", 0))
    ]  # fmt: skip

    def logged(program: str, minutes: float, **extra: object) -> CloudEvent:
        return new_event(
            "carecoord.time.logged",
            patient,
            {"program": program, "minutes": minutes, "activity": "care coordination",
             "by": "Practitioner/cm-1", "performed_at": "2026-03-04T10:00:00+00:00", **extra},
        )  # fmt: skip

    second = logged("CCM", 10)
    pipeline.publish(*enrolments)
    pipeline.wait_idle()
    pipeline.publish(logged("CCM", 15), second, second)
    pipeline.wait_idle()
    pipeline.publish(logged("PCM", 20), logged("RPM", 20, interactive=True))
    pipeline.wait_idle()
    items = pipeline.fhir.search("ChargeItem", {"subject": f"Patient/{patient}"})
    billed = sorted(i.code.coding[0].code for i in items if i.status == "billable")
    # PCM (20 min) does not reach 99426, and CCM/PCM are exclusive for one practitioner anyway;
    # the duplicate entry is ignored; RPM with an interactive communication is billed.
    assert billed == ["99457", "99490"]
    assert len([i for i in items if i.status == "not-billable"]) == 4
    thresholds = list(
        {e.id: e for e in outbound_of(pipeline, "carecoord.billing.threshold-reached")}.values()
    )
    assert sorted(e.data["cpt"] for e in thresholds) == ["99457", "99490"]
    ccm = next(e for e in thresholds if e.data["cpt"] == "99490")
    assert ccm.data["total_minutes"] == 25
