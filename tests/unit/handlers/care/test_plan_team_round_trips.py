"""An escalation and a new referral find the plan's CareTeam in their first batch: with the plans
where the server declares `_include=CarePlan:care-team`, else (sekmet) by the id the plan named
when this client last read it. Counted on an in-memory server that declares batch (a batch, a
search, a read and a transaction are one round trip each); the team chosen is the same either
way."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent
from carecoord.directory.hsds import import_directory
from carecoord.fhir.event_reads import EventReads
from carecoord.fhir.models import parse_resource
from carecoord.handlers.care.patient_context import (
    PLAN_TEAM_INCLUDE,
    care_team_of,
    patient_team,
    prefetch_with_plans,
)
from carecoord.handlers.programs import enrolment, outreach
from carecoord.handlers.referrals import handler as referrals
from carecoord.testing import events
from carecoord.testing.fhir import InMemoryFhir
from carecoord.testing.run import run_events
from support.paths import SAMPLE_DIRECTORY

HANDLERS = [*enrolment.HANDLERS, *outreach.HANDLERS, *referrals.HANDLERS]
CONFIG = {"referrals": {"requester": "Organization/clinic"}}
REVINCLUDES = ["Communication:based-on", "Task:focus"]


class Server(InMemoryFhir):
    """Declares batch and the outreach revincludes, and `_include=CarePlan:care-team` when
    `include_team`; implements both; records each round trip."""

    def __init__(self, *, include_team: bool, team_by_patient: bool = False) -> None:
        super().__init__()
        self.include_team = include_team
        self.team_by_patient = team_by_patient
        self.trips: list[str] = []
        self.batches: list[list[str]] = []

    def capability_statement(self) -> dict[str, Any]:
        plan = {
            "type": "CarePlan",
            "searchInclude": [PLAN_TEAM_INCLUDE] if self.include_team else [],
        }
        requests = {"type": "CommunicationRequest", "searchRevInclude": REVINCLUDES}
        teams = {"type": "CareTeam", "searchParam": [{"name": "patient", "type": "reference"}]}
        resources = [plan, requests, *([teams] if self.team_by_patient else [])]
        rest = {"interaction": [{"code": "batch"}], "resource": resources}
        return {"resourceType": "CapabilityStatement", "rest": [rest]}

    def restarted(self) -> Server:
        """The same stored resources behind a new client (nothing remembered)."""
        other = Server(include_team=self.include_team)
        other.store = copy.deepcopy(self.store)
        return other

    def read(self, resource_type: str, resource_id: str) -> Any:
        self.trips.append(f"read {resource_type}")
        return super().read(resource_type, resource_id)

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.trips.append(f"search {resource_type}")
        return self._search(resource_type, params)

    def search_batch(self, searches: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> list[Any]:
        self.trips.append("batch")
        self.batches.append([rtype for rtype, _ in searches])
        return [self._search(rtype, params) for rtype, params in searches]

    def apply(self, writes: Any, **_: Any) -> Any:
        self.trips.append("transaction")
        return super().apply(list(writes))

    def _search(self, resource_type: str, params: Any) -> list[Any]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        plain = [(k, v) for k, v in pairs if k not in ("_include", "_revinclude")]
        found = InMemoryFhir.search(self, resource_type, plain)
        for key, spec in pairs:
            if key == "_include" and spec == PLAN_TEAM_INCLUDE and self.include_team:
                for plan in list(found):
                    for link in getattr(plan, "careTeam", None) or []:
                        rtype, _, rid = str(link.reference).partition("/")
                        found.append(InMemoryFhir.read(self, rtype, rid))
            if key == "_revinclude" and spec in REVINCLUDES:
                source, _, param = spec.partition(":")
                for match in list(found)[: len(found)]:
                    ref = f"{match.get_resource_type()}/{match.id}"
                    found += InMemoryFhir.search(self, source, [(param, ref)])
        return found


def _run(server: Server, *evs: CloudEvent) -> tuple[list[str], list[Emit]]:
    """The round trips of running `evs`, and what they emitted (no dead letter)."""
    server.trips.clear()
    server.batches.clear()
    run = run_events(HANDLERS, *evs, fhir=server, config=CONFIG)
    assert run.dead_letters == []
    return list(server.trips), run.emitted


def _enrolled_with_two_attempts(server: Server) -> None:
    directory = json.loads(SAMPLE_DIRECTORY.read_text())
    assert import_directory(server, directory).problems == []
    enrolled = events.patient_enrolled("p1", care_manager="Practitioner/cm1")
    _run(server, enrolled)
    for n, outcome in ((1, "no-answer"), (2, "voicemail")):
        _run(server, events.outreach_attempted("p1", id=f"a{n}", outcome=outcome))


def _escalation(server: Server) -> tuple[list[str], str]:
    """The round trips of the third unanswered attempt, and the escalation's owner."""
    trips, emitted = _run(server, events.outreach_attempted("p1", id="a3"))
    (escalated,) = [e for e in emitted if e.type == "carecoord.outreach.escalated"]
    return trips, str(escalated.data["owner"])


