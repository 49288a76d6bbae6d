"""What is produced after a transaction (outbox.emits_after_apply): the transaction's own
answers say whether the event was applied before, and the record is looked up only then."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.basic import Basic

from carecoord.caremodel.outbox import add_outbox, emits_after_apply
from carecoord.core.effects import Effects, Emit
from carecoord.core.envelope import new_event
from carecoord.handlers.care.model import build

EVENT = new_event("carecoord.time.logged", "p1", {}, id="evt-1")
AT = datetime(2025, 3, 1, 12, tzinfo=UTC)


@dataclass
class Entry:
    status: int
    resource: Any = None


@dataclass
class Result:
    entries: Any


class Lookups:
    """Answers the outbox record search with `stored` (a Basic) and counts the lookups."""

    def __init__(self, stored: Any = None) -> None:
        self.stored = stored
        self.searches = 0

    def read(self, resource_type: str, resource_id: str) -> Any:
        raise AssertionError("never read")

    def search(self, resource_type: str, params: Any) -> list[Any]:
        self.searches += 1
        return [self.stored] if self.stored is not None else []


def emitting(*ids: str, other_create: bool = False) -> Effects:
    fx = Effects()
    if other_create:
        fx.create(build("Basic", {"code": {"text": "x"}}), "urn:x", "1")
    for i in ids:
        fx.emit("carecoord.x", "Patient/p1", {"n": i}, i)
    add_outbox(fx, EVENT, AT)
    return fx


def record(*ids: str) -> Basic:
    """The outbox record the first application stored (with its emits)."""
    first = emitting(*ids)
    resource: Basic = first.writes[-1].resource  # type: ignore[union-attr,assignment]
    return resource


def emitted(result: list[Emit]) -> list[str]:
    return [e.id for e in result]


def test_a_first_application_emits_its_own_without_a_lookup() -> None:
    fhir = Lookups(record("old"))
    fx = emitting("a", "b", other_create=True)
    got = emits_after_apply(fhir, EVENT, fx, Result([Entry(201), Entry(201)]))
    assert emitted(got) == ["a", "b"] and fhir.searches == 0


def test_a_replay_re_emits_what_the_record_in_the_answer_holds() -> None:
    fhir = Lookups()
    fx = emitting("a", other_create=True)
    got = emits_after_apply(fhir, EVENT, fx, Result([Entry(200), Entry(200, record("old"))]))
    assert emitted(got) == ["old", "a"] and fhir.searches == 0


def test_a_replay_without_the_record_in_the_answer_looks_it_up() -> None:
    fhir = Lookups(record("old"))
    fx = emitting("a")
    got = emits_after_apply(fhir, EVENT, fx, Result([Entry(200)]))
    assert emitted(got) == ["old", "a"] and fhir.searches == 1


def test_writes_without_emits_look_up_unless_every_create_was_new() -> None:
    fx = Effects()
    fx.create(build("Basic", {"code": {"text": "x"}}), "urn:x", "1")
    fx.create(build("Basic", {"code": {"text": "y"}}), "urn:x", "2")
    fhir = Lookups(record("old"))
    assert emitted(emits_after_apply(fhir, EVENT, fx, Result([Entry(201), Entry(201)]))) == []
    assert fhir.searches == 0
    got = emits_after_apply(fhir, EVENT, fx, Result([Entry(201), Entry(200)]))
    assert emitted(got) == ["old"] and fhir.searches == 1


def test_an_answer_that_cannot_be_read_looks_up() -> None:
    fhir = Lookups(record("old"))
    fx = emitting("a")
    for result in (object(), Result(None), Result([]), Result([Entry(201), Entry(201)])):
        assert emitted(emits_after_apply(fhir, EVENT, fx, result)) == ["old", "a"]
    assert fhir.searches == 4


def test_updates_only_look_up() -> None:
    fhir = Lookups()
    fx = Effects()
    fx.update(build("Basic", {"id": "b1", "code": {"text": "x"}}), "1")
    assert emitted(emits_after_apply(fhir, EVENT, fx, Result([Entry(200)]))) == []
    assert fhir.searches == 1
