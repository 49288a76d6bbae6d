"""Backoff after very many attempts (tiny delays within a long budget, as on a slow machine) is
the maximum, not an OverflowError from multiplier ** attempt."""

from __future__ import annotations

from carecoord.fhir.transport import Backoff


def test_backoff_after_a_thousand_attempts_is_the_maximum() -> None:
    backoff = Backoff(initial=0.001, maximum=0.002, multiplier=2.0)
    for attempt in (1, 2, 1025, 10_000):
        assert 0.0005 <= backoff.delay(attempt) <= 0.002
