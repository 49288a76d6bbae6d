"""`InMemoryFhir`: a FHIR server in a dict, for tests of handlers and of anything that takes a
`FhirReader` (reads, searches) or applies effects (`apply`, like `FhirClient.apply`).

It behaves like the real server on what carecoord relies on, checked by the same contract suite
(tests/contract/test_fhir_contract.py runs every case against it and against a real FHIR server):

- `apply(writes)` is one transaction: all or nothing. A `Create` is conditional on its business
  identifier (If-None-Exist): when a resource with it exists, nothing is created and the urn:uuid
  resolves to the existing one. An `Update` with a `version_id` is If-Match: another version
  raises `FhirPreconditionFailed` (412) and nothing of the transaction is kept.
- urn:uuid references between the transaction's writes are resolved to "Type/id".
- `read` raises `FhirNotFound`; every write bumps `meta.versionId`.
- `search` supports identifier, _id, subject/patient, requester, based-on, focus, owner, status,
  code, authored(-on) ge/le; like a lenient server, it ignores parameters it does not know.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import Create, Effects, FhirWrite, Update
from carecoord.fhir.bundles import EntryResult, TransactionResult
from carecoord.fhir.errors import FhirNotFound, FhirPreconditionFailed
from carecoord.fhir.models import parse_resource, to_json

REFERENCE_PARAMS: Mapping[str, tuple[str, ...]] = {
    "patient": ("subject", "for", "patient"),
    "subject": ("subject", "for", "patient"),
    "requester": ("requester",),
    "based-on": ("basedOn",),
    "focus": ("focus",),
    "owner": ("owner",),
}
DATE_PARAMS: Mapping[str, str] = {"authored": "authoredOn", "authored-on": "authoredOn"}


class InMemoryFhir:
    """A `FhirReader` with transaction `apply`; `store` maps (type, id) to the resource's JSON."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.transactions = 0
        self._ids = itertools.count(1)

    # --- FhirReader ---

    def read(self, resource_type: str, resource_id: str) -> Resource:
        try:
            return parse_resource(copy.deepcopy(self.store[(resource_type, resource_id)]))
        except KeyError:
            raise FhirNotFound(
                "not found", status=404, resource=f"{resource_type}/{resource_id}"
            ) from None

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        return [
            parse_resource(copy.deepcopy(r))
            for (rtype, _), r in sorted(self.store.items())
            if rtype == resource_type and all(_matches(r, k, v) for k, v in pairs)
        ]

    # --- writes ---

    def apply(self, writes: Sequence[FhirWrite] | Effects) -> TransactionResult:
        """Apply `writes` (or an Effects' writes) as one transaction: all or nothing."""
        if isinstance(writes, Effects):
            writes = writes.writes
        snapshot = copy.deepcopy(self.store)
        try:
            result = self._apply(writes)
        except Exception:
            self.store = snapshot
            raise
        self.transactions += 1
        return result

    def _apply(self, writes: Sequence[FhirWrite]) -> TransactionResult:
        urns: dict[str, str] = {}
        planned: list[tuple[int, str, dict[str, Any] | None, str]] = []
        data: dict[str, Any]
        for i, w in enumerate(writes):
            if isinstance(w, Create):
                data = to_json(w.resource)
                rtype = data["resourceType"]
                existing = self._by_identifier(rtype, w.identifier_system, w.identifier_value)
                if existing is not None:
                    urns[w.full_url] = f"{rtype}/{existing}"
                    planned.append((i, w.full_url, None, f"{rtype}/{existing}"))
                    continue
                data["id"] = f"{rtype.lower()}-{next(self._ids)}"
                urns[w.full_url] = f"{rtype}/{data['id']}"
                planned.append((i, w.full_url, data, urns[w.full_url]))
            elif isinstance(w, Update):
                data = to_json(w.resource)
                key = (data["resourceType"], data["id"])
                current = self.store.get(key)
                if w.version_id is not None and (
                    current is None or current.get("meta", {}).get("versionId") != w.version_id
                ):
                    raise FhirPreconditionFailed(
                        "version conflict", status=412, resource=f"{key[0]}/{key[1]}"
                    )
                planned.append((i, "", data, f"{key[0]}/{key[1]}"))
        entries = []
        for i, full_url, planned_data, reference in planned:
            if planned_data is None:  # the conditional create found its resource
                rtype, rid = reference.split("/", 1)
                version = self.store[(rtype, rid)].get("meta", {}).get("versionId")
                entries.append(EntryResult(i, 200, full_url or None, reference, version))
                continue
            resolved = _resolve(planned_data, urns)
            key = (resolved["resourceType"], resolved["id"])
            before = self.store.get(key)
            version = str(int((before or {}).get("meta", {}).get("versionId", "0")) + 1)
            resolved["meta"] = {**resolved.get("meta", {}), "versionId": version}
            parse_resource(copy.deepcopy(resolved))  # still a valid resource
            self.store[key] = resolved
            status = 201 if before is None else 200
            entries.append(EntryResult(i, status, full_url or None, reference, version))
        return TransactionResult(tuple(entries), dict(urns))

    def _by_identifier(self, rtype: str, system: str, value: str) -> str | None:
        for (t, rid), r in sorted(self.store.items()):
            if t == rtype and any(
                i.get("system") == system and i.get("value") == value
                for i in r.get("identifier", [])
            ):
                return rid
        return None

    # --- test helpers ---

    def put(self, resource: Mapping[str, Any] | Resource) -> str:
        """Store a resource as the server would have it (its id kept or given); "Type/id"."""
        data = (
            to_json(resource) if isinstance(resource, Resource) else copy.deepcopy(dict(resource))
        )
        rid = data.get("id") or f"{str(data['resourceType']).lower()}-{next(self._ids)}"
        key = (data["resourceType"], rid)
        version = int(self.store.get(key, {}).get("meta", {}).get("versionId", "0")) + 1
        data = {**data, "id": rid, "meta": {**data.get("meta", {}), "versionId": str(version)}}
        parse_resource(copy.deepcopy(data))
        self.store[key] = data
        return f"{key[0]}/{rid}"

    def all(self, resource_type: str) -> list[dict[str, Any]]:
        """The JSON of every stored resource of a type, ordered by id."""
        return [r for (t, _), r in sorted(self.store.items()) if t == resource_type]

    def resources(self, resource_type: str) -> list[Resource]:
        """Every stored resource of a type as fhir.resources objects, ordered by id."""
        return self.search(resource_type, {})

    def tasks(self, code: str) -> list[dict[str, Any]]:
        """Stored Tasks with this code (any system)."""
        return [
            t
            for t in self.all("Task")
            if any(c.get("code") == code for c in t.get("code", {}).get("coding", []))
        ]


