"""What a server declares it can search, read from its (cached) CapabilityStatement.

Handlers get a read-only `FhirReader`; the real clients also have `capability_statement()`
(fetched once per client). A reader without one (a test fake, another implementation) declares
nothing, so callers take their portable path: separate searches instead of `_revinclude`.

A server whose `/metadata` answers, but not with a CapabilityStatement (a 404, an HTML page, any
other JSON), has unknown capabilities: that is logged ONCE per client as a WARNING, the client is
not asked again, and every caller takes the conservative plan (no batch, no `_include`/
`_revinclude`, writes by the spec's conditional create). The server is not down for it (R4
makes the statement a SHALL, http.html#capabilities, but proxies and gateways break it). A 401
or 403 is not "unknown": the credentials are refused, and that is raised like an outage is.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from carecoord.fhir.errors import FhirError, FhirForbidden, FhirUnauthorized

log = logging.getLogger(__name__)

# Clients whose server answered /metadata with no CapabilityStatement (weak: a closed client
# leaves). Keyed by the client that fetches, so an event's reads (which forward
# capability_statement to it) share the answer.
_UNKNOWN: weakref.WeakSet[object] = weakref.WeakSet()
_UNKNOWN_LOCK = threading.Lock()


def statement_of(fhir: object) -> Mapping[str, Any] | None:
    """The reader's CapabilityStatement JSON, or None when it has none to give (capabilities
    unknown). An unavailable server raises (an outage, handled as such by the runtime)."""
    get = getattr(fhir, "capability_statement", None)
    if not callable(get):
        return None
    owner = getattr(get, "__self__", fhir)
    if _is_unknown(owner):
        return None
    try:
        statement = get()
    except FhirError as exc:
        # Down, or refusing our credentials (a setting to fix, not a server to work around):
        # the caller fails as any request would; the readiness probe keeps the service waiting.
        if exc.unavailable or isinstance(exc, FhirUnauthorized | FhirForbidden):
            raise
        _mark_unknown(owner, type(exc).__name__)
        return None
    return statement if isinstance(statement, Mapping) else None


def _is_unknown(owner: object) -> bool:
    # A read without the lock: one set lookup (the lock guards the writes; asked per capability).
    try:
        return owner in _UNKNOWN
    except TypeError:  # not weak-referenceable: asked every time, as before
        return False


def _mark_unknown(owner: object, error: str) -> None:
    try:
        with _UNKNOWN_LOCK:
            if owner in _UNKNOWN:
                return
            _UNKNOWN.add(owner)
    except TypeError:
        return
    log.warning(
        "FHIR server has no valid CapabilityStatement: capabilities unknown, using the "
        "conservative request plan (no batch, _include or _revinclude)",
        extra={"dependency": "fhir", "error": error},
    )


def declares_revinclude(fhir: object, resource_type: str, *specs: str) -> bool:
    """Does the server declare every `_revinclude` in `specs` (e.g. "Communication:based-on") on
    searches of `resource_type`? Only then may an absent included resource mean "none"."""
    return _declares(fhir, resource_type, "searchRevInclude", specs)


def declares_include(fhir: object, resource_type: str, *specs: str) -> bool:
    """Does the server declare every `_include` in `specs` (e.g. "CarePlan:care-team") on
    searches of `resource_type`?"""
    return _declares(fhir, resource_type, "searchInclude", specs)


def _resource(fhir: object, resource_type: str) -> Mapping[str, Any] | None:
    """The CapabilityStatement's rest.resource entry for `resource_type` (None: unknown)."""
    statement = statement_of(fhir)
    if statement is None:
        return None
    return _by_type(statement).get(resource_type)


# statement id -> (the statement, its rest.resource entries by type): a handler asks a dozen
# capabilities per event and a server lists 150 types; the statement is kept so its id stays
# its own. A few entries (one per client); bounded all the same.
_INDEXES: dict[int, tuple[Mapping[str, Any], dict[str, Mapping[str, Any]]]] = {}
_MAX_INDEXES = 64


def _by_type(statement: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    known = _INDEXES.get(id(statement))
    if known is not None and known[0] is statement:
        return known[1]
    index: dict[str, Mapping[str, Any]] = {}
    for rest in statement.get("rest") or []:
        for res in rest.get("resource") or []:
            if isinstance(res, Mapping) and isinstance(res.get("type"), str):
                index.setdefault(res["type"], res)  # the first entry wins, as the scan did
    if len(_INDEXES) >= _MAX_INDEXES:
        _INDEXES.clear()
    _INDEXES[id(statement)] = (statement, index)
    return index


def _declares(fhir: object, resource_type: str, element: str, specs: tuple[str, ...]) -> bool:
    res = _resource(fhir, resource_type)
    declared = {str(s) for s in (res or {}).get(element) or []}
    return res is not None and all(spec in declared for spec in specs)


def declares_search_param(fhir: object, resource_type: str, name: str) -> bool:
    """Does the server declare search parameter `name` on `resource_type`? A server that does not
    may ignore it and answer with every resource of the type (all pages of them), so a search
    whose result size must not grow with the server is made only where this is True."""
    params = (_resource(fhir, resource_type) or {}).get("searchParam") or []
    return any(isinstance(q, Mapping) and q.get("name") == name for q in params)
