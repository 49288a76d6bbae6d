"""CPU pinning for the pipeline benchmark (issue 27: "pin the FHIR server and the service to
separate cores if that is how the two are to be told apart").

With 2 or more cores, the FHIR server (every thread of its process) gets core 0 to itself; this
process (the load generator: the bench's producer, the counting proxy, the raw replay's
clients), the service processes it starts (they inherit its affinity) and the embedded broker
share the others. So the server's rate, raw or under the pipeline, is measured with one core of
its own, and the service's CPU is never taken from it (other programs on the machine are not
pinned). BENCH_PIN=0 turns it off; with one core there is nothing to pin.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class Plan:
    server: frozenset[int]
    service: frozenset[int]

    def describe(self) -> dict[str, list[int]]:
        return {"server": sorted(self.server), "service": sorted(self.service)}


@cache  # once, before this process is pinned: the cores it was given
def plan() -> Plan | None:
    """Core 0 for the server, the rest for everything else; None where pinning is off."""
    if os.environ.get("BENCH_PIN", "1") == "0" or not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return Plan(frozenset(cores[:1]), frozenset(cores[1:]))


def pin(pid: int, cores: frozenset[int]) -> None:
    """Every thread of process `pid` onto `cores` (threads started later inherit it)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            os.sched_setaffinity(tid, cores)


def affinity(pid: int = 0) -> frozenset[int]:
    return frozenset(os.sched_getaffinity(pid))


def local_broker_pid(bootstrap: str) -> int | None:
    """The embedded tansu broker's pid (its command line names the bootstrap address)."""
    needle = f"tcp://{bootstrap}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"tansu" in cmdline and needle in cmdline:
            return int(entry.name)
    return None
