"""Threshold ladders other than the built-in ones: a base code without add-ons is billed once a
month however long the care, and an add-on may come every minute."""

from __future__ import annotations

from carecoord.handlers.billing.handler import Ladder, units_reached


def test_a_ladder_without_an_add_on_bills_its_base_code_once() -> None:
    once = Ladder("99091", 30)
    assert units_reached(once, 29) == []
    assert units_reached(once, 30) == units_reached(once, 600) == [("99091", 1)]
    assert units_reached(Ladder("99091", 30, "99999", 0), 600) == [("99091", 1)]


def test_an_add_on_may_come_every_minute() -> None:
    per_minute = Ladder("A1", 5, "A2", 1)
    assert units_reached(per_minute, 7.5) == [("A1", 1), ("A2", 1), ("A2", 2)]
