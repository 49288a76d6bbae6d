"""The transactional outbox: a redelivered event re-emits what its first processing decided,
even though its idempotent handlers would now decide to emit nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.basic import Basic
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from carecoord import Create, Effects, HandlerContext, HandlerSpec, new_event
from carecoord.events.processing import HandlerProcessor
from carecoord.handlers.base import FhirWrite

SYSTEM = "https://carecoord.dev/fhir/identifier/test-task"


class StoreFhir:
    """Applies conditional creates into a dict; searches by identifier."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], Resource] = {}
        self.transactions: list[list[FhirWrite]] = []

    def read(self, resource_type: str, resource_id: str) -> Resource:
        raise AssertionError("not used")

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        ident = dict(params).get("identifier", "")
        system, _, value = ident.partition("|")
        found = self.stored.get((system, value))
        return [found] if found is not None and found.get_resource_type() == resource_type else []

    def apply(self, writes: Sequence[FhirWrite]) -> object:
        self.transactions.append(list(writes))
        for w in writes:
            assert isinstance(w, Create)
            self.stored.setdefault((w.identifier_system, w.identifier_value), w.resource)
        return None


def create_once_and_announce(event: Any, ctx: HandlerContext) -> Effects:
    """Idempotent like the built-in handlers: announces only what it newly creates."""
    effects = Effects()
    if ctx.fhir.search("Task", {"identifier": f"{SYSTEM}|{event.id}"}):
        return effects
    task = Task.model_validate({"resourceType": "Task", "status": "ready", "intent": "order"})
    effects.create(task, SYSTEM, event.id)
    effects.emit("test.created", event.subject, {"n": 1}, id=f"created:{event.id}")
    return effects


SPEC = HandlerSpec("t", ("test.happened",), create_once_and_announce)


def test_redelivery_after_a_crash_before_producing_re_emits_the_same_events() -> None:
    fhir = StoreFhir()
    processor = HandlerProcessor([SPEC], fhir)
    event = new_event("test.happened", "p1", {}, id="ev-1")
    first = processor.process(event)  # effects durable; suppose the process dies here
    again = processor.process(event)  # redelivered
    assert [e.id for e in first] == [e.id for e in again] == ["created:ev-1"]
    assert again[0].data == {"n": 1} and again[0].subject == "Patient/p1"
    assert len(fhir.transactions) == 1, "a redelivery must not apply anything again"
    [outbox] = [r for r in fhir.stored.values() if isinstance(r, Basic)]
    assert outbox.subject is not None and outbox.subject.reference == "Patient/p1"


def test_events_without_emits_leave_no_outbox_record() -> None:
    def write_only(event: Any, ctx: HandlerContext) -> Effects:
        effects = create_once_and_announce(event, ctx)
        effects.emits.clear()
        return effects

    fhir = StoreFhir()
    HandlerProcessor([HandlerSpec("w", ("test.happened",), write_only)], fhir).process(
        new_event("test.happened", "p1", {}, id="ev-2")
    )
    assert [type(r).__name__ for r in fhir.stored.values()] == ["Task"]
