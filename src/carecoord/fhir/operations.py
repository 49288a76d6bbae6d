"""The FHIR operations, written once for both clients as generators ("sans-I/O").

An operation yields `Call`s and receives `Reply`s (or has the call's `FhirError` thrown into it);
its return value is the operation's result. `FhirClient` drives them with blocking I/O,
`AsyncFhirClient` with async I/O, so request building, response checking, paging, the
optimistic-concurrency loop and transaction results exist exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from typing import Any, TypeVar

from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import Create, FhirWrite
from carecoord.fhir.bundles import (
    BatchResult,
    TransactionResult,
    bundle_json,
    entry_outcome,
    if_match,
    is_resource_id,
    is_resource_type,
    parse_location,
    response_entries,
    result_from,
    retry_safe,
    status_code,
    version_of,
    writes_to_bundle,
)
from carecoord.fhir.errors import (
    FhirConflict,
    FhirGone,
    FhirInvalid,
    FhirNotFound,
    FhirResponseInvalid,
)
from carecoord.fhir.models import FhirVersion, parse_resource, to_json
from carecoord.fhir.transport import Call, Reply, error_for, issues_of, rebase_link

log = logging.getLogger("carecoord.fhir")

T = TypeVar("T")
Op = Generator[Call, Reply, T]
# What `update_with_retry` applies to the current version: the changed resource, None for none.
Mutate = Callable[[Resource], Resource | None]
# What an event's reads already learnt: "Type/id" -> the stored JSON, or None for absent.
Known = Mapping[str, Mapping[str, Any] | None]
SearchParams = Mapping[str, str] | Sequence[tuple[str, str]]

RETURN_REPRESENTATION = {"Prefer": "return=representation"}


def _path(resource_type: str, resource_id: str | None = None) -> str:
    """Type[/id], refusing anything that would change the path (ids come from events)."""
    if not is_resource_type(resource_type):
        raise FhirInvalid(f"not a FHIR resource type: {resource_type!r}")
    if resource_id is None:
        return resource_type
    if not is_resource_id(resource_id):
        raise FhirInvalid(f"not a FHIR id: {resource_id!r}", resource=resource_type)
    return f"{resource_type}/{resource_id}"


def _resource(reply: Reply, version: FhirVersion, expected_type: str | None) -> Resource:
    if reply.body is None:
        raise FhirResponseInvalid("FHIR server sent no resource", request=reply.request)
    resource = parse_resource(reply.body, version)
    if expected_type and resource.get_resource_type() != expected_type:
        raise FhirResponseInvalid(
            f"expected a {expected_type}, got a {resource.get_resource_type()}",
            request=reply.request,
        )
    return resource


def read(resource_type: str, resource_id: str, version: FhirVersion) -> Op[Resource]:
    reply = yield Call("GET", _path(resource_type, resource_id))
    return _resource(reply, version, resource_type)


def vread(
    resource_type: str, resource_id: str, version_id: str, version: FhirVersion
) -> Op[Resource]:
    if not is_resource_id(version_id):
        raise FhirInvalid(f"not a FHIR version id: {version_id!r}", resource=resource_type)
    reply = yield Call("GET", f"{_path(resource_type, resource_id)}/_history/{version_id}")
    return _resource(reply, version, resource_type)


def _written(reply: Reply, resource_type: str, version: FhirVersion) -> Op[Resource]:
    """The resource a create/update produced; read it back if the server sent none."""
    if reply.body is not None and reply.body.get("resourceType") == resource_type:
        return _resource(reply, version, resource_type)
    if not reply.location:
        raise FhirResponseInvalid(
            "FHIR server sent neither the resource nor its Location", request=reply.request
        )
    loc = parse_location(reply.location)
    if loc.version_id:
        return (yield from vread(loc.resource_type, loc.id, loc.version_id, version))
    return (yield from read(loc.resource_type, loc.id, version))


def create(resource: Resource, if_none_exist: str | None, version: FhirVersion) -> Op[Resource]:
    rtype = resource.get_resource_type()
    headers = dict(RETURN_REPRESENTATION)
    if if_none_exist:
        headers["If-None-Exist"] = if_none_exist
    # A plain POST is not idempotent: repeating it after it may have arrived could duplicate it.
    call = Call(
        "POST",
        _path(rtype),
        headers=headers,
        body=to_json(resource),
        retry_safe=bool(if_none_exist),
    )
    reply = yield call
    return (yield from _written(reply, rtype, version))


def update(resource: Resource, match: str | None, version: FhirVersion) -> Op[Resource]:
    rtype = resource.get_resource_type()
    if not resource.id:
        raise FhirInvalid(f"cannot update a {rtype} without an id")
    headers = dict(RETURN_REPRESENTATION)
    if match:
        headers["If-Match"] = if_match(match)
    reply = yield Call("PUT", _path(rtype, resource.id), headers=headers, body=to_json(resource))
    return (yield from _written(reply, rtype, version))


def delete(resource_type: str, resource_id: str) -> Op[None]:
    """Delete; a resource that is already gone (404/410) counts as deleted."""
    try:
        yield Call("DELETE", _path(resource_type, resource_id))
    except (FhirNotFound, FhirGone):
        return None
    return None


def update_with_retry(
    resource_type: str,
    resource_id: str,
    mutate: Mutate,
    attempts: int,
    version: FhirVersion,
) -> Op[Resource]:
    """Read, mutate, PUT with If-Match; on 409/412 read again and re-apply, `attempts` times.

    `mutate` gets a copy it may change in place (returning None) or replace (returning a
    resource). When the result equals what was read, nothing is written.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        current = yield from read(resource_type, resource_id, version)
        draft = current.model_copy(deep=True)
        changed = mutate(draft)
        wanted = draft if changed is None else changed
        if (wanted.get_resource_type(), wanted.id) != (resource_type, resource_id):
            raise ValueError(f"mutate must keep {resource_type}/{resource_id}")
        if wanted == current:
            return current
        try:
            return (yield from update(wanted, version_of(current), version))
        except FhirConflict:
            if attempt == attempts:
                raise
            log.info(
                "version conflict on %s/%s (attempt %d), re-reading",
                resource_type,
                resource_id,
                attempt,
            )
    raise AssertionError("unreachable")  # pragma: no cover


