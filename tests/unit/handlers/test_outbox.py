"""The transactional outbox: a redelivered event re-emits what its first processing decided,
even though its idempotent handlers would now decide to emit nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.basic import Basic
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from carecoord import Create, Effects, HandlerContext, HandlerSpec, new_event
from carecoord.core.effects import FhirWrite
from carecoord.handlers.processing import HandlerProcessor

SYSTEM = "https://carecoord.dev/fhir/identifier/test-task"


class StoreFhir:
    """Applies conditional creates into a dict. Searches like a real server: `identifier` is
    matched, any other parameter is ignored, and so is `identifier` on the resource types in
    `blind_to_identifier` (a server that does not index them)."""

    def __init__(self, *, blind_to_identifier: frozenset[str] = frozenset()) -> None:
        self.stored: dict[tuple[str, str], Resource] = {}
        self.transactions: list[list[FhirWrite]] = []
        self.blind_to_identifier = blind_to_identifier

    def read(self, resource_type: str, resource_id: str) -> Resource:
        raise AssertionError("not used")

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        return [
            resource
            for key, resource in self.stored.items()
            if resource.get_resource_type() == resource_type
            and all(self._matches(resource_type, key, k, v) for k, v in pairs)
        ]

    def _matches(self, resource_type: str, key: tuple[str, str], param: str, value: str) -> bool:
        if param == "identifier" and resource_type not in self.blind_to_identifier:
            system, _, val = value.partition("|")
            return key == (system, val)
        return True  # unsupported: ignored, as real FHIR servers do

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


def test_a_server_ignoring_the_identifier_search_does_not_replay_another_events_emits() -> None:
    """The outbox lookup must check the identifier itself: such a server returns every outbox
    record, and taking another event's record would skip this event's handlers."""
    fhir = StoreFhir(blind_to_identifier=frozenset({"Basic"}))
    processor = HandlerProcessor([SPEC], fhir)
    first = processor.process(new_event("test.happened", "p1", {}, id="ev-a"))
    second = processor.process(new_event("test.happened", "p1", {}, id="ev-b"))
    assert [e.id for e in first] == ["created:ev-a"]
    assert [e.id for e in second] == ["created:ev-b"], "ev-b's handlers were skipped"
    assert len(fhir.transactions) == 2
    again = processor.process(new_event("test.happened", "p1", {}, id="ev-b"))
    assert [e.id for e in again] == ["created:ev-b"] and len(fhir.transactions) == 2


def test_the_outbox_record_round_trips_every_emit_field_and_its_identifier() -> None:
    from datetime import date

    def announce_dated(event: Any, ctx: HandlerContext) -> Effects:
        effects = create_once_and_announce(event, ctx)
        effects.emits.clear()
        effects.emit("test.dated", event.subject, {"on": date(2025, 3, 31)}, id=f"d:{event.id}")
        return effects

    fhir = StoreFhir()
    processor = HandlerProcessor([HandlerSpec("d", ("test.happened",), announce_dated)], fhir)
    event = new_event("test.happened", "p1", {}, id="ev-3")
    first = processor.process(event)
    again = processor.process(event)
    assert [(e.type, e.subject, e.id) for e in again] == [("test.dated", "Patient/p1", "d:ev-3")]
    assert again[0].data == {"on": "2025-03-31"} and first[0].type == again[0].type
    [outbox] = [r for r in fhir.stored.values() if isinstance(r, Basic)]
    assert outbox.identifier is not None and outbox.identifier[0].use == "official"


def test_an_event_without_a_patient_has_an_outbox_record_without_subject() -> None:
    fhir = StoreFhir()
    event = new_event("test.happened", "p1", {}, id="ev-4").model_copy(update={"subject": None})
    HandlerProcessor([SPEC], fhir).process(event)
    [outbox] = [r for r in fhir.stored.values() if isinstance(r, Basic)]
    assert outbox.subject is None


class AnsweringFhir(StoreFhir):
    """Like StoreFhir, but `apply` answers as a server does: 201 for a new conditional create,
    200 with the stored representation for one that matched; counts Basic (outbox) searches."""

    def __init__(self) -> None:
        super().__init__()
        self.outbox_searches = 0

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        if resource_type == "Basic":
            self.outbox_searches += 1
        return super().search(resource_type, params)

    def apply(self, writes: Sequence[FhirWrite]) -> object:
        from carecoord.fhir.bundles import EntryResult, result_from
        from carecoord.fhir.models import to_json

        self.transactions.append(list(writes))
        entries = []
        for i, w in enumerate(writes):
            assert isinstance(w, Create)
            key = (w.identifier_system, w.identifier_value)
            status = 200 if key in self.stored else 201
            stored = self.stored.setdefault(key, w.resource)
            entries.append(EntryResult(i, status, w.full_url, resource_json=to_json(stored)))
        return result_from(entries)


def rerun_always(event: Any, ctx: HandlerContext) -> Effects:
    """Writes and emits the same every time (its create is conditional): a replay's record
    create answers 200."""
    effects = Effects()
    task = Task.model_validate({"resourceType": "Task", "status": "ready", "intent": "order"})
    effects.create(task, SYSTEM, event.id)
    effects.emit("test.created", event.subject, {"n": len(ctx.fhir.search("Task", {}))}, id="x")
    return effects


def test_the_first_application_makes_no_outbox_lookup() -> None:
    fhir = AnsweringFhir()
    emitted = HandlerProcessor([SPEC], fhir).process(new_event("test.happened", "p1", {}, id="e"))
    assert [e.id for e in emitted] == ["created:e"] and fhir.outbox_searches == 0


def test_a_replay_whose_record_create_answers_200_re_emits_the_stored_events_unsearched() -> None:
    fhir = AnsweringFhir()
    processor = HandlerProcessor([HandlerSpec("r", ("test.happened",), rerun_always)], fhir)
    event = new_event("test.happened", "p1", {}, id="e")
    first = processor.process(event)
    again = processor.process(event)  # its handler now says n=1: the stored n=0 is announced
    assert [dict(e.data) for e in first] == [dict(e.data) for e in again] == [{"n": 0}]
    assert fhir.outbox_searches == 0


def test_a_replay_that_emits_nothing_now_but_re_creates_looks_the_record_up() -> None:
    def once(event: Any, ctx: HandlerContext) -> Effects:
        effects = create_once_and_announce(event, ctx)
        if not effects.writes:  # already there: re-create it (200), decide nothing new
            task = Task.model_validate(
                {"resourceType": "Task", "status": "ready", "intent": "order"}
            )
            effects.create(task, SYSTEM, event.id)
        return effects

    fhir = AnsweringFhir()
    processor = HandlerProcessor([HandlerSpec("o", ("test.happened",), once)], fhir)
    event = new_event("test.happened", "p1", {}, id="e")
    assert [e.id for e in processor.process(event)] == ["created:e"]
    assert [e.id for e in processor.process(event)] == ["created:e"]
    assert fhir.outbox_searches == 1
