"""Bundles: references, versions and Locations as servers really send them; transaction/batch
requests built from handler effects; their responses turned into a `TransactionResult`.

Servers differ (docs/architecture.md): a Location may be absolute (any host, even a wrong one)
or relative, versionIds may be integers or UUIDs, ETags weak or strong. Everything here reads
`Type/id` and `_history/vid` from the end of a URL and never trusts its host.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from fhir.resources.R4B.resource import Resource

from carecoord.core import json_codec
from carecoord.core.effects import Create, FhirWrite, Update
from carecoord.fhir import reading
from carecoord.fhir.errors import FhirError, FhirResponseInvalid
from carecoord.fhir.models import (
    DEFAULT_VERSION,
    FhirVersion,
    parse_resource,
    to_json,
    wire_json,
)

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_resource_type(value: str) -> bool:
    return bool(_TYPE.match(value))


def is_resource_id(value: str) -> bool:
    return bool(_ID.match(value))


def version_of(resource: Resource) -> str | None:
    """meta.versionId of a resource, or None (a lean resource's meta read as JSON)."""
    vid = reading.field(reading.element(resource, "meta"), "versionId")
    return str(vid) if vid else None


def json_version(data: Mapping[str, Any]) -> str | None:
    """meta.versionId of a resource's JSON, or None."""
    meta = data.get("meta")
    vid = meta.get("versionId") if isinstance(meta, Mapping) else None
    return str(vid) if vid else None


def reference_of(resource: Resource) -> str:
    """ "Type/id" of a resource that has an id."""
    rid = getattr(resource, "id", None)
    if not rid:
        raise ValueError(f"{resource.get_resource_type()} has no id to reference")
    return f"{resource.get_resource_type()}/{rid}"


@dataclass(frozen=True)
class Location:
    resource_type: str
    id: str
    version_id: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.id}"


def parse_location(url: str) -> Location:
    """`[base/]Type/id[/_history/vid]` — absolute (any host) or relative — into its parts."""
    url = url.strip()
    # Most servers answer a relative "Type/id/_history/n": no URL parse for it (per entry).
    path = url if "?" not in url and "#" not in url and ":" not in url else urlsplit(url).path
    parts = [p for p in path.split("/") if p]
    version: str | None = None
    if len(parts) >= 4 and parts[-2] == "_history":
        version = parts[-1]
        parts = parts[:-2]
    if len(parts) < 2 or not is_resource_type(parts[-2]) or not is_resource_id(parts[-1]):
        raise FhirResponseInvalid(f"cannot read Type/id from Location {path!r}")
    return Location(parts[-2], parts[-1], version)


def parse_etag(etag: str | None) -> str | None:
    """The version in an ETag: W/"3" (weak), "3" (strong) or a bare 3 -> "3"."""
    if not etag:
        return None
    value = etag.strip()
    if value[:2] in ("W/", "w/"):
        value = value[2:]
    value = value.strip().strip('"')
    return value or None


def if_match(version_id: str) -> str:
    """If-Match header value for a version: W/"<vid>" (an ETag given as such is kept)."""
    v = version_id.strip()
    if v.startswith(('W/"', 'w/"', '"')):
        return v
    return f'W/"{v}"'


# --- building requests ----------------------------------------------------------------------


