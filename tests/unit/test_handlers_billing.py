"""Billable time: thresholds per patient, program and month; no minute counted twice."""

from __future__ import annotations

from typing import Any

import pytest
from test_handlers_ii_support import FakeFhir, ctx, event

from carecoord.handlers.billing import HANDLERS, LADDERS, units_reached

handle = HANDLERS[0].handle


def log_time(
    fhir: FakeFhir,
    minutes: float,
    program: str = "CCM",
    when: str = "2025-03-05T10:00:00+00:00",
    id_: str | None = None,
    config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    data = {
        "program": program,
        "minutes": minutes,
        "activity": "care coordination",
        "by": "Practitioner/cm-1",
        "performed_at": when,
    }
    fx = handle(event("carecoord.time.logged", "p1", data, id_), ctx(fhir, config))
    fhir.apply(fx)
    return [{"id": e.id, **e.data} for e in fx.emits]


def billed(fhir: FakeFhir) -> list[str]:
    return sorted(c.code.coding[0].code for c in fhir.all("ChargeItem") if c.status == "billable")


@pytest.mark.parametrize(
    ("program", "minutes", "expected"),
    [
        ("CCM", 19.5, []),
        ("CCM", 20, [("99490", 1)]),
        ("CCM", 59, [("99490", 1), ("99439", 1)]),
        ("CCM", 60, [("99490", 1), ("99439", 1), ("99439", 2)]),
        ("PCM", 30, [("99426", 1)]),
        ("RPM", 40, [("99457", 1), ("99458", 1)]),
    ],
)
def test_ladders(program: str, minutes: float, expected: list[tuple[str, int]]) -> None:
    assert units_reached(LADDERS[program], minutes) == expected


def test_addon_limit() -> None:
    assert units_reached(LADDERS["CCM"], 200, {"99439": 2})[-1] == ("99439", 2)


def test_minutes_accumulate_and_each_threshold_is_announced_once() -> None:
    fhir = FakeFhir()
    assert log_time(fhir, 15) == []
    (first,) = log_time(fhir, 10)
    assert (first["cpt"], first["program"], first["month"]) == ("99490", "CCM", "2025-03")
    assert first["total_minutes"] == 25
    assert log_time(fhir, 10) == []  # 35 minutes
    (addon,) = log_time(fhir, 5)  # 40
    assert (addon["cpt"], addon["unit"]) == ("99439", 1)
    assert billed(fhir) == ["99439", "99490"]


def test_a_duplicate_time_event_never_counts_twice() -> None:
    fhir = FakeFhir()
    first = log_time(fhir, 12, id_="t-1")
    again = log_time(fhir, 12, id_="t-1")
    assert first == again == []
    assert log_time(fhir, 7) == []  # 19 minutes, not 31
    emitted = log_time(fhir, 1, id_="t-3")
    replay = log_time(fhir, 1, id_="t-3")
    assert [e["id"] for e in emitted] == [e["id"] for e in replay]  # same id: announced once
    assert billed(fhir) == ["99490"]
    assert len([c for c in fhir.all("ChargeItem") if c.status == "not-billable"]) == 3


def test_minutes_count_only_for_their_own_program_and_month() -> None:
    fhir = FakeFhir()
    log_time(fhir, 15, program="RPM")
    log_time(fhir, 15, program="CCM")
    log_time(fhir, 15, program="CCM", when="2025-04-01T09:00:00+00:00")
    assert billed(fhir) == []


def test_ccm_and_pcm_are_not_both_billed_in_a_month() -> None:
    fhir = FakeFhir()
    assert [e["cpt"] for e in log_time(fhir, 20, program="CCM")] == ["99490"]
    assert log_time(fhir, 30, program="PCM") == []
    assert [e["cpt"] for e in log_time(fhir, 20, program="RPM")] == ["99457"]
    assert billed(fhir) == ["99457", "99490"]


def test_complex_ccm() -> None:
    fhir = FakeFhir()
    emitted = log_time(fhir, 60, config={"complex_ccm": True})
    assert [e["cpt"] for e in emitted] == ["99487"]


def test_the_handler_applies_configured_addon_limits() -> None:
    fhir = FakeFhir()
    emitted = log_time(fhir, 200, config={"addon_limits": {"99439": 2}})
    assert [(e["cpt"], e["unit"]) for e in emitted] == [("99490", 1), ("99439", 1), ("99439", 2)]
    assert log_time(fhir, 60, config={"addon_limits": {"99439": 2}}) == []  # capped: no 3rd
    assert billed(fhir) == ["99439", "99439", "99490"]


def test_the_month_is_the_entrys_own_calendar_month_not_utcs() -> None:
    fhir = FakeFhir()
    # 21:00 on 31 March in Chicago is already 1 April in UTC: it is March time.
    assert log_time(fhir, 15, when="2025-03-05T10:00:00-05:00") == []
    (first,) = log_time(fhir, 10, when="2025-03-31T21:00:00-05:00")
    assert (first["cpt"], first["month"], first["total_minutes"]) == ("99490", "2025-03", 25)
    # And 08:00 on 1 April in Sydney is still 31 March in UTC: it is April time.
    assert log_time(fhir, 20, when="2025-04-01T08:00:00+10:00")[0]["month"] == "2025-04"
