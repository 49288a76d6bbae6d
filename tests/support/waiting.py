"""Polling until something is true, for tests that watch a service, a broker or a FHIR server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    before_each: Callable[[], None] | None = None,
) -> T:
    """Call `predicate` until it returns something truthy and return that; fail after `timeout`
    seconds naming `what`. A connection error counts as "not yet" (a server still starting).
    `before_each` runs before every try (e.g. to fail fast if a watched process died)."""
    deadline = time.monotonic() + timeout
    while True:
        if before_each is not None:
            before_each()
        try:
            result = predicate()
            if result:
                return result
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
