"""Unanswered attempts are counted with a search a strict FHIR server accepts (one that answers
400 to a search parameter it does not know, instead of ignoring it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fhir.resources.R4B.resource import Resource
from handlers_i_support import DATE_PARAMS, REFERENCE_PARAMS, FakeFhir, Runner, attempted, enrolled
from test_handlers_outreach import CONFIG, SPECS

from carecoord.fhir.errors import FhirInvalid

KNOWN = {"identifier", "status", "code", *REFERENCE_PARAMS, *DATE_PARAMS}


class StrictFhir(FakeFhir):
    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        unknown = sorted({k for k, _ in pairs} - KNOWN)
        if resource_type == "Communication" and unknown:
            raise FhirInvalid(f"unknown search parameter {unknown[0]}", status=400)
        return super().search(resource_type, params)


def test_three_unanswered_attempts_escalate_on_a_strict_server() -> None:
    run = Runner(SPECS, CONFIG)
    run.fhir = StrictFhir()
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    for n in range(3):
        run.run(attempted("p1", n, "no-answer"))
    assert len(run.fhir.tasks("outreach-escalation")) == 1
    assert [e.type for e in run.emitted] == ["carecoord.outreach.escalated"]
