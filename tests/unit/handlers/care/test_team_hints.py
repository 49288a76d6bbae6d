"""The CareTeam ids remembered per client: bounded, per client, and gone with the client."""

from __future__ import annotations

import gc
from typing import Any

from carecoord.fhir.event_reads import EventReads
from carecoord.handlers.care.team_hints import TeamHints, hints_of
from carecoord.testing.fhir import InMemoryFhir


class Client(InMemoryFhir):
    def capability_statement(self) -> dict[str, Any]:
        return {"resourceType": "CapabilityStatement"}


def test_the_least_recently_used_patient_goes_first() -> None:
    hints = TeamHints(limit=2)
    hints.put("p1", ["t1"])
    hints.put("p2", ["t2", "t2b", "t2"])
    assert hints.get("p1") == ("t1",)  # p1 now the most recent
    hints.put("p3", ["t3"])
    assert (hints.get("p1"), hints.get("p2"), hints.get("p3")) == (("t1",), (), ("t3",))
    hints.put("p3", [])  # no active plan with a team any more
    assert hints.get("p3") == ()


def test_an_events_reads_share_their_clients_hints_and_another_client_has_none() -> None:
    client, other = Client(), Client()
    hints = hints_of(EventReads(client))
    assert hints is not None and hints is hints_of(client) is hints_of(EventReads(client))
    hints.put("p1", ["t1"])
    others = hints_of(other)
    assert others is not None and others.get("p1") == ()
    assert hints_of(InMemoryFhir()) is None  # no CapabilityStatement: it cannot batch either


def test_a_closed_client_leaves_nothing_behind() -> None:
    from carecoord.handlers.care import team_hints

    client = Client()
    hints_of(client)
    before = len(team_hints._BY_CLIENT)
    del client
    gc.collect()
    assert len(team_hints._BY_CLIENT) == before - 1
