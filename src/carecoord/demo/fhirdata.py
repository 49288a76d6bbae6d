"""Raw FHIR reads for the demo's summary and simulated organisations: plain JSON, every page.

The summary reads thousands of resources; plain dicts (no model parsing) keep that to seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx

from carecoord.caremodel.identifiers import identifier_system
from carecoord.fhir.transport import rebase_link

Json = dict[str, Any]
PAGE = 500


class FhirData:
    """GET-only access to a FHIR server (searches follow `next` links)."""

    def __init__(
        self, base_url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            timeout=timeout, headers={"Accept": "application/fhir+json"}, transport=transport
        )
        self.searches = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> FhirData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    ) -> list[Json]:
        return list(self.iter_search(resource_type, params))

    def iter_search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    ) -> Iterator[Json]:
        items = list(params.items()) if isinstance(params, Mapping) else list(params)
        if not any(k == "_count" for k, _ in items):
            items.append(("_count", str(PAGE)))
        url: str | None = f"{self.base_url}/{resource_type}"
        query: list[tuple[str, str | int | float | bool | None]] | None = list(items)
        seen: set[str] = set()
        while url:
            self.searches += 1
            response = self.http.get(url, params=query)
            response.raise_for_status()
            bundle = response.json()
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") or {}
                if resource.get("resourceType") != resource_type:
                    continue
                rid = str(resource.get("id"))
                if rid in seen:
                    continue
                seen.add(rid)
                yield resource
            url = next(
                (
                    link.get("url")
                    for link in bundle.get("link") or []
                    if link.get("relation") == "next"
                ),
                None,
            )
            if url:  # servers name their own idea of their address in links; ours is the truth
                url = rebase_link(str(url), self.base_url)
            query = None

    def read(self, resource_type: str, resource_id: str) -> Json:
        response = self.http.get(f"{self.base_url}/{resource_type}/{resource_id}")
        response.raise_for_status()
        result: Json = response.json()
        return result


# -- small readers of raw resources ----------------------------------------------------------


def ident(resource: Mapping[str, Any], kind: str) -> str | None:
    """The value of the carecoord business identifier of `kind` (e.g. "outreach-request")."""
    system = identifier_system(kind)
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == system:
            value = identifier.get("value")
            return str(value) if value is not None else None
    return None


def ref(value: Any) -> str | None:
    if isinstance(value, Mapping):
        reference = value.get("reference")
        return str(reference) if reference else None
    return None


def refs(values: Any) -> list[str]:
    return [r for r in (ref(v) for v in values or []) if r]


def codes(concept: Any) -> set[tuple[str | None, str | None]]:
    """(system, code) pairs of a CodeableConcept or a list of them."""
    concepts = concept if isinstance(concept, list) else [concept]
    return {
        (c.get("system"), c.get("code"))
        for cc in concepts
        if isinstance(cc, Mapping)
        for c in cc.get("coding") or []
    }


def code_values(concept: Any) -> set[str]:
    return {code for _, code in codes(concept) if code}


def patient_id(resource: Mapping[str, Any]) -> str | None:
    for field in ("subject", "for", "patient", "beneficiary"):
        reference = ref(resource.get(field))
        if reference and reference.startswith("Patient/"):
            return reference.split("/", 1)[1]
    return None
