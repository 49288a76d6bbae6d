"""The patient's consent to share on a referral, end to end: the event through the real broker,
the SDOHCC Consent and the ServiceRequest pointing at it on the real FHIR server (and, at the end
of the session, every Consent there checked against the profile it claims)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.caremodel.profiles import SDOHCC_CONSENT, check
from carecoord.core.envelope import new_event
from carecoord.directory.hsds import import_directory
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
PRACTICE = "Organization/practice-consent"
CONFIG = {"referrals": {"organization": PRACTICE, "practice_phone": "+1 217 555 0100"}}


@pytest.fixture(scope="module")
def directory(fhir_base_url: str) -> None:
    with FhirClient(fhir_base_url) as client:  # idempotent: other modules import it too
        assert import_directory(client, json.loads(SAMPLE.read_text())).problems == []


def _of(pipeline: Pipeline, rtype: str, patient: str, param: str = "patient") -> list[Any]:
    found = pipeline.fhir.search(rtype, {param: f"Patient/{patient}"})
    return [r for r in found if r.get_resource_type() == rtype]


def test_a_referral_with_the_patients_consent_carries_an_sdohcc_consent_once(
    directory: None, pipeline_factory: Callable[..., Pipeline], unique: str
) -> None:
    pipeline = pipeline_factory(config=CONFIG)
    patient = f"share-{unique}"
    share = {
        "date": "2026-03-02",
        "method": "written",
        "recorded_by": f"Practitioner/cm-{unique}",
        "document": f"DocumentReference/form-{unique}",
    }
    body = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    need = new_event("carecoord.sdoh.need-identified", patient, {**body, "consent_to_share": share})
    without = new_event("carecoord.sdoh.need-identified", patient, body)
    pipeline.publish(need, without)
    pipeline.wait_idle()
    assert pipeline.dead_letters() == []

    (consent,) = _of(pipeline, "Consent", patient)
    assert [str(p) for p in consent.meta.profile] == [f"{SDOHCC_CONSENT}|3.0.0"]  # STU 3
    assert check(to_json(consent)) == []
    assert t.concept_has(consent.scope, t.CONSENT_SCOPE_PRIVACY)
    assert consent.organization[0].reference == PRACTICE
    assert consent.sourceReference.reference == share["document"]
    requests = _of(pipeline, "ServiceRequest", patient, "subject")
    assert len(requests) == 2
    (with_consent,) = [sr for sr in requests if sr.supportingInfo]  # no consent: none invented
    assert [i.reference for i in with_consent.supportingInfo] == [f"Consent/{consent.id}"]
    # The referral the CBO receives leads to the consent: Task.focus -> ServiceRequest.
    tasks = [tk for tk in _of(pipeline, "Task", patient) if attempt_of(tk) is not None]
    assert f"ServiceRequest/{with_consent.id}" in {tk.focus.reference for tk in tasks}

    pipeline.publish(need)  # redelivered: the same Consent, no second one
    pipeline.wait_idle()
    assert [c.id for c in _of(pipeline, "Consent", patient)] == [consent.id]
    assert len(_of(pipeline, "ServiceRequest", patient, "subject")) == 2
