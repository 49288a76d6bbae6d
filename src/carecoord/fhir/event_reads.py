"""One event's reads: a read of a resource that one of the event's searches already returned (as a
match or an `_include`, or in a batch of searches) is answered from that result instead of another
round trip.

The handlers of one event read a consistent-enough view anyway: their writes go out in one
transaction with If-Match on every update, so a resource read twice within milliseconds gains
nothing from the second request. The view lives for one run of the handlers (HandlerProcessor
makes a new one for each attempt, so a re-run after a version conflict reads afresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.handler import FhirReader
from carecoord.fhir.operations import SearchParams


class EventReads:
    """A FhirReader over `fhir` that remembers what its searches returned, by "Type/id"."""

    def __init__(self, fhir: FhirReader) -> None:
        self._fhir = fhir
        self._seen: dict[str, Resource] = {}

    def _remember(self, found: Sequence[Resource]) -> None:
        for resource in found:
            rid = getattr(resource, "id", None)
            if rid:
                self._seen[f"{resource.get_resource_type()}/{rid}"] = resource

    def search(self, resource_type: str, params: SearchParams) -> list[Resource]:
        found = list(self._fhir.search(resource_type, params))
        self._remember(found)
        return found

    def read(self, resource_type: str, resource_id: str) -> Resource:
        key = f"{resource_type}/{resource_id}"
        if key not in self._seen:
            self._seen[key] = self._fhir.read(resource_type, resource_id)
        return self._seen[key]

    def __getattr__(self, name: str) -> Any:
        # capability_statement, vread, ...: the underlying reader's; a batch of searches is
        # remembered like a search.
        attribute = getattr(self._fhir, name)
        if name != "search_batch":
            return attribute

        def search_batch(searches: Any) -> list[list[Resource] | None]:
            answers: list[list[Resource] | None] = attribute(searches)
            for found in answers:
                if found:
                    self._remember(found)
            return answers

        return search_batch
