"""examples/ehr_integration.py: its events are valid catalog events, keyed by patient, and the
handlers turn them into a care plan, an answered outreach, billable time and a referral."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from ehr_integration import publish, visit_events  # noqa: E402

PRACTICE = {"referrals": {"organization": "Organization/practice", "practice_phone": "+1 555 0100"}}


@pytest.fixture
def pipeline(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    """The practice is configured: referral Tasks are requested by the care manager's
    PractitionerRole there (SDOHCC)."""
    return pipeline_factory(config=PRACTICE)


def test_ehr_events_go_through_the_handlers(
    pipeline: Pipeline, kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    from carecoord.directory.hsds import import_directory

    sample = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
    import json

    import_directory(pipeline.fhir, json.loads(sample.read_text()))
    patient = f"ehr-{unique}"
    for code in ("htn", "t2d"):  # the EHR's problem list, which the enrolment references
        condition = {"resourceType": "Condition", "id": f"{code}-{patient}",
                     "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip
        httpx.put(f"{fhir_base_url}/Condition/{code}-{patient}", json=condition, timeout=10)
    when = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    events = visit_events(
        patient, care_manager=f"Practitioner/cm-{unique}", provider="Practitioner/dr-okafor",
        when=when,
    )  # fmt: skip
    publish(kafka_bootstrap, pipeline.options.topic_in, events)
    pipeline.published += len(events)
    pipeline.wait_idle()
    assert pipeline.dead_letters() == []
    subject = {"subject": f"Patient/{patient}"}
    (plan,) = pipeline.fhir.search("CarePlan", subject)
    assert plan.status == "active"
    (request,) = pipeline.fhir.search("CommunicationRequest", subject)
    assert request.status == "completed"  # the call was answered
    billed = [c for c in pipeline.fhir.search("ChargeItem", subject) if c.status == "billable"]
    assert [c.code.coding[0].code for c in billed] == ["99490"]  # 22 minutes of CCM
    assert len(pipeline.fhir.search("ServiceRequest", subject)) == 1  # the food referral
    types = {e.type for e in pipeline.outbound() if e.subject == f"Patient/{patient}"}
    assert {"carecoord.billing.threshold-reached", "carecoord.referral.created"} <= types