# --- search ------------------------------------------------------------------------------------


def search_call(resource_type: str, params: SearchParams) -> Call:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return Call("GET", _path(resource_type), params=[(str(k), str(v)) for k, v in pairs])


def fetch_page(call: Call, base_url: str) -> Op[tuple[dict[str, Any], Call | None]]:
    """One searchset page and the call for the next one (None on the last page)."""
    reply = yield call
    body = reply.body
    if body is None or body.get("resourceType") != "Bundle":
        raise FhirResponseInvalid("search did not return a Bundle", request=reply.request)
    next_call = None
    for link in body.get("link") or []:
        if isinstance(link, Mapping) and link.get("relation") == "next" and link.get("url"):
            next_call = Call("GET", rebase_link(str(link["url"]), base_url))
            break
    return body, next_call


def page_resources(body: Mapping[str, Any], version: FhirVersion) -> list[Resource]:
    """Matches and _include'd resources of a page, without search outcome entries (warnings)."""
    found: list[Resource] = []
    for entry in body.get("entry") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("resource"), Mapping):
            continue
        mode = (entry.get("search") or {}).get("mode")
        if mode == "outcome":
            codes = [i.code for i in issues_of(entry["resource"])]
            log.debug("search returned an outcome entry with issue codes %s", codes)
            continue
        found.append(parse_resource(dict(entry["resource"]), version))
    return found