def writes_to_bundle(
    writes: Sequence[FhirWrite],
    put_types: Collection[str] = frozenset(),
    existing: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """ONE transaction Bundle for a handler's effects: conditional POSTs and If-Match PUTs.

    Creates of a type in `put_types` (types the server cannot search by identifier, where
    If-None-Exist would fail or match everything) become `PUT Type/<stable id>` instead, still
    idempotent; references to their urn:uuid are rewritten to that literal reference. When
    `existing` (by `Create.full_url`) holds the resource already stored under that id, it is
    written back unchanged (If-Match its version) so a replay never undoes later edits.
    """
    entries: list[dict[str, Any]] = []
    literal: dict[str, str] = {}
    for write in writes:
        rtype = write.resource.get_resource_type()
        if isinstance(write, Create) and rtype in put_types:
            rid = write.full_url.removeprefix("urn:uuid:")
            literal[write.full_url] = f"{rtype}/{rid}"
            put: dict[str, Any] = {"method": "PUT", "url": f"{rtype}/{rid}"}
            stored = (existing or {}).get(write.full_url)
            if stored is not None:
                body = dict(stored)
                vid = json_version(stored)
                if vid:
                    put["ifMatch"] = if_match(vid)
            else:
                body = to_json(write.resource)
                body["id"] = rid
            entries.append({"resource": body, "request": put})
            continue
        body = wire_json(write.resource)  # dumped as the request body, not edited
        if isinstance(write, Create):
            entries.append(
                {
                    "fullUrl": write.full_url,
                    "resource": body,
                    "request": {
                        "method": "POST",
                        "url": rtype,
                        "ifNoneExist": write.if_none_exist,
                    },
                }
            )
        elif isinstance(write, Update):
            uid = write.resource.id
            if not uid:
                raise ValueError(f"Update of a {rtype} without an id")
            request: dict[str, Any] = {"method": "PUT", "url": f"{rtype}/{uid}"}
            if write.version_id:
                request["ifMatch"] = if_match(write.version_id)
            entries.append({"resource": body, "request": request})
        else:  # pragma: no cover - FhirWrite is a closed union
            raise TypeError(f"not a FHIR write: {type(write).__name__}")
    if literal:
        entries = [_with_literal_refs(e, literal) for e in entries]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _with_literal_refs(entry: dict[str, Any], literal: Mapping[str, str]) -> dict[str, Any]:
    """`entry` with every `"reference": <urn>` of `literal` made its literal reference: in its
    compact JSON text (C speed; a walk of every element in Python was 5 % of a drain worker's
    CPU). Urns are hex and hyphens, the literals Type/<the urn's uuid>: no escaping either side."""
    blob = json_codec.dumps(entry)
    edited = blob
    for urn, reference in literal.items():
        edited = edited.replace(
            b'"reference":"' + urn.encode() + b'"', b'"reference":"' + reference.encode() + b'"'
        )
    if edited == blob:
        return entry
    loaded: dict[str, Any] = json_codec.loads(edited)
    return loaded


# Every resource type carecoord creates (checked against a server's CapabilityStatement).
CREATABLE_TYPES = (
    "Basic", "CarePlan", "CareTeam", "ChargeItem", "Communication", "CommunicationRequest",
    "Condition", "Goal", "HealthcareService", "Location", "Observation", "Organization",
    "ServiceRequest", "Task",
)  # fmt: skip


def identifier_blind_types(capability_statement: Mapping[str, Any]) -> frozenset[str]:
    """Resource types the server does not declare `identifier` search for (absent types included
    as far as the statement lists any). Conditional create on them cannot work.

    Asked on every transaction of a statement a client fetched once: the answer for the last
    statement object is kept (clients never change theirs)."""
    global _last_blind
    last = _last_blind
    if last is not None and last[0] is capability_statement:
        return last[1]
    blind = _identifier_blind_types(capability_statement)
    _last_blind = (capability_statement, blind)
    return blind


_last_blind: tuple[Mapping[str, Any], frozenset[str]] | None = None


def _identifier_blind_types(capability_statement: Mapping[str, Any]) -> frozenset[str]:
    declared: dict[str, set[str]] = {}
    for rest in capability_statement.get("rest") or []:
        for res in rest.get("resource") or []:
            names = {str(p.get("name")) for p in res.get("searchParam") or []}
            declared.setdefault(str(res.get("type")), set()).update(names)
    if not declared:
        return frozenset()  # a statement that lists nothing tells us nothing: trust the spec
    return frozenset(t for t in CREATABLE_TYPES if "identifier" not in declared.get(t, set()))


def bundle_json(bundle: Resource | Mapping[str, Any], expected_type: str) -> dict[str, Any]:
    """A transaction/batch Bundle as JSON, checking its type."""
    data = dict(bundle) if isinstance(bundle, Mapping) else to_json(bundle)
    if data.get("resourceType") != "Bundle":
        raise ValueError("not a Bundle")
    if data.get("type") != expected_type:
        raise ValueError(f"Bundle.type is {data.get('type')!r}, expected {expected_type!r}")
    return data


def retry_safe(bundle: Mapping[str, Any]) -> bool:
    """May this transaction/batch be sent again if the first try may have reached the server?

    Yes when no entry could apply twice: every POST is conditional (ifNoneExist), no PATCH.
    PUT and DELETE are idempotent; GET changes nothing.
    """
    for entry in bundle.get("entry") or []:
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method == "PATCH" or (method == "POST" and not request.get("ifNoneExist")):
            return False
    return True


# --- reading responses ----------------------------------------------------------------------


@dataclass(frozen=True)
class EntryResult:
    """The outcome of one request entry, in request order.

    `resource` is parsed from the response's JSON on first access: the runtime needs only the
    reference and version, and validating every returned resource cost an eighth of a worker's
    CPU (bench (e)). An invalid resource raises FhirResponseInvalid where it is read, not after
    the server has already committed the transaction.
    """

    index: int
    status: int
    full_url: str | None = None  # the request entry's fullUrl (e.g. its urn:uuid)
    reference: str | None = None  # "Type/id" of the resulting resource
    version_id: str | None = None
    # Left out of repr: results get logged, resources may hold PHI.
    resource_json: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    error: FhirError | None = None  # batch only: why this entry failed
    fhir_version: FhirVersion = field(default=DEFAULT_VERSION, repr=False, compare=False)

    @cached_property
    def resource(self) -> Resource | None:
        """The resource the server returned (Prefer: return=representation), or None."""
        if self.resource_json is None:
            return None
        return parse_resource(dict(self.resource_json), self.fhir_version)

    @property
    def created(self) -> bool:
        return self.status == 201

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class TransactionResult:
    """What a transaction (or batch) did: one `EntryResult` per request entry, and each request
    fullUrl (urn:uuid placeholders included) mapped to the resulting "Type/id"."""

    entries: tuple[EntryResult, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[EntryResult]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> EntryResult:
        return self.entries[index]

    def for_full_url(self, full_url: str) -> EntryResult:
        for entry in self.entries:
            if entry.full_url == full_url:
                return entry
        raise KeyError(full_url)

    def reference(self, full_url: str) -> str:
        """The "Type/id" the server gave the entry with this fullUrl (e.g. a urn:uuid)."""
        return self.references[full_url]

    @property
    def created(self) -> list[str]:
        return [e.reference for e in self.entries if e.created and e.reference]


@dataclass(frozen=True)
class BatchResult(TransactionResult):
    """A batch's entries succeed or fail one by one; failed ones carry `error`."""

    @property
    def errors(self) -> list[EntryResult]:
        return [e for e in self.entries if e.error is not None]

    def raise_for_errors(self) -> None:
        failed = self.errors
        if failed and failed[0].error is not None:
            raise failed[0].error


def status_code(status: Any) -> int:
    """ "201 Created" / "201" -> 201."""
    try:
        return int(str(status).strip().split(" ", 1)[0])
    except ValueError as exc:
        raise FhirResponseInvalid(f"bundle entry response status {status!r} is not HTTP") from exc


def entry_outcome(
    index: int,
    request_entry: Mapping[str, Any],
    response_entry: Mapping[str, Any],
    version: FhirVersion,
    error: FhirError | None = None,
) -> EntryResult:
    response = response_entry.get("response") or {}
    if not isinstance(response, Mapping):
        raise FhirResponseInvalid(f"bundle response entry {index} has no response")
    status = status_code(response.get("status"))
    raw = response_entry.get("resource")
    resource = None
    if isinstance(raw, Mapping) and raw.get("resourceType") != "OperationOutcome":
        resource = raw
    reference = version_id = None
    location = response.get("location")
    if isinstance(location, str) and location:
        loc = parse_location(location)
        reference, version_id = loc.reference, loc.version_id
    if resource is not None and isinstance(resource.get("id"), str) and resource["id"]:
        reference = reference or f"{resource.get('resourceType')}/{resource['id']}"
        version_id = version_id or json_version(resource)
    if reference is None and status < 300:
        reference = _request_reference(request_entry)
    version_id = version_id or parse_etag(response.get("etag"))
    full_url = request_entry.get("fullUrl")
    return EntryResult(
        index=index,
        status=status,
        full_url=full_url if isinstance(full_url, str) else None,
        reference=reference,
        version_id=version_id,
        resource_json=resource,
        error=error,
        fhir_version=version,
    )


def _request_reference(request_entry: Mapping[str, Any]) -> str | None:
    """A PUT/DELETE to Type/id names its resource even when the response says nothing."""
    url = str((request_entry.get("request") or {}).get("url", "")).split("?", 1)[0]
    parts = [p for p in url.split("/") if p]
    if len(parts) == 2 and is_resource_type(parts[0]) and is_resource_id(parts[1]):
        return f"{parts[0]}/{parts[1]}"
    return None


def response_entries(
    request: Mapping[str, Any], response: Mapping[str, Any], expected_type: str
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """Pair request entries with response entries (the spec keeps them in the same order)."""
    if response.get("resourceType") != "Bundle" or response.get("type") != expected_type:
        raise FhirResponseInvalid(
            f"expected a {expected_type} Bundle, got {response.get('resourceType')}"
            f"/{response.get('type')}"
        )
    sent = list(request.get("entry") or [])
    got = list(response.get("entry") or [])
    if len(sent) != len(got):
        raise FhirResponseInvalid(
            f"{expected_type} has {len(got)} entries for {len(sent)} requests"
        )
    return list(zip(sent, got, strict=True))


def result_from(
    entries: Sequence[EntryResult], cls: type[TransactionResult] = TransactionResult
) -> TransactionResult:
    refs = {e.full_url: e.reference for e in entries if e.full_url and e.reference}
    return cls(entries=tuple(entries), references=refs)


def stable_id(create: Create) -> str:
    """A deterministic FHIR id (the uuid of `create.full_url`) for servers that cannot search a
    type by identifier (so If-None-Exist fails there; sekmet: CareTeam, Goal): write the resource
    with `PUT Type/<stable_id>` instead; a replay then rewrites the same resource, never a second
    one. Prefer the conditional create where the server supports it: PUT overwrites later edits."""
    return create.full_url.removeprefix("urn:uuid:")
