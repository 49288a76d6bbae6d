"""The worklist carries each patient's due assessments and check-in talking points, in the
library API, `--json` and the text table, read in the batches it already sends."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.handlers.jobs.worklist import Worklist, table, worklist
from carecoord.handlers.jobs.worklist_checkins import CheckinConfig
from carecoord.handlers.programs import enrolment
from carecoord.handlers.programs.assessment_schedule import GAD7, PHQ9
from carecoord.testing import InMemoryFhir, events, run_events

CM = "Practitioner/cm1"
DAY = date(2026, 3, 4)
NOW = datetime(2026, 3, 4, 9, tzinfo=UTC)


class BatchingFhir(InMemoryFhir):
    """Declares `batch`: counts the round trips (a batch or a lone search)."""

    def __init__(self) -> None:
        super().__init__()
        self.round_trips: list[list[str]] = []

    def capability_statement(self) -> dict[str, Any]:
        return {
            "resourceType": "CapabilityStatement",
            "rest": [{"interaction": [{"code": "batch"}]}],
        }

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.round_trips.append([resource_type])
        return super().search(resource_type, params)

    def search_batch(self, searches: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[Any]:
        self.round_trips.append([rtype for rtype, _ in searches])
        return [InMemoryFhir.search(self, rtype, list(params)) for rtype, params in searches]


def _enrolled(fhir: InMemoryFhir, patient: str, program: str, *codes: tuple[str, str]) -> None:
    conditions = [
        fhir.put(
            {
                "resourceType": "Condition",
                "id": f"{patient}-c{n}",
                "subject": {"reference": f"Patient/{patient}"},
                "code": {"coding": [{"system": system, "code": code}]},
            }
        )
        for n, (system, code) in enumerate(codes)
    ]
    event = events.patient_enrolled(
        patient, program=program, start="2026-03-02", care_manager=CM, conditions=conditions
    )
    run = run_events(enrolment.HANDLERS, event, fhir=fhir)
    assert run.dead_letters == []


def _answered(fhir: InMemoryFhir, patient: str, code: str, status: str = "completed") -> None:
    fhir.put(
        {
            "resourceType": "QuestionnaireResponse",
            "status": status,
            "questionnaire": f"http://loinc.org/q/{code}",
            "subject": {"reference": f"Patient/{patient}"},
            "authored": "2026-03-03T15:00:00Z",
        }
    )


def _rows(result: Worklist) -> dict[str, Any]:
    return {row.patient.removeprefix("Patient/"): row for row in result.rows}


def test_bhi_patient_with_diabetes_gets_phq9_gad7_due_and_diabetes_talking_points() -> None:
    fhir = InMemoryFhir()
    _enrolled(fhir, "p1", "BHI", (t.ICD10CM, "E11.9"), (t.SNOMED, "38341003"))
    row = _rows(worklist(fhir, CM, DAY, now=NOW))["p1"]
    assert [(a.instrument, a.due, a.overdue) for a in row.checkins.assessments] == [
        (PHQ9, date(2026, 3, 2), False),
        (GAD7, date(2026, 3, 2), False),
    ]
    assert [r.kind for r in row.reasons].count("assessment-due") == 2
    assert [m.topic.id for m in row.checkins.talking_points] == [
        "diabetes",
        "hypertension",
        "medication-adherence",
    ]
    data = json.loads(json.dumps(row.to_json()))
    assert data["assessments"][0] == {
        "instrument": PHQ9,
        "name": "PHQ-9",
        "programs": ["BHI"],
        "due": "2026-03-02",
        "overdue": False,
        "last": None,
    }
    diabetes = data["talking_points"][0]
    assert diabetes["id"] == "diabetes" and diabetes["conditions"] == ["Condition/p1-c0"]
    assert diabetes["prompts"][0]["source"]["url"].startswith("https://www.niddk.nih.gov/")

    # A completed PHQ-9 and an amended GAD-7 after enrolment: neither is due any more.
    _answered(fhir, "p1", PHQ9)
    _answered(fhir, "p1", GAD7, status="amended")
    _answered(fhir, "p2", PHQ9)  # someone else's
    again = _rows(worklist(fhir, CM, DAY, now=NOW))["p1"]
    assert again.checkins.assessments == ()
    assert "assessment-due" not in {r.kind for r in again.reasons}


def test_the_text_table_lists_due_assessments_and_a_talking_point_section() -> None:
    fhir = InMemoryFhir()
    _enrolled(fhir, "p1", "BHI", (t.ICD10CM, "E11.9"))
    _answered(fhir, "p1", GAD7, status="in-progress")  # not finished: does not count
    lines = table(worklist(fhir, CM, DAY, now=NOW)).splitlines()
    assert "PHQ-9 due since 2026-03-02 (due at enrolment)" in lines[2]
    assert "GAD-7 due since 2026-03-02" in lines[2]
    section = lines[lines.index("") + 1 :]
    assert (
        section[0].startswith("Check-in talking points (") and "not clinical advice" in section[0]
    )
    assert section[1] == "1  Patient/p1"
    assert "   Diabetes" in section
    assert any(line.startswith("     source: https://www.niddk.nih.gov/") for line in section)
    assert "   Medicines" in section


def test_a_pending_enrolment_asks_no_assessment_but_has_talking_points() -> None:
    fhir = InMemoryFhir()
    event = events.patient_enrolled(
        "p1", program="BHI", start="2026-03-02", care_manager=CM, consent=None
    )
    assert run_events(enrolment.HANDLERS, event, fhir=fhir).dead_letters == []
    row = _rows(worklist(fhir, CM, DAY, now=NOW))["p1"]
    assert row.checkins.assessments == ()
    assert [m.topic.id for m in row.checkins.talking_points] == ["medication-adherence"]


def test_the_configured_schedule_and_catalog_are_used() -> None:
    fhir = InMemoryFhir()
    _enrolled(fhir, "p1", "BHI", (t.ICD10CM, "E11.9"))
    quiet = CheckinConfig.of({"BHI": {}})
    row = _rows(worklist(fhir, CM, DAY, now=NOW, checkins=quiet))["p1"]
    assert row.checkins.assessments == ()
    strict = CheckinConfig.of({"BHI": {PHQ9: 30}}, grace_days=0)
    row = _rows(worklist(fhir, CM, DAY, now=NOW, checkins=strict))["p1"]
    assert [(a.instrument, a.overdue) for a in row.checkins.assessments] == [(PHQ9, True)]
    assert row.reasons[0].kind == "outreach-due" and "assessment-overdue" in {
        r.kind for r in row.reasons
    }


def test_conditions_and_responses_ride_in_the_existing_batches() -> None:
    fhir = BatchingFhir()
    for n in range(3):
        _enrolled(fhir, f"p{n}", "BHI", (t.ICD10CM, "E11.9"))
    fhir.round_trips.clear()
    result = worklist(fhir, CM, DAY, now=NOW)
    assert len(result.rows) == 3
    batches = [trip for trip in fhir.round_trips if len(trip) > 1]
    (patients,) = [b for b in batches if "CarePlan" in b]
    assert patients.count("Condition") == 3 and patients.count("QuestionnaireResponse") == 3
    lone = [trip[0] for trip in fhir.round_trips if len(trip) == 1]
    assert "Condition" not in lone and "QuestionnaireResponse" not in lone
