"""An in-memory FHIR store for the Handlers II unit tests: reads/searches like a FhirReader and
applies Effects like the runtime's transaction (conditional creates by identifier, urn:uuid
references resolved, version-checked updates)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from carecoord.events.envelope import CloudEvent
from carecoord.fhir.errors import FhirNotFound, FhirPreconditionFailed
from carecoord.fhir.models import parse_resource, to_json
from carecoord.handlers.base import Create, Effects, HandlerContext, Update

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)


class FakeFhir:
    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}

    # --- FhirReader ---

    def read(self, resource_type: str, resource_id: str) -> Any:
        try:
            return parse_resource(json.loads(json.dumps(self.store[(resource_type, resource_id)])))
        except KeyError:
            raise FhirNotFound("not found", status=404) from None

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Any]:
        items = list(params.items()) if isinstance(params, Mapping) else list(params)
        out = []
        for (rtype, _), data in sorted(self.store.items()):
            if rtype != resource_type:
                continue
            if all(self._matches(data, k, v) for k, v in items):
                out.append(parse_resource(json.loads(json.dumps(data))))
        return out

    @staticmethod
    def _matches(data: dict[str, Any], key: str, value: str) -> bool:
        if key == "identifier":
            system, _, val = value.partition("|")
            return any(
                i.get("system") == system and i.get("value") == val
                for i in data.get("identifier", [])
            )
        if key in ("subject", "patient"):
            ref = (data.get("subject") or data.get("for") or {}).get("reference")
            return ref == value
        if key == "focus":
            return (data.get("focus") or {}).get("reference") == value
        return True  # like a server ignoring a parameter it does not support

    # --- test helpers ---

    def put(self, data: dict[str, Any]) -> str:
        rid = data.get("id") or uuid.uuid4().hex[:12]
        # Like a server: meta.profile (and other meta) kept, versionId its own.
        data = {**data, "id": rid, "meta": {**(data.get("meta") or {}), "versionId": "1"}}
        parse_resource(data)
        self.store[(data["resourceType"], rid)] = data
        return f"{data['resourceType']}/{rid}"

    def all(self, resource_type: str) -> list[Any]:
        return self.search(resource_type, {})

    def apply(self, effects: Effects) -> None:
        """All-or-nothing like a transaction."""
        snapshot = json.loads(json.dumps({f"{k[0]}/{k[1]}": v for k, v in self.store.items()}))
        urns: dict[str, str] = {}
        try:
            for w in effects.writes:
                if isinstance(w, Create):
                    found = self.search(
                        w.resource.get_resource_type(),
                        {"identifier": f"{w.identifier_system}|{w.identifier_value}"},
                    )
                    if found:
                        urns[w.full_url] = f"{w.resource.get_resource_type()}/{found[0].id}"
                    else:
                        urns[w.full_url] = self.put(_resolve(to_json(w.resource), urns))
            for w in effects.writes:
                if isinstance(w, Update):
                    self._update(w, urns)
        except Exception:
            self.store = {tuple(k.split("/", 1)): v for k, v in snapshot.items()}  # type: ignore[misc]
            raise

    def _update(self, w: Update, urns: dict[str, str]) -> None:
        data = _resolve(to_json(w.resource), urns)
        key = (data["resourceType"], data["id"])
        current = self.store[key]
        if w.version_id is not None and current["meta"]["versionId"] != w.version_id:
            raise FhirPreconditionFailed("version conflict", status=412)
        data["meta"] = {
            **(data.get("meta") or {}),
            "versionId": str(int(current["meta"]["versionId"]) + 1),
        }
        parse_resource(data)
        self.store[key] = data


def _resolve(node: Any, urns: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (urns.get(v, v) if k == "reference" and isinstance(v, str) else _resolve(v, urns))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_resolve(x, urns) for x in node]
    return node


def ctx(fhir: FakeFhir, config: Mapping[str, Any] | None = None) -> HandlerContext:
    return HandlerContext(fhir=fhir, config=dict(config or {}), clock=lambda: NOW)


def event(type_: str, patient: str, data: dict[str, Any], id_: str | None = None) -> CloudEvent:
    return CloudEvent(
        id=id_ or uuid.uuid4().hex,
        source="urn:test",
        type=type_,
        time=NOW,
        subject=f"Patient/{patient}",
        data=data,
    )


def care_team(fhir: FakeFhir, patient: str, care_manager: str, provider: str) -> None:
    from carecoord.fhir.care import care_team as build

    team = build(
        patient=f"Patient/{patient}",
        program="CCM",
        start=NOW.date(),
        care_manager=care_manager,
        provider=provider,
    )
    fhir.put(to_json(team))
