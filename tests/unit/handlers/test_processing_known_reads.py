"""A FHIR client whose `apply` takes `known` is given what the event's handlers read (so it
need not read those resources again); one without it is called as before."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.task import Task
from test_processing import NOW, SPECS, FakeFhir, event

from carecoord.core.effects import FhirWrite
from carecoord.handlers.processing import HandlerProcessor, _takes_known


class KnowingFhir(FakeFhir):
    def __init__(self) -> None:
        super().__init__()
        self.known: list[Mapping[str, Any] | None] = []

    def apply(self, writes: Sequence[FhirWrite], known: Mapping[str, Any] | None = None) -> object:
        self.known.append(known)
        return super().apply(writes)


def with_task(fhir: FakeFhir) -> FakeFhir:
    fhir.tasks["t1"] = (Task(id="t1", status="ready", intent="order"), "1")
    return fhir


def test_apply_is_given_the_resources_the_handlers_read() -> None:
    fhir = with_task(KnowingFhir())
    assert _takes_known(fhir)
    HandlerProcessor(SPECS, fhir, config={"noter": {"limit": 5}}, clock=lambda: NOW).process(
        event()
    )
    [known] = fhir.known
    assert known is not None and known["Task/t1"]["status"] == "ready"  # type: ignore[index]
    [writes] = fhir.transactions
    assert writes  # the handlers' writes, not nothing


def test_a_client_without_known_is_called_with_the_writes_only() -> None:
    fhir = with_task(FakeFhir())
    assert not _takes_known(fhir)
    HandlerProcessor(SPECS, fhir, config={"noter": {"limit": 5}}, clock=lambda: NOW).process(
        event()
    )
    [writes] = fhir.transactions
    assert writes


def test_an_apply_whose_signature_cannot_be_read_takes_no_known() -> None:
    class Opaque:
        apply = iter  # a builtin without a signature: inspect raises ValueError

    assert _takes_known(Opaque()) is False
