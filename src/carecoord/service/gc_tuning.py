"""The service process's garbage-collector thresholds.

Each event parses the FHIR server's answers into thousands of short-lived dicts and lists; at
CPython's default gen-0 threshold (700 net allocations) the collector runs many times per event
and promotes the in-flight event's objects, and every full collection walks the whole heap
(fhir.resources' models and pydantic's schemas: over a million objects). Measured with
`gc.callbacks` in a bench drain worker (issue 27): 0.38-0.44 ms of collection per event at the
defaults, 0.19-0.21 ms at these thresholds, no full collection in a 700-event drain; RSS is not
changed measurably (what waits for a gen-0 collection is a few MB at most).

Set by `carecoord service run` for its own process, not by the library: a process that embeds
`Service` or `EventRuntime` keeps its own settings.
"""

from __future__ import annotations

import gc

# (gen 0, gen 1, gen 2): gen 0 raised from CPython's 700; the others as CPython sets them.
SERVICE_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> tuple[int, int, int]:
    """Set the service's thresholds; returns the ones it replaced."""
    before = gc.get_threshold()
    gc.set_threshold(*SERVICE_THRESHOLDS)
    return before
