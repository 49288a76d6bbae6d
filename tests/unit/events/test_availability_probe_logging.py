"""A failing dependency probe says so at WARNING once per run of failures (a service that never
becomes ready tells the operator why), then at INFO while the same run of failures lasts; the
line names the dependency and the error's class, never its message."""

from __future__ import annotations

import logging

import pytest

from carecoord.events.availability import Availability


class Probe:
    def __init__(self) -> None:
        self.failing = True

    def __call__(self) -> None:
        if self.failing:
            raise ConnectionRefusedError("secret-host:5432 refused")


def probe_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, str, str]]:
    return [
        (r.levelno, r.getMessage(), getattr(r, "dependency", ""), getattr(r, "error", ""))
        for r in caplog.records
        if r.name == "carecoord.events.availability"
    ]


def test_the_first_failure_of_a_run_warns_and_the_repeats_are_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = Probe()
    dep = Availability("fhir", probe)
    with caplog.at_level(logging.INFO, logger="carecoord.events.availability"):
        assert dep._probe_ok() is False
        assert dep._probe_ok() is False
        probe.failing = False
        assert dep._probe_ok() is True
        probe.failing = True
        assert dep._probe_ok() is False
    failed = ("dependency probe failed", "fhir", "ConnectionRefusedError")
    assert probe_lines(caplog) == [
        (logging.WARNING, *failed),
        (logging.INFO, *failed),
        (logging.WARNING, *failed),  # a new run of failures after a success warns again
    ]
    assert "secret-host" not in caplog.text
