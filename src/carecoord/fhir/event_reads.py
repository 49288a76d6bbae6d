"""One event's reads: what one of the event's searches already answered is not asked again.

- A read of a resource that a search returned (as a match or an `_include`, or in a batch of
  searches) is answered from that result.
- The same search (type and parameters) asked twice is answered from the first answer, so a
  handler may *prefetch* the searches it will make in one batch (`search_together`) and keep
  calling the helpers that search one at a time.
- What the event learnt is absent (a read that found nothing, or a `Type?_id=x` search with no
  match) is remembered too: `known()` hands both to the transaction, whose creates that go out
  as `PUT Type/<stable id>` then need no existence check of their own (`FhirClient.apply`).

The handlers of one event read a consistent-enough view anyway: their writes go out in one
transaction with If-Match on every update, so a resource read twice within milliseconds gains
nothing from the second request. The view lives for one run of the handlers (HandlerProcessor
makes a new one for each attempt, so a re-run after a version conflict reads afresh).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fhir.resources.R4B.resource import Resource

from carecoord.core.handler import FhirReader
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.models import to_json
from carecoord.fhir.operations import SearchParams

SearchKey = tuple[str, tuple[tuple[str, str], ...]]


def search_key(resource_type: str, params: SearchParams) -> SearchKey:
    pairs = params.items() if isinstance(params, Mapping) else params
    return resource_type, tuple((str(k), str(v)) for k, v in pairs)


def _probed_id(key: SearchKey) -> str | None:
    """The id of a `Type?_id=x` search (one id, nothing else that could narrow it)."""
    _, params = key
    if len(params) == 1 and params[0][0] == "_id" and "," not in params[0][1]:
        return params[0][1]
    return None


class EventReads:
    """A FhirReader over `fhir` that remembers its searches' answers and what they returned."""

    def __init__(self, fhir: FhirReader) -> None:
        self._fhir = fhir
        self._seen: dict[str, Resource] = {}
        self._absent: set[str] = set()
        self._answers: dict[SearchKey, list[Resource]] = {}

    def _remember(self, key: SearchKey, found: Sequence[Resource]) -> None:
        self._answers[key] = list(found)
        rtype = key[0]
        for resource in found:
            rid = getattr(resource, "id", None)
            if rid:
                self._seen[f"{resource.get_resource_type()}/{rid}"] = resource
        probed = _probed_id(key)
        if probed is not None and f"{rtype}/{probed}" not in self._seen:
            self._absent.add(f"{rtype}/{probed}")

    def search(self, resource_type: str, params: SearchParams) -> list[Resource]:
        key = search_key(resource_type, params)
        if key not in self._answers:
            self._remember(key, list(self._fhir.search(resource_type, params)))
        return list(self._answers[key])

    def read(self, resource_type: str, resource_id: str) -> Resource:
        key = f"{resource_type}/{resource_id}"
        if key in self._absent:
            raise FhirNotFound(f"{key} not found (earlier in this event)", status=404)
        if key not in self._seen:
            try:
                self._seen[key] = self._fhir.read(resource_type, resource_id)
            except (FhirNotFound, FhirGone):
                self._absent.add(key)
                raise
        return self._seen[key]

    def known(self) -> Mapping[str, dict[str, Any] | None]:
        """By "Type/id": the stored resource's JSON, or None where the event found it absent
        (JSON made only for the keys asked for)."""
        return _Known(self._seen, self._absent)

    def _search_batch(
        self, searches: Sequence[tuple[str, SearchParams]]
    ) -> list[list[Resource] | None]:
        """The underlying reader's batch, sent only for the searches not answered yet."""
        keys = [search_key(rtype, params) for rtype, params in searches]
        missing = [i for i, key in enumerate(keys) if key not in self._answers]
        if missing:
            sent = [searches[i] for i in missing]
            batch = getattr(self._fhir, "search_batch")  # noqa: B009 (only where it has one)
            answers: list[list[Resource] | None] = (
                batch(sent) if len(sent) > 1 else [list(self._fhir.search(*sent[0]))]
            )
            for i, found in zip(missing, answers, strict=True):
                if found is not None:
                    self._remember(keys[i], found)
        return [list(self._answers[key]) if key in self._answers else None for key in keys]

    def __getattr__(self, name: str) -> Any:
        # capability_statement, vread, ...: the underlying reader's. `search_batch` only where
        # the underlying reader has one (declares_batch looks for it), remembered like a search.
        attribute = getattr(self._fhir, name)
        return self._search_batch if name == "search_batch" else attribute


class _Known(Mapping[str, "dict[str, Any] | None"]):
    def __init__(self, seen: Mapping[str, Resource], absent: set[str]) -> None:
        self._seen = seen
        self._absent = absent

    def __getitem__(self, key: str) -> dict[str, Any] | None:
        if key in self._seen:
            return to_json(self._seen[key])
        if key in self._absent:
            return None
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._seen
        yield from (k for k in self._absent if k not in self._seen)

    def __len__(self) -> int:
        return len(self._seen) + len(self._absent - self._seen.keys())