def _resolve(node: Any, urns: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve(v, urns) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(x, urns) for x in node]
    if isinstance(node, str):
        return urns.get(node, node)
    return node


def _refs(resource: Mapping[str, Any], paths: Sequence[str]) -> set[str]:
    out: set[str] = set()
    for path in paths:
        value = resource.get(path)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "reference" in item:
                out.add(item["reference"])
    return out


def _matches(resource: Mapping[str, Any], key: str, value: str) -> bool:
    if key == "identifier":
        system, _, val = value.partition("|")
        return any(
            i.get("system") == system and (not val or i.get("value") == val)
            for i in resource.get("identifier", [])
        )
    if key == "_id":
        return resource.get("id") in value.split(",")
    if key in REFERENCE_PARAMS:
        return bool(set(value.split(",")) & _refs(resource, REFERENCE_PARAMS[key]))
    if key == "status":
        return resource.get("status") in value.split(",")
    if key == "code":
        codings = resource.get("code", {}).get("coding", [])
        wanted = value.split(",")
        return any(f"{c.get('system')}|{c.get('code')}" in wanted for c in codings)
    if key in DATE_PARAMS:
        actual = str(resource.get(DATE_PARAMS[key], ""))[:10]
        bound = value[2:]
        return bool(actual) and (actual >= bound if value.startswith("ge") else actual <= bound)
    return True  # like a lenient server: unknown parameters are ignored
