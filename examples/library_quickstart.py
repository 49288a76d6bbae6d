"""The README's library quickstart: a care plan with its month's outreach, written to a FHIR server
as ONE idempotent transaction, then read back. Run: python examples/library_quickstart.py [URL]
(default: $CARECOORD_FHIR_BASE_URL, else http://127.0.0.1:8080/fhir, where `carecoord local`
serves by default)."""

from __future__ import annotations

import os
import sys
from datetime import date

from fhir.resources.R4B.communicationrequest import CommunicationRequest

from carecoord import Effects, FhirClient
from carecoord.caremodel.builders import care_plan, outreach_request
from carecoord.caremodel.identifiers import add_create


def enrol(fhir: FhirClient, patient: str) -> list[str]:
    effects = Effects()
    plan_ref = add_create(  # conditional on its business identifier: a rerun creates nothing
        effects, care_plan(patient=patient, program="CCM", start=date(2026, 11, 2))
    )
    outreach = outreach_request(
        patient=patient, program="CCM", month=date(2026, 11, 1),
        care_manager="Practitioner/cm-rivera", care_plan=plan_ref, channel="phone",
    )  # fmt: skip
    add_create(effects, outreach)
    result = fhir.apply(effects.writes)  # one transaction: all or nothing
    return [e.reference or "" for e in result.entries]


if __name__ == "__main__":
    default = os.environ.get("CARECOORD_FHIR_BASE_URL", "http://127.0.0.1:8080/fhir")
    url = sys.argv[1] if len(sys.argv) > 1 else default
    with FhirClient(url) as client:
        refs = enrol(client, "Patient/example-1")
        request = client.read("CommunicationRequest", refs[1].split("/")[1])
        assert isinstance(request, CommunicationRequest)  # read() returns the parsed R4 model
        period = request.occurrencePeriod
        print(refs, period.start if period else None, [r.reference for r in request.basedOn or []])
