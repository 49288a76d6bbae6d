"""`publish_questionnaires`: once per url and version, run as often as you like: a conditional
create where the server can search Questionnaire by url and version, else a PUT at a derived id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from fhir.resources.R4B.resource import Resource

from carecoord.caremodel.instruments import publish_questionnaires, questionnaires
from carecoord.caremodel.instruments.publish import stable_questionnaire_id
from carecoord.fhir.errors import FhirNotFound
from carecoord.fhir.models import to_json


class FakeServer:
    """Questionnaires by id; answers url+version searches only if it declares them."""

    def __init__(self, searchable: bool) -> None:
        self.searchable = searchable
        self.stored: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str | None]] = []

    def capability_statement(self) -> Mapping[str, Any]:
        params = [{"name": "url"}, {"name": "version"}] if self.searchable else []
        return {"rest": [{"resource": [{"type": "Questionnaire", "searchParam": params}]}]}

    def read(self, resource_type: str, resource_id: str) -> Resource:
        if resource_id not in self.stored:
            raise FhirNotFound("gone", resource=f"{resource_type}/{resource_id}")
        return self.stored[resource_id]  # type: ignore[return-value]

    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]:
        assert self.searchable, "searched a parameter the server does not declare"
        return [
            q  # type: ignore[misc]
            for q in self.stored.values()
            if (q["url"], q["version"]) == (params["url"], params["version"])
        ]

    def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource:
        self.writes.append(("create", if_none_exist))
        body = to_json(resource)
        self.stored[f"q{len(self.stored)}"] = body
        return resource

    def update(self, resource: Resource, *, if_match: str | None = None) -> Resource:
        body = to_json(resource)
        self.writes.append(("update", body["id"]))
        self.stored[body["id"]] = body
        return resource


@pytest.mark.parametrize("searchable", [True, False])
def test_publishing_twice_writes_each_questionnaire_once(searchable: bool) -> None:
    server = FakeServer(searchable)
    first = publish_questionnaires(server)
    second = publish_questionnaires(server)
    assert [o for _, _, o in first] == ["created"] * 5
    assert [o for _, _, o in second] == ["exists"] * 5
    assert len(server.writes) == 5 == len(server.stored)
    urls = sorted(q["url"] for q in server.stored.values())
    assert urls == sorted(q["url"] for q in questionnaires().values())


def test_a_searchable_server_gets_a_create_conditional_on_url_and_version() -> None:
    server = FakeServer(searchable=True)
    publish_questionnaires(server)
    kinds = {kind for kind, _ in server.writes}
    assert kinds == {"create"}
    assert (
        "create",
        "url=https://carecoord.dev/fhir/Questionnaire/44249-1&version=1.0.0",
    ) in server.writes


def test_elsewhere_each_is_put_at_an_id_derived_from_url_and_version() -> None:
    server = FakeServer(searchable=False)
    publish_questionnaires(server)
    assert ("update", "carecoord-44249-1-1.0.0") in server.writes
    assert stable_questionnaire_id(
        "https://carecoord.dev/fhir/Questionnaire/carecoord-check-in", "2"
    ) == ("carecoord-carecoord-check-in-2")
