"""The end-to-end harness itself: events flow through the real broker into the real FHIR server."""

from __future__ import annotations

import pytest

from carecoord.core.envelope import new_event
from support.enrolment import consented
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration


def test_enrolment_reaches_fhir_and_poison_reaches_dead_letters(
    pipeline: Pipeline, unique: str
) -> None:
    patient = f"pt-{unique}"
    pipeline.publish_raw(patient.encode(), b"{not json")
    pipeline.publish(
        new_event(
            "carecoord.patient.enrolled",
            patient,
            consented({"program": "CCM", "provider": "Practitioner/dr-1",
                       "care_manager": "Practitioner/cm-1", "start": "2026-11-03"}),
        )
    )  # fmt: skip
    pipeline.wait_idle()
    plans = pipeline.fhir.search("CarePlan", {"subject": f"Patient/{patient}"})
    assert len(plans) == 1
    dead = pipeline.dead_letters()
    assert [d.record.value for d in dead] == [b"{not json"]
    assert dead[0].error_type == "MalformedEvent"
