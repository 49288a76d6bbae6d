"""Where a service process's CPU goes, by thread CPU time (`BENCH_SPLIT=<prefix>`, read by
bench/worker.py): the handlers (`HandlerProcessor._process`), their FHIR requests inside them
(`FhirClient._send`: httpx, the answer's JSON), their own code (the difference) and the garbage
collector (`gc.callbacks`), per event type, written to `<prefix>.<pid>` as JSON every second.

Thread CPU, not py-spy's samples: a sample of the thread holding the GIL counts the time it
spends descheduled on a shared core too (docs/benchmarks.md), thread CPU does not.
"""

from __future__ import annotations

import atexit
import gc
import json
import threading
import time
from pathlib import Path
from typing import Any


def install(prefix: str, pid: int) -> threading.Thread:
    from carecoord.fhir.client import FhirClient
    from carecoord.handlers.processing import HandlerProcessor

    lock = threading.Lock()
    local = threading.local()
    by_type: dict[str, list[float]] = {}  # type -> [events, handler s, requests s]
    collector = {"seconds": 0.0, "full": 0}
    started: dict[int, float] = {}
    process, send = HandlerProcessor._process, FhirClient._send

    def timed_process(self: HandlerProcessor, event: Any) -> Any:
        begin, local.requests = time.thread_time(), 0.0
        try:
            return process(self, event)
        finally:
            spent = time.thread_time() - begin
            with lock:
                row = by_type.setdefault(event.type, [0, 0.0, 0.0])
                row[0] += 1
                row[1] += spent
                row[2] += local.requests

    def timed_send(self: FhirClient, call: Any) -> Any:
        begin = time.thread_time()
        try:
            return send(self, call)
        finally:
            local.requests = getattr(local, "requests", 0.0) + time.thread_time() - begin

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        me = threading.get_ident()
        if phase == "start":
            started[me] = time.thread_time()
            return
        collector["seconds"] += time.thread_time() - started.pop(me, time.thread_time())
        collector["full"] += info["generation"] == 2

    HandlerProcessor._process = timed_process  # type: ignore[method-assign]
    FhirClient._send = timed_send  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    out = Path(f"{prefix}.{pid}")

    def write_once() -> None:
        with lock:
            events = sum(int(r[0]) for r in by_type.values()) or 1
            snapshot = {
                "events": events,
                "gc_ms_per_event": round(collector["seconds"] * 1e3 / events, 3),
                "full_collections": collector["full"],
                "by_type": {
                    kind: {
                        "events": int(n),
                        "handler_ms": round(h * 1e3 / n, 3),
                        "requests_ms": round(r * 1e3 / n, 3),
                        "own_ms": round((h - r) * 1e3 / n, 3),
                    }
                    for kind, (n, h, r) in by_type.items()
                },
            }
        out.write_text(json.dumps(snapshot, indent=1))

    def write() -> None:
        while True:
            time.sleep(1.0)
            write_once()

    atexit.register(write_once)  # the drain's last second too (the worker exits on SIGTERM)
    writer = threading.Thread(target=write, name="bench-split", daemon=True)
    writer.start()
    return writer
