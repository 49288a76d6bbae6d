"""Put the instruments' Questionnaires on a FHIR server, once each (by canonical url + version).

Where the server declares Questionnaire search by `url` and `version` (its CapabilityStatement),
each is a conditional create on both. Elsewhere (sekmet, the embedded server, declares neither:
a conditional create there is a 400) it is written with PUT at an id derived from the url's last
segment and the version ("carecoord-44249-1-1.0.0"), read first, so a second run writes nothing
and a server can never hold two of one url and version from carecoord.
"""

from __future__ import annotations

from typing import Literal, Protocol

from fhir.resources.R4B.resource import Resource

from carecoord.caremodel.instruments.definitions import questionnaires
from carecoord.fhir.capabilities import declares_search_param
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import parse_resource

Outcome = Literal["created", "exists"]


class _Writer(Protocol):
    def read(self, resource_type: str, resource_id: str) -> Resource: ...

    def search(self, resource_type: str, params: dict[str, str]) -> list[Resource]: ...

    def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource: ...

    def update(self, resource: Resource, *, if_match: str | None = None) -> Resource: ...


def stable_questionnaire_id(url: str, version: str) -> str:
    """The id a Questionnaire is written at where the server cannot search by url."""
    return f"carecoord-{url.rstrip('/').rsplit('/', 1)[-1]}-{version}"


def publish_questionnaires(fhir: _Writer) -> list[tuple[str, str, Outcome]]:
    """(canonical, version, created | exists) for each Questionnaire. Idempotent: one that is
    there (same url and version) is left alone."""
    searchable = all(declares_search_param(fhir, "Questionnaire", p) for p in ("url", "version"))
    out: list[tuple[str, str, Outcome]] = []
    for raw in questionnaires().values():
        url, version = raw["url"], raw["version"]
        if searchable:
            created = _conditional_create(fhir, raw, url, version)
        else:
            created = _put_once(fhir, raw, stable_questionnaire_id(url, version))
        out.append((url, version, "created" if created else "exists"))
    return out


def _conditional_create(fhir: _Writer, raw: dict[str, object], url: str, version: str) -> bool:
    if fhir.search("Questionnaire", {"url": url, "version": version}):
        return False
    body = {k: v for k, v in raw.items() if k != "id"}  # the server names it
    fhir.create(parse_resource(body), if_none_exist=f"url={url}&version={version}")
    return True


def _put_once(fhir: _Writer, raw: dict[str, object], rid: str) -> bool:
    try:
        fhir.read("Questionnaire", rid)
        return False
    except (FhirNotFound, FhirGone):
        pass
    fhir.update(parse_resource({**raw, "id": rid}))
    return True
