"""The README's extension example works as documented: discovered by module name, configured by
name, pure (effects only), replay-safe, and bad data is a MalformedEvent (dead letter). It is
tested the way a team would test its own handler: with `carecoord.testing.run_handler`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carecoord import ConfigError, MalformedEvent
from carecoord.handlers.loader import load_handlers
from carecoord.testing import InMemoryFhir, events, run_handler

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "custom_handler"
NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture
def example_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE_DIR))
    yield
    sys.path.remove(str(EXAMPLE_DIR))
    sys.modules.pop("acme_tcm", None)


def test_example_handler_is_discovered_by_module_name(example_on_path: None) -> None:
    table = load_handlers(
        enabled=["acme-tcm"], extra_modules=["acme_tcm"], config={"acme-tcm": {"due_days": "3"}}
    )
    assert [s.name for s in table.for_type("acme.patient.discharged")] == ["acme-tcm"]
    assert table.configs["acme-tcm"]["due_days"] == 3


def test_example_handler_is_configured_and_replay_safe(example_on_path: None) -> None:
    from acme_tcm import HANDLERS

    fhir = InMemoryFhir()
    event = events.event(
        "acme.patient.discharged", "p-77", {"discharged_at": "2026-11-01T18:00:00Z"}, id="dis-1"
    )
    first = run_handler(HANDLERS.spec, event, fhir=fhir, config={"due_days": 3}, now=NOW)
    again = run_handler(HANDLERS.spec, event, fhir=fhir, config={"due_days": 3}, now=NOW)
    [task] = first.fhir.all("Task")  # a replay created nothing new
    assert task["restriction"]["period"]["end"].startswith("2026-11-04")  # due_days from config
    assert task["for"]["reference"] == "Patient/p-77"
    assert [e.id for e in first.effects.emits] == ["acme:tcm-started:dis-1"]
    assert again.effects.emits == first.effects.emits
    assert fhir.transactions == 2


def test_example_handler_rejects_bad_data_and_bad_config(example_on_path: None) -> None:
    from acme_tcm import HANDLERS

    bad = events.event("acme.patient.discharged", "p-77", {"when": "yesterday"})
    with pytest.raises(MalformedEvent, match="discharged_at"):
        run_handler(HANDLERS.spec, bad)
    good = events.event(
        "acme.patient.discharged", "p-77", {"discharged_at": "2026-11-01T18:00:00Z"}
    )
    with pytest.raises(ConfigError, match="due_days"):
        run_handler(HANDLERS.spec, good, config={"due_days": "soon"})
