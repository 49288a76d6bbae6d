"""The README's extension example works as documented: discovered by module name, configured by
name, pure (effects only), replay-safe, and bad data is a MalformedEvent (dead letter)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B.resource import Resource

from carecoord import Create, HandlerContext, MalformedEvent, new_event
from carecoord.handlers.loader import load_handlers

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "custom_handler"


class NoFhir:
    def read(self, resource_type: str, resource_id: str) -> Resource:
        raise AssertionError("the example handler reads nothing")

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        raise AssertionError("the example handler searches nothing")


@pytest.fixture
def example_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE_DIR))
    yield
    sys.path.remove(str(EXAMPLE_DIR))
    sys.modules.pop("acme_tcm", None)


def test_example_handler_is_discovered_configured_and_replay_safe(example_on_path: None) -> None:
    table = load_handlers(
        enabled=["acme-tcm"], extra_modules=["acme_tcm"], config={"acme-tcm": {"due_days": "3"}}
    )
    [spec] = table.for_type("acme.patient.discharged")
    ctx = HandlerContext(
        fhir=NoFhir(),
        config=table.configs["acme-tcm"],
        clock=lambda: datetime(2026, 11, 2, tzinfo=UTC),
    )
    event = new_event(
        "acme.patient.discharged", "p-77", {"discharged_at": "2026-11-01T18:00:00Z"}, id="dis-1"
    )
    first, again = spec.handle(event, ctx), spec.handle(event, ctx)
    [create] = first.writes
    assert isinstance(create, Create)
    task = create.resource
    assert task.restriction.period.end.isoformat().startswith("2026-11-04")  # due_days from config
    assert task.for_fhir.reference == "Patient/p-77"
    assert [w.if_none_exist for w in again.writes] == [create.if_none_exist]
    assert [e.id for e in first.emits] == ["acme:tcm-started:dis-1"]


def test_example_handler_rejects_bad_data(example_on_path: None) -> None:
    table = load_handlers(enabled=["acme-tcm"], extra_modules=["acme_tcm"])
    [spec] = table.for_type("acme.patient.discharged")
    ctx = HandlerContext(
        fhir=NoFhir(), config=table.configs["acme-tcm"], clock=lambda: datetime.now(UTC)
    )
    with pytest.raises(MalformedEvent, match="discharged_at"):
        spec.handle(new_event("acme.patient.discharged", "p-77", {"when": "yesterday"}), ctx)
