"""One event's reads (carecoord.fhir.event_reads) over a real FhirClient on a mock server: what
an earlier search answered costs no second request, and what the event learnt about a PUT-create's
id spares the transaction its existence read."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.careteam import CareTeam

from carecoord.core.effects import Effects
from carecoord.fhir.batch_reads import existence_probe, search_together
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import FhirNotFound
from carecoord.fhir.event_reads import EventReads
from carecoord.fhir.transport import Backoff

BASE = "https://fhir.example.org/r4"
STATEMENT = {
    "resourceType": "CapabilityStatement",
    "rest": [
        {
            "mode": "server",
            "interaction": [{"code": "batch"}, {"code": "transaction"}],
            # CareTeam is not listed: no identifier search, so its creates go out as PUT
            "resource": [{"type": "CarePlan", "searchParam": [{"name": "identifier"}]}],
        }
    ],
}


def bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return bundle("searchset", [{"resource": r, "search": {"mode": "match"}} for r in resources])


class Server:
    """Answers metadata, searches, reads, batches and transactions; records every request."""

    def __init__(self, stored: dict[str, dict[str, Any]]) -> None:
        self.stored = stored
        self.requests: list[str] = []
        self.transactions: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4").strip("/")
        if path == "metadata":
            return self.reply(200, STATEMENT)
        label = f"{request.method} {path}" + (
            f"?{request.url.query.decode()}" if request.url.query else ""
        )
        self.requests.append(label)
        if request.method == "POST" and path == "":
            body = json.loads(request.content)
            if body["type"] == "batch":
                return self.reply(200, self.batch(body))
            self.transactions.append(body)
            entries = [
                {
                    "response": {
                        "status": "201 Created",
                        "location": f"{e['request']['url']}/_history/1",
                    }
                }
                for e in body["entry"]
            ]
            return self.reply(200, bundle("transaction-response", entries))
        if request.method == "GET" and "/" in path:
            found = self.stored.get(path)
            return self.reply(200, found) if found else self.reply(404, None)
        rtype = path
        wanted = dict(request.url.params).get("_id")
        return self.reply(200, self.search(rtype, wanted))

    def search(self, rtype: str, wanted: str | None) -> dict[str, Any]:
        return searchset(
            *(
                r
                for key, r in self.stored.items()
                if key.startswith(f"{rtype}/") and wanted in (None, r["id"])
            )
        )

    def batch(self, body: dict[str, Any]) -> dict[str, Any]:
        entries = []
        for entry in body["entry"]:
            url = httpx.URL("/" + entry["request"]["url"])
            answer = self.search(url.path.strip("/"), dict(url.params).get("_id"))
            entries.append({"resource": answer, "response": {"status": "200 OK"}})
        return bundle("batch-response", entries)

    @staticmethod
    def reply(status: int, body: Any) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        return httpx.Response(
            status, content=content, headers={"Content-Type": "application/fhir+json"}
        )


def client(server: Server) -> FhirClient:
    return FhirClient(
        BASE,
        transport=httpx.MockTransport(server),
        backoff=Backoff(0.001, 0.002),
        sleep=lambda s: None,
    )


PLAN = {
    "resourceType": "CarePlan",
    "id": "plan-1",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
}


def team_create() -> tuple[Effects, str]:
    effects = Effects()
    team = CareTeam.model_validate({"resourceType": "CareTeam", "status": "active"})
    urn = effects.create(team, "urn:s", "team-p1")
    return effects, urn.removeprefix("urn:uuid:")


def test_the_same_search_twice_and_a_read_of_what_it_returned_cost_one_request() -> None:
    server = Server({"CarePlan/plan-1": PLAN})
    with client(server) as fhir:
        reads = EventReads(fhir)
        first = reads.search("CarePlan", [("patient", "Patient/p1")])
        again = reads.search("CarePlan", {"patient": "Patient/p1"})  # same search, as a dict
        plan = reads.read("CarePlan", "plan-1")
    assert [p.id for p in first] == [p.id for p in again] == [plan.id] == ["plan-1"]
    assert server.requests == ["GET CarePlan?patient=Patient%2Fp1"]


def test_a_resource_found_missing_is_not_asked_for_again() -> None:
    server = Server({})
    with client(server) as fhir:
        reads = EventReads(fhir)
        for _ in range(2):
            with pytest.raises(FhirNotFound):
                reads.read("Goal", "g1")
    assert server.requests == ["GET Goal/g1"]
    assert reads.known()["Goal/g1"] is None


def test_a_prefetch_batch_answers_the_later_searches_and_sends_only_what_is_new() -> None:
    server = Server({"CarePlan/plan-1": PLAN})
    with client(server) as fhir:
        reads = EventReads(fhir)
        search_together(reads, [("CarePlan", [("patient", "Patient/p1")]), ("Goal", [])])
        search_together(reads, [("CarePlan", [("patient", "Patient/p1")]), ("Task", [])])
        assert [p.id for p in reads.search("CarePlan", [("patient", "Patient/p1")])] == ["plan-1"]
    # the first as one batch; the second sent only the Task search (alone: a plain search)
    assert server.requests == ["POST ", "GET Task"]


def test_a_put_create_whose_id_the_event_found_free_is_written_without_an_existence_read() -> None:
    effects, stable = team_create()
    server = Server({})
    with client(server) as fhir:
        reads = EventReads(fhir)
        probe = existence_probe(fhir, effects.writes[0])  # type: ignore[arg-type]
        assert probe == ("CareTeam", [("_id", stable)])
        assert reads.search(*probe) == []
        fhir.apply(effects.writes, known=reads.known())
    assert server.requests == [f"GET CareTeam?_id={stable}", "POST "]  # no GET CareTeam/<id>
    (entry,) = server.transactions[0]["entry"]
    assert entry["request"] == {"method": "PUT", "url": f"CareTeam/{stable}"}


def test_a_put_create_the_event_saw_stored_is_written_back_unchanged_without_a_read() -> None:
    effects, stable = team_create()
    stored = {
        "resourceType": "CareTeam",
        "id": stable,
        "meta": {"versionId": "4"},
        "status": "inactive",  # a later edit the replay must not undo
    }
    server = Server({f"CareTeam/{stable}": stored})
    with client(server) as fhir:
        reads = EventReads(fhir)
        reads.search("CareTeam", [("_id", stable)])
        fhir.apply(effects.writes, known=reads.known())
    assert server.requests == [f"GET CareTeam?_id={stable}", "POST "]
    (entry,) = server.transactions[0]["entry"]
    assert entry["request"]["ifMatch"] == 'W/"4"'
    assert entry["resource"]["status"] == "inactive"


def test_without_known_the_put_create_reads_first_as_before() -> None:
    effects, stable = team_create()
    server = Server({})
    with client(server) as fhir:
        fhir.apply(effects.writes)
    assert server.requests == [f"GET CareTeam/{stable}", "POST "]


def test_no_probe_where_the_server_searches_the_type_by_identifier() -> None:
    effects = Effects()
    from fhir.resources.R4B.careplan import CarePlan

    effects.create(CarePlan.model_validate(PLAN), "urn:s", "plan-p1")
    with client(Server({})) as fhir:
        assert existence_probe(fhir, effects.writes[0]) is None  # type: ignore[arg-type]


def _team_server(declares_include: bool) -> tuple[list[str], httpx.MockTransport]:
    """A server holding one active plan whose standalone CareTeam names the care manager."""
    from carecoord.caremodel import terminology as t

    role = {"coding": [{"system": t.ROLE_CARE_COORDINATOR.system,
                        "code": t.ROLE_CARE_COORDINATOR.code}]}  # fmt: skip
    member = {"role": [role], "member": {"reference": "Practitioner/cm-1"}}
    team = {"resourceType": "CareTeam", "id": "team-1", "status": "active",
            "subject": {"reference": "Patient/p1"}, "participant": [member]}  # fmt: skip
    plan = {**PLAN, "careTeam": [{"reference": "CareTeam/team-1"}]}
    resource: dict[str, Any] = {"type": "CarePlan", "searchParam": [{"name": "patient"}]}
    if declares_include:
        resource["searchInclude"] = ["CarePlan:subject", "CarePlan:care-team"]
    statement = {"resourceType": "CapabilityStatement",
                 "rest": [{"mode": "server", "resource": [resource]}]}  # fmt: skip
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4").strip("/")
        body: dict[str, Any]
        if path == "metadata":
            body = statement
        else:
            requests.append(f"{request.method} {path}?{request.url.query.decode()}".rstrip("?"))
            if path == "CareTeam/team-1":
                body = team
            else:
                included = "_include" in request.url.params
                entries = [{"resource": plan, "search": {"mode": "match"}}]
                entries += [{"resource": team, "search": {"mode": "include"}}] if included else []
                body = bundle("searchset", entries)
        return httpx.Response(200, json=body, headers={"Content-Type": "application/fhir+json"})

    return requests, httpx.MockTransport(answer)


@pytest.mark.parametrize("declares_include", [True, False])
def test_the_plans_care_team_comes_with_the_plans_where_the_server_declares_the_include(
    declares_include: bool,
) -> None:
    from carecoord.handlers.care.patient_context import patient_team

    requests, transport = _team_server(declares_include)
    with FhirClient(BASE, transport=transport, sleep=lambda s: None) as fhir:
        team = patient_team(EventReads(fhir), "p1")
    assert team.care_manager == "Practitioner/cm-1"
    search = "GET CarePlan?patient=Patient%2Fp1&status=active"
    if declares_include:  # one round trip: the team came with the plan
        assert requests == [search + "&_include=CarePlan%3Acare-team"]
    else:  # no parameter the server did not declare; the team is read by its reference
        assert requests == [search, "GET CareTeam/team-1"]
