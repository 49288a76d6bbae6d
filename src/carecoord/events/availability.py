"""Dependency availability: a FHIR server or broker that is down is an outage, not a poison message.

The runtime reports an event that failed because a dependency was unavailable (connection refused,
timeout, 5xx, 429) with `report_down()`. From then on no new work starts and consumption pauses,
while a background thread probes the dependency with exponential backoff (honouring a server's
Retry-After); when a probe succeeds, work resumes where it stopped. Nothing is dead-lettered for
an outage, and per-patient order holds because the failed events keep their keys busy.

An outage the probe confirmed (a probe failed too) does not count toward an event's retry budget
(`confirmed_down_seconds`). A report the first probe contradicts (the server answers, only this
event's request failed) does count, so an event that keeps failing on a healthy server is still
dead-lettered when its budget is spent.

While up, the dependency is probed every `check_interval` seconds as well, so readiness reflects an
outage even when no event is flowing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Probe = Callable[[], None]
"""Returns when the dependency answered; raises when it did not."""


class Availability:
    """One dependency's up/down state, kept current by a probe thread (`start()` / `close()`)."""

    def __init__(
        self,
        name: str,
        probe: Probe,
        *,
        up: bool = True,
        check_interval: float = 15.0,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.name = name
        self._probe = probe
        self._check_interval = check_interval
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._on_change = on_change
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._up = threading.Event()
        self._down_since: float | None = None if up else time.monotonic()
        self._confirmed = not up  # never seen up: the outage is real until a probe says otherwise
        self._retry_after: float | None = None
        self._confirmed_total = 0.0
        self._failing = False  # the last probe failed (only the probe thread touches it)
        self.outages = 0 if up else 1
        if up:
            self._up.set()
        self._thread = threading.Thread(target=self._loop, name=f"cc-probe-{name}", daemon=True)

    # -- state -----------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up.is_set()

    @property
    def confirmed_down(self) -> bool:
        """Down, and a probe has confirmed it (not only a failed operation's report)."""
        with self._lock:
            return self._confirmed and not self._up.is_set()

    def wait_up(self, timeout: float | None = None) -> bool:
        return self._up.wait(timeout)

    def report_down(
        self, error_type: str, retry_after: float | None = None, *, confirmed: bool = False
    ) -> None:
        """An operation failed because the dependency is unavailable: hold work, start probing.
        `confirmed`: the dependency said so itself (a 429 or 503), no probe needs to agree."""
        with self._lock:
            if retry_after is not None:
                self._retry_after = max(self._retry_after or 0.0, retry_after)
            if not self._up.is_set():
                self._confirmed = self._confirmed or confirmed
                return
            self._up.clear()
            self._down_since = time.monotonic()
            self._confirmed = confirmed
            self.outages += 1
        log.warning(
            "dependency unavailable; pausing", extra={"dependency": self.name, "error": error_type}
        )
        self._changed(False)
        self._wake.set()

    def down_seconds(self) -> float:
        """Seconds since the current outage began (0 while up): what an operator alerts on."""
        with self._lock:
            since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def confirmed_down_seconds(self) -> float:
        """Seconds of confirmed outage so far, the current one included (monotonic clock)."""
        with self._lock:
            total = self._confirmed_total
            if self._confirmed and self._down_since is not None:
                total += time.monotonic() - self._down_since
            return total

    # -- probe thread ----------------------------------------------------------------------------

    def start(self) -> Availability:
        if not self._thread.is_alive():
            self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _loop(self) -> None:
        failures = 0
        first = not self._up.is_set()
        while not self._stop.is_set():
            if self._up.is_set():
                failures = 0
                self._wake.wait(self._check_interval)
                self._wake.clear()
                if self._stop.is_set():
                    return
                if self._up.is_set() and not self._probe_ok():
                    self.report_down("probe failed")
                    self._confirm()
                continue
            with self._lock:
                hint, self._retry_after = self._retry_after, None
            ceiling = min(self._backoff_max, self._backoff_base * 2.0**failures)
            delay = max(ceiling / 2 + random.uniform(0, ceiling / 2), hint or 0.0)
            if first:  # never seen up (start-up): probe at once
                first = False
            elif self._stop.wait(delay):
                return
            if self._probe_ok():
                self._recover()
            else:
                failures += 1
                self._confirm()

    def _probe_ok(self) -> bool:
        """Whether the probe passed. The first failure of a run of them is a WARNING (a service
        that never becomes ready says why), the repeats INFO."""
        try:
            self._probe()
        except Exception as exc:  # the probe's failure is the information we want
            extra = {"dependency": self.name, "error": type(exc).__name__}
            level = logging.INFO if self._failing else logging.WARNING
            log.log(level, "dependency probe failed", extra=extra)
            self._failing = True
            return False
        self._failing = False
        return True

    def _confirm(self) -> None:
        with self._lock:
            self._confirmed = True

    def _recover(self) -> None:
        with self._lock:
            since = self._down_since
            down_for = time.monotonic() - since if since is not None else 0.0
            if self._confirmed:
                self._confirmed_total += down_for
            self._down_since = None
            self._confirmed = False
            self._up.set()
        extra = {"dependency": self.name, "down_seconds": round(down_for, 1)}
        log.info("dependency available again; resuming", extra=extra)
        self._changed(True)

    def _changed(self, up: bool) -> None:
        if self._on_change is not None:
            try:
                self._on_change(self.name, up)
            except Exception:  # an observer must not break the probe
                log.warning("availability observer failed", exc_info=True)