def search(
    resource_type: str, params: SearchParams, base_url: str, version: FhirVersion
) -> Op[list[Resource]]:
    """Every page followed; a resource included on several pages is returned once."""
    call: Call | None = search_call(resource_type, params)
    results: list[Resource] = []
    seen: set[str] = set()
    visited: set[str] = set()
    while call is not None:
        body, call = yield from fetch_page(call, base_url)
        for resource in page_resources(body, version):
            key = f"{resource.get_resource_type()}/{resource.id}"
            if resource.id and key in seen:
                continue
            seen.add(key)
            results.append(resource)
        if call is not None:
            if call.url in visited:
                raise FhirResponseInvalid("search paging links loop", resource=resource_type)
            visited.add(call.url)
    return results


# --- transactions and batches ------------------------------------------------------------------


def _post_bundle(
    data: Mapping[str, Any], kind: str
) -> Op[list[tuple[Mapping[str, Any], Mapping[str, Any]]]]:
    """POST a transaction or batch Bundle: its request entries paired with the response's."""
    reply = yield Call(
        "POST", "", headers=RETURN_REPRESENTATION, body=data, retry_safe=retry_safe(data)
    )
    if reply.body is None:
        raise FhirResponseInvalid(f"{kind} returned no Bundle", request=reply.request)
    return response_entries(data, reply.body, f"{kind}-response")


def transaction(
    bundle: Resource | Mapping[str, Any], version: FhirVersion
) -> Op[TransactionResult]:
    data = bundle_json(bundle, "transaction")
    if not data.get("entry"):
        return TransactionResult()
    pairs = yield from _post_bundle(data, "transaction")
    return result_from(
        [entry_outcome(i, req, resp, version) for i, (req, resp) in enumerate(pairs)]
    )


def batch(bundle: Resource | Mapping[str, Any], version: FhirVersion) -> Op[BatchResult]:
    data = bundle_json(bundle, "batch")
    if not data.get("entry"):
        return BatchResult()
    pairs = yield from _post_bundle(data, "batch")
    entries = []
    for i, (req, resp) in enumerate(pairs):
        response = resp.get("response") or {}
        status = status_code(response.get("status"))
        error = None
        if status >= 400:
            request = req.get("request") or {}
            label = f"{request.get('method', '?')} {str(request.get('url', '')).split('?', 1)[0]}"
            error = error_for(status, label, issues_of(response.get("outcome")))
        entries.append(entry_outcome(i, req, resp, version, error))
    result = result_from(entries, BatchResult)
    assert isinstance(result, BatchResult)
    return result


def apply(
    writes: Sequence[FhirWrite],
    version: FhirVersion,
    put_types: Collection[str] = frozenset(),
    known: Known | None = None,
) -> Op[TransactionResult]:
    """A handler's writes as ONE transaction (nothing is sent for no writes). A create that goes
    out as PUT (see `writes_to_bundle`) first reads what is stored under its id, unless `known`
    ("Type/id" -> stored JSON, or None for absent: what the event's reads already learnt) says."""
    if not writes:
        return TransactionResult()
    existing: dict[str, Mapping[str, Any]] = {}
    for write in writes:  # creates that go out as PUT: is the resource there already?
        rtype = write.resource.get_resource_type()
        if isinstance(write, Create) and rtype in put_types:
            rid = write.full_url.removeprefix("urn:uuid:")
            if known is not None and f"{rtype}/{rid}" in known:
                stored = known[f"{rtype}/{rid}"]
                if stored is not None:
                    existing[write.full_url] = stored
                continue
            try:
                reply = yield Call("GET", _path(rtype, rid))
            except (FhirNotFound, FhirGone):
                continue
            if reply.body is not None:
                existing[write.full_url] = reply.body
    return (yield from transaction(writes_to_bundle(writes, put_types, existing), version))


def capability_statement() -> Op[dict[str, Any]]:
    """The CapabilityStatement as JSON (clients cache it: it can be hundreds of KB)."""
    reply = yield Call("GET", "metadata")
    if reply.body is None or reply.body.get("resourceType") != "CapabilityStatement":
        raise FhirResponseInvalid("metadata is not a CapabilityStatement", request=reply.request)
    return reply.body


def ping_call() -> Call:
    """The cheap liveness request: the summary of the CapabilityStatement."""
    return Call("GET", "metadata", params=[("_summary", "true")])