def _referral(server: Server) -> list[str]:
    return _run(server, events.sdoh_need_identified("p1"))[0]


@pytest.mark.parametrize(
    ("include_team", "team_by_patient"),
    [(True, False), (False, True), (False, False)],
    ids=["include", "CareTeam?patient", "sekmet-like"],
)
def test_an_escalation_and_a_referral_take_one_batch_and_one_transaction(
    include_team: bool, team_by_patient: bool
) -> None:
    server = Server(include_team=include_team, team_by_patient=team_by_patient)
    _enrolled_with_two_attempts(server)
    # the owner: the team's primary care physician
    assert _escalation(server) == (["batch", "transaction"], "Practitioner/doc")
    # the team: with the plans (include), else a CareTeam search beside them (by patient, or
    # by the id the plan named in the earlier attempts)
    assert ("CareTeam" in server.batches[0]) is not include_team
    assert _referral(server) == ["batch", "transaction"]
    assert ("CareTeam" in server.batches[0]) is not include_team
    assert server.batches[0].count("CareTeam") == (0 if include_team else 1)


def test_a_restarted_client_reads_the_team_once_then_batches_it() -> None:
    """Nothing is remembered across clients: the first escalation after a restart reads the
    team (as before the hints), the same team and owner; the next event batches it."""
    server = Server(include_team=False)
    _enrolled_with_two_attempts(server)
    fresh = server.restarted()
    trips = ["batch", "read CareTeam", "transaction"]
    assert _escalation(fresh) == (trips, "Practitioner/doc")
    assert _referral(fresh) == ["batch", "transaction"]


def test_a_plan_given_another_team_reads_that_one_and_escalates_to_its_provider() -> None:
    server = Server(include_team=False)
    _enrolled_with_two_attempts(server)
    (plan,) = server.all("CarePlan")
    other = server.put(_team("Practitioner/dr-other", status="active"))
    plan["careTeam"] = [{"reference": other}]
    trips = ["batch", "read CareTeam", "transaction"]
    assert _escalation(server) == (trips, "Practitioner/dr-other")


def _team(provider: str, *, status: str, coordinator: str | None = None) -> dict[str, Any]:
    def member(who: str, role: t.Code) -> dict[str, Any]:
        return {"member": {"reference": who}, "role": [role.concept_json()]}

    participants = [member(provider, t.ROLE_PRIMARY_CARE_PHYSICIAN)]
    if coordinator:
        participants.append(member(coordinator, t.ROLE_CARE_COORDINATOR))
    return {
        "resourceType": "CareTeam",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "participant": participants,
    }


def _plan(plan_id: str, start: str, *, teams: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": start},
        "careTeam": [{"reference": ref} for ref in teams],
        **extra,
    }


def _patient_teams(server: Server) -> list[tuple[str | None, str | None]]:
    """(care manager, provider) per active plan and over the patient, read as an event does
    after its first batch."""
    reads = EventReads(server)
    prefetch_with_plans(reads, "p1", [])
    plans = [parse_resource(p) for p in server.all("CarePlan")]
    return [tuple(care_team_of(p, reads)) for p in plans] + [tuple(patient_team(reads, "p1"))]


def test_the_same_teams_are_chosen_with_and_without_the_batched_team() -> None:
    """An inactive team is skipped, a contained team counts, a plan without a coordinator gives
    its author: the same answers from a cold client (teams read) and a warm one (batched)."""
    server = Server(include_team=False)
    active = server.put(
        _team("Practitioner/dr-a", status="active", coordinator="Practitioner/cm-a")
    )
    inactive = server.put(
        _team("Practitioner/dr-x", status="inactive", coordinator="Practitioner/x")
    )
    contained = {**_team("Practitioner/dr-c", status="active"), "id": "in"}
    server.put(_plan("p-a", "2030-01-01", teams=[active]))
    server.put(
        _plan("p-b", "2030-02-01", teams=[inactive], author={"reference": "Practitioner/au"})
    )
    server.put(_plan("p-c", "2030-03-01", contained=[contained], careTeam=[{"reference": "#in"}]))
    cold = _patient_teams(server)
    assert server.trips == ["search CarePlan", "read CareTeam", "read CareTeam"]
    server.trips.clear()
    assert _patient_teams(server) == cold
    assert server.trips == ["batch"]  # both teams in it: no read
    assert cold == [
        ("Practitioner/cm-a", "Practitioner/dr-a"),
        ("Practitioner/au", None),
        (None, "Practitioner/dr-c"),
        ("Practitioner/cm-a", "Practitioner/dr-c"),
    ]
