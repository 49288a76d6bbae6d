"""Put the instruments' Questionnaires on a FHIR server, once each (by canonical url + version)."""

from __future__ import annotations

from typing import Literal, Protocol

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel.instruments.definitions import questionnaires
from carecoord.fhir.models import parse_resource

Outcome = Literal["created", "exists"]


class _Writer(Protocol):
    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]: ...

    def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource: ...


def publish_questionnaires(fhir: _Writer) -> list[tuple[str, str, Outcome]]:
    """(canonical, version, created | exists) for each Questionnaire. Idempotent: one that is
    there (same url and version) is left alone; the create is conditional on both as well, so
    two runs at once still leave one."""
    out: list[tuple[str, str, Outcome]] = []
    for raw in questionnaires().values():
        url, version = raw["url"], raw["version"]
        params = {"url": url, "version": version}
        if fhir.search("Questionnaire", params):
            out.append((url, version, "exists"))
            continue
        body = {k: v for k, v in raw.items() if k != "id"}  # the server names it
        fhir.create(parse_resource(body), if_none_exist=f"url={url}&version={version}")
        out.append((url, version, "created"))
    return out
