"""Billing properties over the whole input space: units grow with minutes, caps hold (in the pure
function and through the handler), and the month is the entry's own calendar month."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from carecoord.handlers.billing.handler import COMPLEX_CCM, HANDLERS, LADDERS, Ladder, units_reached
from carecoord.handlers.billing.rules import DEFAULT_ADDON_LIMITS
from support.billing import enrol
from support.handler_context import FakeFhir, ctx, event

handle = HANDLERS[0].handle
ALL_LADDERS = [*LADDERS.values(), COMPLEX_CCM]

ladders = st.sampled_from(ALL_LADDERS)
minutes = st.floats(min_value=0, max_value=24 * 60, allow_nan=False)
limits = st.dictionaries(
    st.sampled_from([lad.addon for lad in ALL_LADDERS if lad.addon]), st.integers(0, 5), max_size=2
)
# Any fixed UTC offset FHIR can express: -12:00 .. +14:00 in whole minutes.
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def _month_edges(draw: st.DrawFn) -> datetime:
    """The first morning or the last evening of a month, where UTC is in another month."""
    year, month = draw(st.integers(2024, 2026)), draw(st.integers(1, 12))
    first = datetime(year, month, 1)
    if draw(st.booleans()):
        return first + timedelta(hours=draw(st.integers(0, 13)), minutes=draw(st.integers(0, 59)))
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(minutes=draw(st.integers(1, 14 * 60)))


local_times = st.one_of(
    _month_edges(),
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31, 23, 59)).map(
        lambda d: d.replace(second=0, microsecond=0)
    ),
)


@given(ladders, minutes, minutes, limits)
def test_units_are_monotonic_in_minutes(
    ladder: Ladder, a: float, b: float, caps: dict[str, int]
) -> None:
    low, high = sorted((a, b))
    fewer, more = units_reached(ladder, low, caps), units_reached(ladder, high, caps)
    assert more[: len(fewer)] == fewer, "more minutes keep every unit fewer minutes reached"


@given(ladders, minutes, limits)
def test_units_follow_the_ladder_and_caps_hold(
    ladder: Ladder, total: float, caps: dict[str, int]
) -> None:
    units = units_reached(ladder, total, caps)
    if total < ladder.first_at:
        assert units == []
        return
    assert units[0] == (ladder.first, 1)
    addons = units[1:]
    assert ladder.addon is not None
    uncapped = int((total - ladder.first_at) // ladder.addon_every)
    expected = min(uncapped, caps[ladder.addon]) if ladder.addon in caps else uncapped
    assert addons == [(ladder.addon, n) for n in range(1, expected + 1)]


def _log(fhir: FakeFhir, n: int, mins: float, when: datetime, config: dict[str, Any]) -> list[Any]:
    data = {
        "program": "CCM",
        "minutes": mins,
        "activity": "care coordination",
        "by": "Practitioner/cm-1",
        "performed_at": when.isoformat(),
    }
    fx = handle(event("carecoord.time.logged", "p1", data, f"t-{n}"), ctx(fhir, config))
    fhir.apply(fx)
    return list(fx.emits)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 90), min_size=1, max_size=6),
    st.integers(0, 3),
    st.booleans(),
)
def test_the_handler_never_bills_past_the_cap(entries: list[int], cap: int, complex_: bool) -> None:
    ladder = COMPLEX_CCM if complex_ else LADDERS["CCM"]
    assert ladder.addon is not None
    config = {"addon_limits": {ladder.addon: cap}, "complex_ccm": complex_}
    fhir = FakeFhir()
    enrol(fhir)
    when = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
    for n, mins in enumerate(entries):
        _log(fhir, n, mins, when + timedelta(hours=n), config)
    billed: list[str] = []
    for c in fhir.all("ChargeItem"):
        if c.status == "billable":
            billed += [c.code.coding[0].code] * int(c.quantity.value)
    assert billed.count(ladder.addon) <= cap
    total = sum(entries)
    expected_ladder = ladder if (not complex_ or total >= 60) else LADDERS["CCM"]
    assert expected_ladder.addon is not None
    caps = {**DEFAULT_ADDON_LIMITS, **config["addon_limits"]}  # configured caps add to CMS's
    assert sorted(billed) == sorted(cpt for cpt, _ in units_reached(expected_ladder, total, caps))


@settings(max_examples=60, deadline=None)
@given(local_times, offsets)
def test_the_month_is_computed_in_the_entrys_own_offset(local: datetime, tz: timezone) -> None:
    when = local.replace(tzinfo=tz)
    fhir = FakeFhir()
    enrol(fhir, start=date(2024, 1, 1), consent=date(2023, 12, 1))
    (emit,) = _log(fhir, 0, 20, when, {})
    assert emit.data["month"] == f"{local.year:04d}-{local.month:02d}"
    (item,) = [c for c in fhir.all("ChargeItem") if c.status == "billable"]
    start = item.occurrencePeriod.start
    assert (start.year, start.month) == (local.year, local.month)
