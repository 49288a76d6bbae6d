"""Counting unanswered outreach attempts toward escalation: only unanswered ones, only on their own
request, each attempt once, whether the server is strict about search parameters or ignores them
(and whether carecoord or someone else recorded the attempt)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fhir.resources.R4B.resource import Resource
from test_handlers_outreach import CONFIG, SPECS, _enrolled, _request

from carecoord.caremodel import terminology as t
from carecoord.fhir.errors import FhirInvalid
from carecoord.fhir.models import parse_resource
from carecoord.testing.fhir import DATE_PARAMS, REFERENCE_PARAMS
from support.care_management import FakeFhir, Runner, attempted, enrolled

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


class BlindFhir(FakeFhir):
    """A server that ignores every Communication search parameter: all of them, oldest first."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        if resource_type != "Communication":
            return super().search(resource_type, params)
        found = [r for (rtype, _), r in self.store.items() if rtype == "Communication"]
        return [parse_resource(r) for r in found]


def test_a_wrong_number_is_not_an_unanswered_attempt() -> None:
    run = _enrolled()
    for n, outcome in enumerate(["no-answer", "wrong-number", "voicemail"]):
        run.run(attempted("p1", n, outcome))
    assert run.fhir.tasks("outreach-escalation") == []
    run.run(attempted("p1", 3, "no-answer"))
    assert len(run.fhir.tasks("outreach-escalation")) == 1


UNAVAILABLE = {"system": t.COMMUNICATION_NOT_DONE_REASON_SYSTEM, "code": "recipient-unavailable"}


def unanswered_by_hand(run: Runner, key: str, based_on: str) -> None:
    """An unanswered attempt entered in the EHR: no carecoord identifier."""
    run.fhir.store[("Communication", key)] = {
        "resourceType": "Communication",
        "id": key,
        "meta": {"versionId": "1"},
        "status": "not-done",
        "statusReason": {"coding": [UNAVAILABLE]},
        "basedOn": [{"reference": based_on}],
        "subject": {"reference": "Patient/p1"},
    }


def test_attempts_on_another_request_never_count_even_if_the_server_returns_them() -> None:
    run = Runner(SPECS, CONFIG)
    run.fhir = BlindFhir()
    for n in range(3):  # last year's request, say: listed first by this server
        unanswered_by_hand(run, f"old-{n}", "CommunicationRequest/last-year")
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    run.run(attempted("p1", 0, "no-answer"))
    run.run(attempted("p1", 1, "no-answer"))
    assert run.fhir.tasks("outreach-escalation") == []
    run.run(attempted("p1", 2, "no-answer"))
    (task,) = run.fhir.tasks("outreach-escalation")
    assert task["focus"] == {"reference": f"CommunicationRequest/{_request(run)['id']}"}


def test_unanswered_attempts_recorded_by_hand_count_each_once() -> None:
    run = _enrolled()
    phone = f"CommunicationRequest/{_request(run)['id']}"
    for n in range(2):
        unanswered_by_hand(run, f"ehr-{n}", phone)
    run.run(attempted("p1", 0, "no-answer"))
    assert len(run.fhir.tasks("outreach-escalation")) == 1  # two by hand and this one


def test_an_escalation_names_the_requests_period_end_as_a_date() -> None:
    run = Runner(SPECS, CONFIG)
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    for n in range(2):
        run.run(attempted("p1", n, "no-answer"))
    # Another writer stored the request's period end as a dateTime: the catalog's field is a date.
    for (rtype, _), stored in run.fhir.store.items():
        if rtype == "CommunicationRequest":
            stored["occurrencePeriod"]["end"] = "2024-05-31T23:59:59-04:00"
    run.run(attempted("p1", 2, "no-answer"))
    [escalated] = run.emitted
    assert escalated.data["period_end"] == "2024-05-31"
