"""Several searches in ONE round trip: a batch Bundle of GET entries, where the server can.

    charge_items, plans = search_together(fhir, [("ChargeItem", [...]), ("CarePlan", [...])])

A handler's `FhirReader` is read-only; the real clients also have `search_batch()` (a batch of
searches only: nothing is written). The searches go as one batch only when the reader has it and
the server's CapabilityStatement declares the `batch` interaction; otherwise (a test fake, another
implementation, a server without batch) each is a plain `search`. A batch entry that failed, or
whose result has a next page, is searched again on its own (every page followed), so the answer
is the same either way: only the round trips differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import Create
from carecoord.core.handler import FhirReader
from carecoord.fhir.bundles import identifier_blind_types, response_entries, stable_id, status_code
from carecoord.fhir.capabilities import statement_of
from carecoord.fhir.errors import FhirResponseInvalid
from carecoord.fhir.models import FhirVersion
from carecoord.fhir.operations import Op, page_resources
from carecoord.fhir.transport import Call

Search = tuple[str, Sequence[tuple[str, str]]]


def declares_batch(fhir: object) -> bool:
    """Can `fhir` send a batch of searches, and does its server declare `batch`?"""
    if not callable(getattr(fhir, "search_batch", None)):
        return False
    statement = statement_of(fhir)
    if statement is None:
        return False
    for rest in statement.get("rest") or []:
        if not isinstance(rest, Mapping):
            continue
        codes = {
            str(i.get("code")) for i in rest.get("interaction") or [] if isinstance(i, Mapping)
        }
        if "batch" in codes:
            return True
    return False


def search_url(resource_type: str, params: Sequence[tuple[str, str]]) -> str:
    """The relative URL of a search, as a batch entry's request.url."""
    query = urlencode([(str(k), str(v)) for k, v in params])
    return f"{resource_type}?{query}" if query else resource_type


def search_batch(
    searches: Sequence[Search], version: FhirVersion
) -> Op[list[list[Resource] | None]]:
    """ONE batch of GET searches; per search its resources (matches and includes, search outcomes
    dropped), or None where the entry failed or has more pages (the caller searches again)."""
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": search_url(rtype, params)}}
            for rtype, params in searches
        ],
    }
    reply = yield Call("POST", "", body=bundle, retry_safe=True)  # reads only
    if reply.body is None:
        raise FhirResponseInvalid("batch returned no Bundle", request=reply.request)
    out: list[list[Resource] | None] = []
    for _, got in response_entries(bundle, reply.body, "batch-response"):
        out.append(_searchset(got, version))
    return out


def _searchset(entry: Mapping[str, Any], version: FhirVersion) -> list[Resource] | None:
    response = entry.get("response") or {}
    if not isinstance(response, Mapping) or not 200 <= status_code(response.get("status")) < 300:
        return None
    body = entry.get("resource")
    if not isinstance(body, Mapping) or body.get("resourceType") != "Bundle":
        return None
    if body.get("type") != "searchset":
        return None
    links = [link for link in body.get("link") or [] if isinstance(link, Mapping)]
    if any(link.get("relation") == "next" for link in links):
        return None
    return page_resources(body, version)


def search_together(fhir: FhirReader, searches: Sequence[Search]) -> list[list[Resource]]:
    """Each search's resources, in the order given: ONE batch where the server declares it (see
    the module docstring), else one search each. Callers re-filter, as for any search: a server
    may ignore a parameter it does not know."""
    if len(searches) < 2 or not declares_batch(fhir):
        return [list(fhir.search(rtype, list(params))) for rtype, params in searches]
    answers: list[list[Resource] | None] = getattr(fhir, "search_batch")(searches)  # noqa: B009
    return [
        found if found is not None else list(fhir.search(rtype, list(params)))
        for found, (rtype, params) in zip(answers, searches, strict=True)
    ]


def existence_probe(fhir: object, create: Create) -> Search | None:
    """`Type?_id=<stable id>` for a create the client will write as `PUT Type/<stable id>` (its
    server cannot search the type by identifier; see `FhirClient.apply`), else None. Searched
    in a handler's batch, its answer spares the transaction its own existence read: the event's
    reads remember what that search found absent (carecoord.fhir.event_reads)."""
    statement = statement_of(fhir)
    rtype = create.resource.get_resource_type()
    if statement is None or rtype not in identifier_blind_types(statement):
        return None
    return (rtype, [("_id", stable_id(create))])
