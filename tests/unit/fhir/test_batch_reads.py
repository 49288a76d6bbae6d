"""Several searches in one batch round trip where the server declares `batch`; the same answers
(one search each) where it does not, or where an entry failed or has more pages."""

from __future__ import annotations

import json
from typing import Any

import httpx

from carecoord.fhir.batch_reads import declares_batch, search_together, search_url
from carecoord.fhir.client import FhirClient
from carecoord.fhir.transport import Backoff

BASE = "https://fhir.example.org/r4"


def statement(batch: bool) -> dict[str, Any]:
    rest: dict[str, Any] = {"mode": "server"}
    if batch:
        rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}]
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "date": "2026-01-01", "fhirVersion": "4.0.1", "format": ["json"],
            "rest": [rest]}  # fmt: skip


def searchset(*resources: dict[str, Any], more: bool = False) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [
        {"resource": r, "search": {"mode": "match"}} for r in resources
    ]
    entries.append(
        {"resource": {"resourceType": "OperationOutcome",
                      "issue": [{"severity": "warning", "code": "not-supported"}]},
         "search": {"mode": "outcome"}}
    )  # fmt: skip
    body: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if more:
        body["link"] = [{"relation": "next", "url": f"{BASE}/Consent?page=2"}]
    return body


PLAN = {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
        "subject": {"reference": "Patient/p1"}}  # fmt: skip
ITEM = {"resourceType": "ChargeItem", "id": "ci1", "status": "billable",
        "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}  # fmt: skip
CONSENT = {"resourceType": "Consent", "id": "c1", "status": "active",
           "scope": {"text": "treatment"}, "category": [{"text": "consent"}],
           "patient": {"reference": "Patient/p1"}}  # fmt: skip


class Server:
    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4")
        if path == "/metadata":
            return httpx.Response(200, json=statement(self.batch))
        self.requests.append(f"{request.method} {path}")
        if request.method == "POST":
            sent = json.loads(request.content)
            assert sent["type"] == "batch"
            assert [e["request"]["method"] for e in sent["entry"]] == ["GET"] * 3
            entries = [
                {"response": {"status": "200 OK"}, "resource": searchset(ITEM)},
                {"response": {"status": "200 OK"}, "resource": searchset(PLAN)},
                {"response": {"status": "200 OK"}, "resource": searchset(CONSENT, more=True)},
            ]
            body = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            return httpx.Response(200, json=body)
        kind = path.strip("/")
        found = {"ChargeItem": ITEM, "CarePlan": PLAN, "Consent": CONSENT}[kind]
        return httpx.Response(200, json=searchset(found))


def client(server: Server) -> FhirClient:
    return FhirClient(BASE, transport=httpx.MockTransport(server), retry_budget=0.05,
                      backoff=Backoff(0.001, 0.002), sleep=lambda s: None)  # fmt: skip


SEARCHES = [
    ("ChargeItem", [("subject", "Patient/p1"), ("occurrence", "ge2026-02-28")]),
    ("CarePlan", [("patient", "Patient/p1")]),
    ("Consent", [("patient", "Patient/p1")]),
]


def kinds(found: list[list[Any]]) -> list[list[str]]:
    return [[f"{r.get_resource_type()}/{r.id}" for r in group] for group in found]


def test_one_batch_where_declared_and_a_paged_entry_is_searched_again() -> None:
    server = Server(batch=True)
    with client(server) as fhir:
        assert declares_batch(fhir)
        found = search_together(fhir, SEARCHES)
    assert kinds(found) == [["ChargeItem/ci1"], ["CarePlan/cp1"], ["Consent/c1"]]
    # the Consent searchset had a next page: searched on its own (every page followed)
    assert server.requests == ["POST ", "GET /Consent"]
    assert type(found[1][0]).__module__.startswith("fhir.resources.R4B")  # the client's version


def test_without_batch_each_search_is_its_own_request_with_the_same_answers() -> None:
    server = Server(batch=False)
    with client(server) as fhir:
        assert not declares_batch(fhir)
        found = search_together(fhir, SEARCHES)
    assert kinds(found) == [["ChargeItem/ci1"], ["CarePlan/cp1"], ["Consent/c1"]]
    assert server.requests == ["GET /ChargeItem", "GET /CarePlan", "GET /Consent"]


def test_a_reader_without_search_batch_declares_nothing() -> None:
    class Reader:
        def capability_statement(self) -> dict[str, Any]:
            return statement(True)

    assert not declares_batch(Reader())


def test_search_url_encodes_parameters() -> None:
    url = search_url("ChargeItem", [("subject", "Patient/p1"), ("occurrence", "lt2026-04-02")])
    assert url == "ChargeItem?subject=Patient%2Fp1&occurrence=lt2026-04-02"
    assert search_url("Consent", []) == "Consent"
