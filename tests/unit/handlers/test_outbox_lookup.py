"""Finding an event's outbox record again: by source and id, on strict servers, and among other
extensions a server or tool may add to the record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.basic import Basic
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task
from test_outbox import StoreFhir

from carecoord import Effects, HandlerContext, HandlerSpec, new_event
from carecoord.caremodel.identifiers import identifier_system, identifier_value
from carecoord.caremodel.outbox import KIND
from carecoord.fhir.errors import FhirInvalid
from carecoord.fhir.models import to_json
from carecoord.handlers.processing import HandlerProcessor

SYSTEM = "https://carecoord.dev/fhir/identifier/test-task"
OUTBOX = identifier_system(KIND)


def announce_once(event: Any, ctx: HandlerContext) -> Effects:
    """Idempotent per (source, id): creates one Task and announces it, once."""
    effects = Effects()
    key = identifier_value(event.source, event.id)
    if ctx.fhir.search("Task", {"identifier": f"{SYSTEM}|{key}"}):
        return effects
    task = Task.model_validate({"resourceType": "Task", "status": "ready", "intent": "order"})
    effects.create(task, SYSTEM, key)
    effects.emit("test.created", event.subject, {"from": event.source}, id=f"c:{key}")
    return effects


SPEC = HandlerSpec("t", ("test.happened",), announce_once)


class StrictFhir(StoreFhir):
    """A server with strict search handling: an unknown search parameter is an error (400)."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        unknown = [k for k, _ in pairs if k != "identifier"]
        if unknown:
            raise FhirInvalid(f"unknown search parameter {unknown[0]}", status=400)
        return super().search(resource_type, params)


def outbox_records(fhir: StoreFhir) -> list[Basic]:
    return [r for r in fhir.stored.values() if isinstance(r, Basic)]


def test_the_record_of_an_event_from_carecoord_is_found_by_its_plain_id() -> None:
    fhir = StoreFhir()
    HandlerProcessor([SPEC], fhir).process(new_event("test.happened", "p1", {}, id="ev-1"))
    assert fhir.search("Basic", {"identifier": f"{OUTBOX}|{identifier_value('ev-1')}"})


def test_events_of_two_sources_with_the_same_id_keep_their_own_emits() -> None:
    fhir = StoreFhir()
    processor = HandlerProcessor([SPEC], fhir)
    a = new_event("test.happened", "p1", {}, id="42", source="urn:clinic-a")
    b = new_event("test.happened", "p1", {}, id="42", source="urn:clinic-b")
    first, second = processor.process(a), processor.process(b)
    assert [e.data for e in first] == [{"from": "urn:clinic-a"}]
    assert [e.data for e in second] == [{"from": "urn:clinic-b"}], "b replayed a's emits"
    assert len(outbox_records(fhir)) == 2
    assert fhir.search("Basic", {"identifier": f"{OUTBOX}|{identifier_value('urn:clinic-b|42')}"})
    assert [e.data for e in processor.process(b)] == [{"from": "urn:clinic-b"}]  # redelivered


def test_the_record_is_found_on_a_server_with_strict_search_handling() -> None:
    fhir = StrictFhir()
    processor = HandlerProcessor([SPEC], fhir)
    event = new_event("test.happened", "p1", {}, id="ev-2")
    first = processor.process(event)
    again = processor.process(event)
    assert [e.id for e in again] == [e.id for e in first] and len(fhir.transactions) == 1


def test_other_extensions_on_the_record_are_not_taken_for_the_emits() -> None:
    fhir = StoreFhir()
    processor = HandlerProcessor([SPEC], fhir)
    event = new_event("test.happened", "p1", {}, id="ev-3")
    first = processor.process(event)
    ((key, record),) = [(k, r) for k, r in fhir.stored.items() if isinstance(r, Basic)]
    data = to_json(record)
    note = {"url": "https://example.org/fhir/StructureDefinition/note", "valueString": "audited"}
    empty = {"url": "https://example.org/fhir/StructureDefinition/flag", "valueBoolean": True}
    data["extension"] = [note, empty, *data["extension"]]
    fhir.stored[key] = Basic.model_validate(data)
    again = processor.process(event)
    assert [(e.type, e.id, e.data) for e in again] == [(e.type, e.id, e.data) for e in first]
    assert len(fhir.transactions) == 1
