"""`carecoord service run` raises the gen-0 collection threshold of its own process (see
carecoord.service.gc_tuning), before the service is built."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import typer

from carecoord.cli import service_commands
from carecoord.service import app
from carecoord.service.gc_tuning import SERVICE_THRESHOLDS


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_service_command_sets_the_thresholds_before_the_service_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, int, int]] = []

    class Started(Exception):
        pass

    def service(settings: object) -> None:
        seen.append(gc.get_threshold())
        raise Started

    monkeypatch.setattr(app, "Service", service)
    monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", "http://127.0.0.1:9/fhir")
    gc.set_threshold(700, 10, 10)
    with pytest.raises(typer.Exit):  # the stub's "failure", reported as the CLI reports one
        service_commands.run(None)
    assert seen == [SERVICE_THRESHOLDS]
