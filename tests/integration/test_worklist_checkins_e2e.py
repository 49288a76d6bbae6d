"""The worklist's check-ins on the real servers: a BHI enrolment whose plan addresses a
diabetes Condition shows the diabetes talking points and PHQ-9 (and GAD-7) due, in the library
API and `carecoord worklist --json`; once a completed PHQ-9 QuestionnaireResponse is on the
FHIR server, PHQ-9 is no longer due. The enrolment goes through the real broker and runtime."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from typer.testing import CliRunner

from carecoord.caremodel import terminology as t
from carecoord.cli import app
from carecoord.core.envelope import new_event
from carecoord.handlers.jobs.worklist import worklist
from carecoord.handlers.programs.assessment_schedule import GAD7, PHQ9
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 4)


def _row(pipeline: Pipeline, cm: str, patient: str) -> Any:
    (row,) = [r for r in worklist(pipeline.fhir, cm, DAY).rows if r.patient == f"Patient/{patient}"]
    return row


def test_bhi_patient_with_diabetes_talking_points_and_phq9_due_until_answered(
    pipeline: Pipeline, unique: str, fhir_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = f"checkins-{unique}"
    cm = f"Practitioner/cm-{unique}"
    diabetes = pipeline.fhir.create(
        Condition.model_validate(
            {
                "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [{"system": t.ICD10CM, "code": "E11.9"}]},
            }
        )
    )
    enrol = {
        "program": "BHI",
        "provider": f"Practitioner/dr-{unique}",
        "care_manager": cm,
        "start": "2026-03-02",
        "conditions": [f"Condition/{diabetes.id}"],
        "consent": {"date": "2026-03-02", "method": "verbal", "recorded_by": cm},
    }
    pipeline.publish(new_event("carecoord.patient.enrolled", patient, enrol, id=f"{patient}-en"))
    pipeline.wait_idle()
    assert pipeline.dead_letters() == []

    row = _row(pipeline, cm, patient)
    assert {a.instrument for a in row.checkins.assessments} == {PHQ9, GAD7}
    diabetes_points = [m for m in row.checkins.talking_points if m.topic.id == "diabetes"]
    assert [m.conditions for m in diabetes_points] == [(f"Condition/{diabetes.id}",)]

    monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", fhir_base_url)  # the CLI: FHIR only
    monkeypatch.delenv("CARECOORD_KAFKA_BOOTSTRAP", raising=False)
    args = ["worklist", "--care-manager", cm, "--date", "2026-03-04"]
    cli = CliRunner().invoke(app, [*args, "--json"])
    assert cli.exit_code == 0, cli.output
    (mine,) = [
        r for r in json.loads(cli.stdout)["patients"] if r["patient"] == f"Patient/{patient}"
    ]
    assert [a["name"] for a in mine["assessments"]] == ["PHQ-9", "GAD-7"]
    assert "diabetes" in [p["id"] for p in mine["talking_points"]]
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "PHQ-9 due since 2026-03-02" in text.stdout and "   Diabetes" in text.stdout

    pipeline.fhir.create(
        QuestionnaireResponse.model_validate(
            {
                "status": "completed",
                "questionnaire": f"http://loinc.org/q/{PHQ9}",
                "subject": {"reference": f"Patient/{patient}"},
                "authored": "2026-03-03T15:00:00+00:00",
            }
        )
    )
    after = _row(pipeline, cm, patient)
    assert [a.instrument for a in after.checkins.assessments] == [GAD7]
    assert "diabetes" in [m.topic.id for m in after.checkins.talking_points]
