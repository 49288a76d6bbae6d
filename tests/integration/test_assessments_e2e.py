"""Assessments on the real broker and FHIR server: the Questionnaires published twice are there
once; a completed PHQ-9 with item 9 above 0 becomes Observations and an urgent clinical-review
Task for the provider; a positive Hunger Vital Sign becomes the SDOH referral (held for consent);
a malformed response is a dead letter naming the item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from carecoord.caremodel import terminology as t
from carecoord.caremodel.instruments import (
    INSTRUMENTS,
    PHQ9,
    publish_questionnaires,
    questionnaires,
)
from carecoord.cli import app
from carecoord.core.envelope import new_event
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import parse_resource, to_json
from support.enrolment import consented
from support.pipeline import Pipeline
from support.waiting import wait_for

pytestmark = pytest.mark.integration

LOINC = "http://loinc.org"
PHQ9_ITEMS = [
    i.code for i in INSTRUMENTS[PHQ9].items if i.answers and i.answers[0].score is not None
]
COMPLETED = "carecoord.assessment.completed"


def _coding(code: str) -> dict[str, Any]:
    return {"valueCoding": {"system": LOINC, "code": code}}


def _response(fhir: FhirClient, patient: str, canonical: str, answers: dict[str, str]) -> str:
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": datetime.now(UTC).isoformat(),
        "item": [{"linkId": f"/{c}", "answer": [_coding(a)]} for c, a in answers.items()],
    }
    created = fhir.create(parse_resource(body))
    return f"QuestionnaireResponse/{created.id}"


def _observations(fhir: FhirClient, patient: str) -> list[dict[str, Any]]:
    found = fhir.search("Observation", {"subject": f"Patient/{patient}"})
    return [to_json(o) for o in found if o.get_resource_type() == "Observation"]


def _tasks(fhir: FhirClient, patient: str, code: t.Code) -> list[Any]:
    return [
        task
        for task in fhir.search("Task", {"patient": f"Patient/{patient}"})
        if task.get_resource_type() == "Task" and t.concept_has(task.code, code)
    ]


def test_publishing_twice_leaves_one_of_each(
    fhir_base_url: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FhirClient(fhir_base_url) as fhir:
        publish_questionnaires(fhir)
        monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", fhir_base_url)
        monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", kafka_bootstrap)  # settings need it
        result = CliRunner().invoke(app, ["questionnaires", "publish"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert len(lines) == 5 and all(line.startswith("exists\t") for line in lines)
        stored = [to_json(q) for q in fhir.search("Questionnaire", {})]
        for raw in questionnaires().values():
            same = [
                q
                for q in stored
                if (q.get("url"), q.get("version")) == (raw["url"], raw["version"])
            ]
            assert len(same) == 1, raw["url"]
            assert same[0]["item"] == raw["item"]


def test_phq9_item_9_becomes_observations_and_an_urgent_task(
    pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory()
    patient = f"phq-{unique}"
    now = datetime.now(UTC)
    enrolled = consented(
        {
            "program": "CCM",
            "provider": f"Practitioner/dr-{unique}",
            "care_manager": f"Practitioner/cm-{unique}",
            "start": now.date().isoformat(),
        }
    )
    pipeline.publish(new_event("carecoord.patient.enrolled", patient, enrolled, time=now))
    pipeline.wait_idle()
    # a low total (1): only item 9 calls for the provider
    answers = dict.fromkeys(PHQ9_ITEMS[:-1], "LA6568-5") | {PHQ9_ITEMS[-1]: "LA6569-3"}
    ref = _response(pipeline.fhir, patient, "http://loinc.org/q/44249-1", answers)
    event = new_event(COMPLETED, patient, {"questionnaire_response": ref}, time=now)
    pipeline.publish(event)
    pipeline.wait_idle()

    def urgent_task() -> list[Any]:
        return _tasks(pipeline.fhir, patient, t.TASK_CLINICAL_REVIEW)

    (task,) = wait_for(urgent_task, 60, "the urgent clinical-review Task")
    assert task.priority == "stat"
    assert task.owner.reference == f"Practitioner/dr-{unique}"
    observations = _observations(pipeline.fhir, patient)
    assert len(observations) == 10
    (total,) = [o for o in observations if o["code"]["coding"][0]["code"] == "44261-6"]
    assert total["valueQuantity"]["value"] == 1
    assert total["derivedFrom"] == [{"reference": ref}]

    # Delivered again (a second event for the same response version): nothing new.
    pipeline.publish(event, new_event(COMPLETED, patient, {"questionnaire_response": ref}))
    pipeline.restart()
    pipeline.wait_idle()
    routed = [e for e in pipeline.outbound() if e.type == "carecoord.clinical.routed"]
    wait_for(lambda: [e for e in routed if e.subject == f"Patient/{patient}"], 30, "routed")
    assert len(_observations(pipeline.fhir, patient)) == 10
    assert len(urgent_task()) == 1
    scored = [e for e in pipeline.outbound() if e.type == "carecoord.assessment.scored"]
    assert {e.id for e in scored if e.subject == f"Patient/{patient}"} == {scored[0].id}
    assert pipeline.dead_letters() == []


def test_a_positive_hunger_vital_sign_becomes_the_sdoh_referral(
    pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory(
        config={"referrals": {"organization": f"Organization/practice-{unique}"}}
    )
    patient_body = {"resourceType": "Patient", "address": [{"postalCode": "62701"}]}
    patient = str(pipeline.fhir.create(parse_resource(patient_body)).id)
    answers = {"88122-7": "LA28398-8", "88123-5": "LA28397-0"}  # never / often true
    ref = _response(
        pipeline.fhir, patient, "https://carecoord.dev/fhir/Questionnaire/88121-9", answers
    )
    pipeline.publish(new_event(COMPLETED, patient, {"questionnaire_response": ref}))
    pipeline.wait_idle()

    def referral() -> list[Any]:
        found = pipeline.fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
        return [r for r in found if r.get_resource_type() == "ServiceRequest"]

    (request,) = wait_for(referral, 60, "the referral's ServiceRequest")
    assert request.status == "draft"  # no consent to contact recorded: held for the care manager
    conditions = pipeline.fhir.search("Condition", {"subject": f"Patient/{patient}"})
    (condition,) = [to_json(c) for c in conditions if c.get_resource_type() == "Condition"]
    assert condition["evidence"][0]["detail"] == [{"reference": ref}]
    risk = [
        o
        for o in _observations(pipeline.fhir, patient)
        if o["code"]["coding"][0]["code"] == "88124-3"
    ]
    assert risk[0]["valueCodeableConcept"]["coding"][0]["code"] == "LA19952-3"
    assert pipeline.dead_letters() == []


def test_a_malformed_response_is_a_dead_letter_naming_the_item(
    pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory()
    patient = f"bad-{unique}"
    answers = {"88122-7": "LA33-6"}  # "Yes": not a Hunger Vital Sign answer
    ref = _response(pipeline.fhir, patient, "http://loinc.org/q/88121-9", answers)
    pipeline.publish(new_event(COMPLETED, patient, {"questionnaire_response": ref}))
    pipeline.wait_idle()
    (dead,) = pipeline.dead_letters()
    assert dead.error_type == "MalformedAssessment"
    assert "88122-7" in (dead.error_message or "")
    assert _observations(pipeline.fhir, patient) == []
