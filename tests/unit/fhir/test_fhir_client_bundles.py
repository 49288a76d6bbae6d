"""Paging, Locations, versions, ETags, transactions/batches and apply() against a mock server."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Create, Effects, Update
from carecoord.fhir.bundles import (
    if_match,
    parse_etag,
    parse_location,
    reference_of,
    version_of,
    writes_to_bundle,
)
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import (
    FhirConflict,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirResponseInvalid,
)
from carecoord.fhir.transport import Backoff, rebase_link

BASE = "https://fhir.example.org/r4"
VID = "9b2f3c1e-4d5a-4b6c-8d7e-0f1a2b3c4d5e"


def fhir_json(status: int, body: Any = None, **headers: str) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(
        status, content=content, headers={"Content-Type": "application/fhir+json", **headers}
    )


def make(handler: Any) -> FhirClient:
    return FhirClient(
        BASE,
        transport=httpx.MockTransport(handler),
        backoff=Backoff(0.001, 0.002),
        sleep=lambda s: None,
    )


def patient(pid: str, vid: str = "1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "meta": {"versionId": vid}}


def page(entries: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": "ignored"}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def match(resource: dict[str, Any], mode: str = "match") -> dict[str, Any]:
    return {"resource": resource, "search": {"mode": mode}}


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://localhost:8090/fhir/Task/abc/_history/2", ("Task", "abc", "2")),
        ("https://other.example/base/Patient/p-1", ("Patient", "p-1", None)),
        ("Patient/p1/_history/" + VID, ("Patient", "p1", VID)),
        ("/fhir/Task/t.1?_format=json", ("Task", "t.1", None)),
    ],
)
def test_parse_location_absolute_any_host_or_relative(
    location: str, expected: tuple[str, str, str | None]
) -> None:
    loc = parse_location(location)
    assert (loc.resource_type, loc.id, loc.version_id) == expected


def test_parse_location_rejects_something_else() -> None:
    with pytest.raises(FhirResponseInvalid):
        parse_location("http://host/fhir/")


def test_etags_weak_strong_and_bare() -> None:
    assert parse_etag('W/"3"') == "3"
    assert parse_etag(f'"{VID}"') == VID
    assert parse_etag("7") == "7"
    assert parse_etag(None) is None
    assert if_match("3") == 'W/"3"'
    assert if_match(VID) == f'W/"{VID}"'
    assert if_match('"4"') == '"4"'


def test_version_and_reference_of() -> None:
    p = Patient.model_validate(patient("p1", VID))
    assert version_of(p) == VID and reference_of(p) == "Patient/p1"
    assert version_of(Patient()) is None
    with pytest.raises(ValueError):
        reference_of(Patient())


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("Patient?_offset=2", f"{BASE}/Patient?_offset=2"),
        ("?_getpages=abc", f"{BASE}?_getpages=abc"),
        ("http://localhost:8090/r4/Patient?_offset=4", f"{BASE}/Patient?_offset=4"),
        (f"{BASE}?_getpages=x&_page=2", f"{BASE}?_getpages=x&_page=2"),
        ("https://fhir.example.org/other/page?p=2", "https://fhir.example.org/other/page?p=2"),
    ],
)
def test_paging_links_are_rebased_onto_our_base(link: str, expected: str) -> None:
    assert rebase_link(link, BASE) == expected


def test_paging_link_to_another_origin_outside_the_base_is_refused() -> None:
    with pytest.raises(FhirResponseInvalid):
        rebase_link("https://evil.example/steal?x=1", BASE)


# --- search -------------------------------------------------------------------------------------


def test_search_follows_relative_and_absolute_next_links_and_keeps_includes() -> None:
    seen: list[str] = []
    org = {"resourceType": "Organization", "id": "o1"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        offset = request.url.params.get("_offset")
        if offset is None:
            return fhir_json(
                200, page([match(patient("a")), match(org, "include")], "Patient?_offset=1")
            )
        if offset == "1":  # absolute, wrong host, like sekmet's
            nxt = "http://localhost:8090/r4/Patient?_offset=2"
            return fhir_json(200, page([match(patient("b")), match(org, "include")], nxt))
        warning = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported"}],
        }
        return fhir_json(200, page([match(patient("c")), match(warning, "outcome")]))

    with make(handler) as fhir:
        found = fhir.search(
            "Patient", [("organization", "o1"), ("_include", "Patient:organization")]
        )
    assert [reference_of(r) for r in found] == [
        "Patient/a",
        "Organization/o1",
        "Patient/b",
        "Patient/c",
    ]
    assert seen[0] == f"{BASE}/Patient?organization=o1&_include=Patient%3Aorganization"
    assert seen[1:] == [f"{BASE}/Patient?_offset=1", f"{BASE}/Patient?_offset=2"]


def test_search_pages_yields_bundles() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("_offset") == "1":
            return fhir_json(200, page([match(patient("b"))]))
        return fhir_json(200, page([match(patient("a"))], "Patient?_offset=1"))

    with make(handler) as fhir:
        pages = list(fhir.search_pages("Patient", {"_count": "1"}))
    assert [p.get_resource_type() for p in pages] == ["Bundle", "Bundle"]
    assert [p.entry[0].resource.id for p in pages] == ["a", "b"]  # type: ignore[attr-defined]


def test_search_paging_loop_is_detected() -> None:
    looping = page([match(patient("a"))], "Patient?_offset=1")
    with make(lambda r: fhir_json(200, looping)) as fhir, pytest.raises(FhirResponseInvalid):
        fhir.search("Patient", {})


# --- create/update responses ----------------------------------------------------------------


def test_create_without_body_reads_back_from_a_relative_location() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.method == "POST":
            return fhir_json(201, None, Location=f"Patient/new1/_history/{VID}")
        return fhir_json(200, patient("new1", VID))

    with make(handler) as fhir:
        created = fhir.create(Patient(active=True))
    assert version_of(created) == VID and created.id == "new1"
    assert requests[0].headers["Prefer"] == "return=representation"
    assert json.loads(requests[0].content) == {"resourceType": "Patient", "active": True}
    assert requests[1].url.path == f"/r4/Patient/new1/_history/{VID}"


def test_update_with_a_uuid_version_sends_a_weak_etag() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return fhir_json(200, patient("p1", "next-" + VID[:5]), ETag=f'"next-{VID[:5]}"')

    with make(handler) as fhir:
        updated = fhir.update(Patient(id="p1"), if_match=VID)
    assert requests[0].method == "PUT" and requests[0].url.path == "/r4/Patient/p1"
    assert requests[0].headers["If-Match"] == f'W/"{VID}"'
    assert version_of(updated) == "next-" + VID[:5]


def test_update_with_retry_re_reads_and_re_applies_on_conflict() -> None:
    state = {"vid": 1, "puts": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return fhir_json(200, patient("p1", str(state["vid"])))
        state["puts"] += 1
        if state["puts"] == 1:  # someone else wrote in between
            state["vid"] += 1
            return fhir_json(412, {"resourceType": "OperationOutcome", "issue": []})
        assert request.headers["If-Match"] == f'W/"{state["vid"]}"'
        state["vid"] += 1
        return fhir_json(
            200, {**json.loads(request.content), "meta": {"versionId": str(state["vid"])}}
        )

    calls: list[str | None] = []

    def activate(p: Any) -> None:
        calls.append(version_of(p))
        p.active = True

    with make(handler) as fhir:
        result = fhir.update_with_retry("Patient", "p1", activate)
    assert calls == ["1", "2"]
    assert result.active is True and version_of(result) == "3"  # type: ignore[attr-defined]


def test_update_with_retry_gives_up_after_attempts_and_skips_no_op_changes() -> None:
    def conflicting(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return fhir_json(200, patient("p1"))
        return fhir_json(409, {"resourceType": "OperationOutcome", "issue": []})

    with make(conflicting) as fhir, pytest.raises(FhirConflict):
        fhir.update_with_retry("Patient", "p1", lambda p: p.model_copy(update={"active": False}), 2)

    methods: list[str] = []

    def recording(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        return fhir_json(200, patient("p1"))

    with make(recording) as fhir:
        fhir.update_with_retry("Patient", "p1", lambda p: None)
    assert methods == ["GET"]


# --- transactions, batches, apply ---------------------------------------------------------------


def _effects() -> Effects:
    effects = Effects()
    ref = effects.create(
        Patient(identifier=[{"system": "urn:mrn", "value": "42"}]), "urn:mrn", "42"
    )
    task = Task(id="t1", status="in-progress", intent="order", for_fhir={"reference": ref})
    effects.update(task, "7")
    effects.update(Task(id="t2", status="ready", intent="order"), None)
    return effects


def test_writes_become_one_transaction_bundle() -> None:
    writes = _effects().writes
    bundle = writes_to_bundle(writes)
    create = writes[0]
    assert isinstance(create, Create) and isinstance(writes[1], Update)
    assert bundle["type"] == "transaction"
    first, second, third = bundle["entry"]
    assert first["fullUrl"] == create.full_url
    assert first["request"] == {
        "method": "POST",
        "url": "Patient",
        "ifNoneExist": "identifier=urn:mrn|42",
    }
    assert second["request"] == {"method": "PUT", "url": "Task/t1", "ifMatch": 'W/"7"'}
    assert second["resource"]["for"] == {"reference": create.full_url}
    assert third["request"] == {"method": "PUT", "url": "Task/t2"}


def test_apply_posts_one_transaction_and_maps_urn_uuids() -> None:
    posted: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/r4/metadata":  # no statement: conditional creates everywhere
            return httpx.Response(404)
        assert request.method == "POST" and request.url.path == "/r4"
        posted.append(json.loads(request.content))
        return fhir_json(
            200,
            {
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": [
                    {
                        "response": {
                            "status": "201 Created",
                            "location": "https://x/r4/Patient/p9/_history/1",
                        }
                    },
                    {"response": {"status": "200 OK", "etag": 'W/"8"'}},
                    {"response": {"status": "200", "location": f"Task/t2/_history/{VID}"}},
                ],
            },
        )

    effects = _effects()
    with make(handler) as fhir:
        assert len(fhir.apply([])) == 0
        assert posted == []
        result = fhir.apply(effects.writes)
    assert len(posted) == 1
    urn = effects.writes[0].full_url  # type: ignore[union-attr]
    assert result.reference(urn) == "Patient/p9"
    assert result.references == {urn: "Patient/p9"}
    assert [(e.status, e.reference, e.version_id) for e in result] == [
        (201, "Patient/p9", "1"),
        (200, "Task/t1", "8"),
        (200, "Task/t2", VID),
    ]
    assert result.created == ["Patient/p9"]


def test_failed_transaction_raises_the_typed_error() -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "conflict"}],
    }
    with make(lambda r: fhir_json(412, body)) as fhir, pytest.raises(FhirPreconditionFailed):
        fhir.apply(_effects().writes)


def test_transaction_response_with_missing_entries_is_invalid() -> None:
    reply = {"resourceType": "Bundle", "type": "transaction-response", "entry": []}
    with make(lambda r: fhir_json(200, reply)) as fhir, pytest.raises(FhirResponseInvalid):
        fhir.apply(_effects().writes)


def test_transaction_result_parses_a_returned_resource_only_when_read() -> None:
    """The write is committed once the server answers: a representation that does not validate
    must not fail the event (a retry would send the transaction again); reading it raises."""
    bad = {"resourceType": "Patient", "id": "p9", "meta": {"versionId": "3"}, "birthDate": "banana"}
    good = {"resourceType": "Task", "id": "t1", "status": "in-progress", "intent": "order"}
    reply = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"resource": bad, "response": {"status": "201 Created"}},
            {"resource": good, "response": {"status": "200 OK", "etag": 'W/"8"'}},
            {"response": {"status": "200 OK", "location": "Task/t2/_history/2"}},
        ],
    }
    with make(lambda r: fhir_json(200, reply)) as fhir:
        result = fhir.apply(_effects().writes)
    created, updated, minimal = result.entries
    assert (created.reference, created.version_id) == ("Patient/p9", "3")
    assert (updated.reference, updated.version_id) == ("Task/t1", "8")
    assert minimal.resource is None and minimal.reference == "Task/t2"
    assert isinstance(updated.resource, Task) and updated.resource.status == "in-progress"
    with pytest.raises(FhirResponseInvalid) as raised:
        _ = created.resource
    assert raised.value.context["resource"] == "Patient/p9" and "banana" not in str(raised.value)
    assert "banana" not in repr(created)


def test_batch_reports_each_entry() -> None:
    reply = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": patient("p1"), "response": {"status": "200 OK"}, "fullUrl": ""},
            {
                "response": {
                    "status": "404 Not Found",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {"severity": "error", "code": "not-found", "diagnostics": "gone"}
                        ],
                    },
                }
            },
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient/p1"}},
            {"request": {"method": "GET", "url": "Patient/nope?_elements=name"}},
        ],
    }
    with make(lambda r: fhir_json(200, reply)) as fhir:
        result = fhir.batch(bundle)
    ok, failed = result.entries
    assert ok.ok and ok.reference == "Patient/p1" and ok.resource is not None
    assert not failed.ok and isinstance(failed.error, FhirNotFound)
    assert failed.error.request == "GET Patient/nope"
    assert result.errors == [failed]
    with pytest.raises(FhirNotFound):
        result.raise_for_errors()


def test_creates_of_identifier_blind_types_become_put_with_rewritten_references() -> None:
    from fhir.resources.R4B.careteam import CareTeam

    from carecoord.core.effects import Effects
    from carecoord.fhir.bundles import identifier_blind_types, writes_to_bundle

    statement = {
        "rest": [{"resource": [{"type": "Task", "searchParam": [{"name": "identifier"}]}]}]
    }
    blind = identifier_blind_types(statement)
    assert "CareTeam" in blind and "Task" not in blind
    assert identifier_blind_types({"rest": []}) == frozenset()

    effects = Effects()
    team = CareTeam.model_validate({"resourceType": "CareTeam", "status": "active"})
    team_urn = effects.create(team, "urn:s", "team-1")
    task = Task.model_validate(
        {"resourceType": "Task", "status": "ready", "intent": "order",
         "basedOn": [{"reference": team_urn}], "note": [{"text": team_urn}]}
    )  # fmt: skip
    effects.create(task, "urn:s", "task-1")
    put_entry, task_entry = writes_to_bundle(effects.writes, blind)["entry"]
    stable = team_urn.removeprefix("urn:uuid:")
    assert put_entry["request"] == {"method": "PUT", "url": f"CareTeam/{stable}"}
    assert put_entry["resource"]["id"] == stable
    assert task_entry["request"]["ifNoneExist"] == "identifier=urn:s|task-1"
    assert task_entry["resource"]["basedOn"] == [{"reference": f"CareTeam/{stable}"}]
    assert task_entry["resource"]["note"] == [{"text": team_urn}]  # only references change
