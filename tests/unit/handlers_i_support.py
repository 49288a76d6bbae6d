"""An in-memory FHIR store for the handler unit tests: reads, the searches these handlers use, and
`apply` with conditional creates (by identifier), urn:uuid resolution and If-Match versions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import Create, Effects, FhirWrite, Update
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.fhir.errors import FhirNotFound, FhirPreconditionFailed
from carecoord.fhir.models import parse_resource, to_json

REFERENCE_PARAMS = {
    "patient": ("subject", "for"),
    "subject": ("subject", "for"),
    "requester": ("requester",),
    "based-on": ("basedOn",),
    "focus": ("focus",),
}
DATE_PARAMS = {"authored": "authoredOn", "authored-on": "authoredOn"}


class FakeFhir:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self._next = 0
        self.transactions = 0

    # --- FhirReader ---

    def read(self, resource_type: str, resource_id: str) -> Resource:
        try:
            return parse_resource(self.store[(resource_type, resource_id)])
        except KeyError:
            raise FhirNotFound("not found", status=404) from None

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        return [
            parse_resource(r)
            for (rtype, _), r in sorted(self.store.items())
            if rtype == resource_type and all(_matches(r, k, v) for k, v in pairs)
        ]

    # --- writes ---

    def apply(self, writes: Sequence[FhirWrite]) -> None:
        urns: dict[str, str] = {}
        pending: list[tuple[str, dict[str, Any]]] = []
        for w in writes:
            if isinstance(w, Create):
                data = to_json(w.resource)
                rtype = data["resourceType"]
                existing = self._by_identifier(rtype, w.identifier_system, w.identifier_value)
                if existing is not None:
                    urns[w.full_url] = f"{rtype}/{existing}"
                    continue
                self._next += 1
                rid = f"{rtype.lower()}-{self._next}"
                urns[w.full_url] = f"{rtype}/{rid}"
                data["id"] = rid
                pending.append(("create", data))
            elif isinstance(w, Update):
                data = to_json(w.resource)
                current = self.store[(data["resourceType"], data["id"])]
                if w.version_id is not None and current["meta"]["versionId"] != w.version_id:
                    raise FhirPreconditionFailed("version conflict", status=412)
                pending.append(("update", data))
        for _, data in pending:
            text = json.dumps(data)
            for urn, ref in urns.items():
                text = text.replace(urn, ref)
            resolved = json.loads(text)
            key = (resolved["resourceType"], resolved["id"])
            version = int(self.store.get(key, {}).get("meta", {}).get("versionId", "0")) + 1
            resolved["meta"] = {**resolved.get("meta", {}), "versionId": str(version)}
            self.store[key] = resolved
        self.transactions += 1

    def _by_identifier(self, rtype: str, system: str, value: str) -> str | None:
        for (t, rid), r in self.store.items():
            if t == rtype and any(
                i.get("system") == system and i.get("value") == value
                for i in r.get("identifier", [])
            ):
                return rid
        return None

    # --- test helpers ---

    def all(self, resource_type: str) -> list[dict[str, Any]]:
        return [r for (t, _), r in sorted(self.store.items()) if t == resource_type]

    def tasks(self, code: str) -> list[dict[str, Any]]:
        return [t for t in self.all("Task") if any(c["code"] == code for c in t["code"]["coding"])]


def _refs(resource: dict[str, Any], paths: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        value = resource.get(path)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "reference" in item:
                out.add(item["reference"])
    return out


def _matches(resource: dict[str, Any], key: str, value: str) -> bool:
    if key == "identifier":
        system, _, val = value.partition("|")
        return any(
            i.get("system") == system and (not val or i.get("value") == val)
            for i in resource.get("identifier", [])
        )
    if key in REFERENCE_PARAMS:
        return value in _refs(resource, REFERENCE_PARAMS[key])
    if key == "status":
        return resource.get("status") in value.split(",")
    if key == "code":
        codings = resource.get("code", {}).get("coding", [])
        return any(f"{c['system']}|{c['code']}" in value.split(",") for c in codings)
    if key in DATE_PARAMS:
        actual = str(resource.get(DATE_PARAMS[key], ""))[:10]
        bound = value[2:]
        return bool(actual) and (actual >= bound if value.startswith("ge") else actual <= bound)
    return True  # like a lenient server: unknown parameters are ignored


class Runner:
    """Runs handler specs the way the processor does: merged effects, one apply per event."""

    def __init__(self, specs: Sequence[HandlerSpec], config: Mapping[str, Any] | None = None):
        self.fhir = FakeFhir()
        self.specs = list(specs)
        self.config = dict(config or {})
        self.emitted: list[Any] = []

    def effects(self, event: CloudEvent) -> Effects:
        ctx = HandlerContext(self.fhir, self.config, lambda: datetime(2030, 1, 1, tzinfo=UTC))
        merged = Effects()
        for spec in self.specs:
            if event.type in spec.event_types:
                merged.extend(spec.handle(event, ctx))
        return merged

    def run(self, event: CloudEvent) -> Effects:
        effects = self.effects(event)
        if effects.writes:
            self.fhir.apply(effects.writes)
        self.emitted.extend(effects.emits)
        return effects


def enrolled(patient: str, *, start: str = "2024-05-03", **data: Any) -> CloudEvent:
    body = {"program": "CCM", "provider": "Practitioner/doc", "start": start, **data}
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}-{start}")


def attempted(
    patient: str, n: int, outcome: str, *, at: str = "2024-05-1{n}T10:00:00Z", **data: Any
) -> CloudEvent:
    body = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": at.format(n=n),
        "by": "Practitioner/cm1",
        **data,
    }
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}-{n}")
