"""Servers that cannot search a type by identifier (sekmet: CareTeam, Goal) still get
idempotent creates: the client learns it from the CapabilityStatement and PUTs a stable id."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.goal import Goal

from carecoord.core.effects import Effects
from carecoord.fhir.client import FhirClient

pytestmark = pytest.mark.integration

SYSTEM = "https://carecoord.dev/fhir/sid/test"


def _effects(unique: str) -> Effects:
    effects = Effects()
    team = CareTeam.model_validate(
        {"resourceType": "CareTeam", "identifier": [{"system": SYSTEM, "value": f"team-{unique}"}],
         "status": "active", "subject": {"reference": f"Patient/{unique}"}}
    )  # fmt: skip
    team_ref = effects.create(team, SYSTEM, f"team-{unique}")
    goal = Goal.model_validate(
        {"resourceType": "Goal", "identifier": [{"system": SYSTEM, "value": f"goal-{unique}"}],
         "lifecycleStatus": "active", "description": {"text": "food security"},
         "subject": {"reference": f"Patient/{unique}"},
         "expressedBy": {"reference": f"Patient/{unique}"},
         "note": [{"text": "team " + team_ref}]}
    )  # fmt: skip
    effects.create(goal, SYSTEM, f"goal-{unique}")
    return effects


def test_replayed_creates_of_unsearchable_types_make_one_resource(
    fhir_base_url: str, unique: str
) -> None:
    with FhirClient(fhir_base_url) as client:
        first = client.apply(_effects(unique).writes)
        second = client.apply(_effects(unique).writes)
        assert [e.reference for e in first.entries] == [e.reference for e in second.entries]
        team_ref = first.entries[0].reference
        assert team_ref is not None and team_ref.startswith("CareTeam/")
        team = client.read("CareTeam", team_ref.split("/")[1])
        assert team.identifier[0].value == f"team-{unique}"
        # The server cannot search Goal at all (it ignores the parameters), so check the one Goal
        # by its stable id: both applies wrote the same resource.
        goal_ref = second.entries[1].reference
        assert goal_ref is not None and goal_ref.startswith("Goal/")
        goal = client.read("Goal", goal_ref.split("/")[1])
        assert goal.identifier[0].value == f"goal-{unique}"


def test_replay_does_not_undo_a_later_change(fhir_base_url: str, unique: str) -> None:
    with FhirClient(fhir_base_url) as client:
        first = client.apply(_effects(unique).writes)
        goal_ref = first.entries[1].reference
        assert goal_ref is not None
        goal = client.read("Goal", goal_ref.split("/")[1])
        goal.lifecycleStatus = "completed"
        client.update(goal, if_match=goal.meta.versionId)
        client.apply(_effects(unique).writes)  # the triggering event is redelivered
        assert client.read("Goal", goal_ref.split("/")[1]).lifecycleStatus == "completed"
