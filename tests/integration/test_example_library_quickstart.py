"""The README's library example works against a real FHIR server, and running it twice is safe."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from carecoord import FhirClient

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from library_quickstart import enrol  # noqa: E402


def test_library_quickstart_enrols_once(fhir_base_url: str, unique: str) -> None:
    patient = f"Patient/qs-{unique}"
    with FhirClient(fhir_base_url) as fhir:
        first = enrol(fhir, patient)
        assert enrol(fhir, patient) == first  # the rerun found both resources
        plan_ref, request_ref = first
        request = fhir.read("CommunicationRequest", request_ref.split("/")[1])
        assert request.basedOn[0].reference == plan_ref
        assert str(request.occurrencePeriod.start).startswith("2026-11-01")
        assert len(fhir.search("CarePlan", {"subject": patient})) == 1
