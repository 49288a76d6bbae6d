"""Drains of the pipeline benchmark in service processes of their own (bench/worker.py):
carecoord's runtime or the floor consumer (bench/floor.py), 1..n processes in one consumer
group, against the proxy in front of the FHIR server.

The events are published one phase (event kind) at a time and each phase drained before the
next, so CPU per event is measured per event type: /proc/<pid>/stat utime + stime of every
service process (summed) and of the server, before and after the phase. events/s is over the
measured phases (after a warm-up: the group assigned, the connections open).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from carecoord.core.envelope import CloudEvent
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.producer import event_message

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6


def cpu_seconds(pid: int | None) -> float | None:
    """CPU seconds (user + system) of a process so far; None where /proc cannot tell."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Worker:
    def __init__(self, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.done = 0
        self.dead = 0
        self.failed = 0
        self.reruns = 0
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("done "):
                _, done, dead, *failed = line.split()
                self.done, self.dead = int(done), int(dead)
                self.failed = int(failed[0]) if failed else 0
                self.reruns = int(failed[1]) if len(failed) > 1 else 0

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait(workers: Sequence[_Worker], published: int, mode: str, label: str) -> None:
    deadline = time.monotonic() + 600
    while sum(w.done for w in workers) < published:
        if time.monotonic() > deadline or any(w.proc.poll() is not None for w in workers):
            raise RuntimeError(f"{mode} drain stalled in phase {label}")
        time.sleep(0.01)


def _spies(mode: str, workers: Sequence[_Worker]) -> list[subprocess.Popen[bytes]]:
    where = os.environ.get("BENCH_PYSPY")
    if not where:
        return []
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(w.proc.pid),
                "--gil",  # only the thread holding the GIL: where the CPU goes, not the waits
                "-r",
                os.environ.get("BENCH_PYSPY_RATE", "200"),
                "-f",
                "raw",
                "-o",
                f"{where}/{mode}-{len(workers)}-{w.proc.pid}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for w in workers
    ]


def drain(
    mode: str,
    bootstrap: str,
    fhir_url: str,
    phases: Sequence[tuple[str, list[CloudEvent]]],
    *,
    warmup: Sequence[CloudEvent] = (),
    processes: int = 1,
    server_pid: int | None = None,
    broker_pid: int | None = None,
    templates: str | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run `phases` (label, events) through `processes` service processes of `mode`, after
    `warmup` (not measured: first connections, lazy imports, the group's assignment).
    With BENCH_PYSPY=<dir>, py-spy records each worker there (raw format, for profiles).
    Beside the service's and the server's CPU per event: this bench process's (its producer
    and the counting proxy every request passes) and the embedded broker's, where known.
    `on_phase(label)` is called as each measured phase starts (after the warm-up)."""
    token = uuid.uuid4().hex[:8]
    topic, group = f"bench-{mode}-{token}", f"bench-{mode}-{token}"
    broker = KafkaBroker(KafkaConnection(bootstrap=bootstrap))
    broker.ensure_topics({topic: PARTITIONS, f"{topic}-out": 1, f"{topic}-dlq": 1})
    producer = broker.producer()
    args = [mode, bootstrap, fhir_url, topic, group, *([templates] if templates else [])]
    workers = [_Worker(args) for _ in range(processes)]
    try:
        for w in workers:
            if not w.ready.wait(60):
                raise RuntimeError(f"{mode} worker did not start")
        spies = _spies(mode, workers)
        time.sleep(5)  # the group's join (session timeout 4 s) before the first phase
        published = 0
        if warmup:
            producer.send_all([event_message(e, topic) for e in warmup], timeout=30)
            published = len(warmup)
            _wait(workers, published, mode, "warm-up")
        by_type: dict[str, dict[str, Any]] = {}
        timed_events, timed_seconds = 0, 0.0
        for label, events in phases:
            if on_phase is not None:
                on_phase(label)
            own = [cpu_seconds(w.proc.pid) or 0.0 for w in workers]
            server = cpu_seconds(server_pid)
            bench, kafka = cpu_seconds(os.getpid()) or 0.0, cpu_seconds(broker_pid)
            started = time.perf_counter()
            producer.send_all([event_message(e, topic) for e in events], timeout=30)
            published += len(events)
            _wait(workers, published, mode, label)
            seconds = time.perf_counter() - started
            own_after = [cpu_seconds(w.proc.pid) or 0.0 for w in workers]
            server_after = cpu_seconds(server_pid)
            bench_after, kafka_after = cpu_seconds(os.getpid()) or 0.0, cpu_seconds(broker_pid)
            zero = {"events": 0, "seconds": 0.0, "own": 0.0, "srv": 0.0, "bench": 0.0, "kafka": 0.0}
            entry = by_type.setdefault(label, zero)
            entry["bench"] += bench_after - bench
            if kafka is not None and kafka_after is not None:
                entry["kafka"] += kafka_after - kafka
            entry["events"] += len(events)
            entry["seconds"] += seconds
            entry["own"] += sum(own_after) - sum(own)
            if server is not None and server_after is not None:
                entry["srv"] += server_after - server
            timed_events += len(events)
            timed_seconds += seconds
    finally:
        for w in workers:
            w.stop()
        for spy in spies:
            spy.wait(30)
        producer.close()
    total = sum(e["events"] for e in by_type.values())
    own_total = sum(e["own"] for e in by_type.values())
    srv_total = sum(e["srv"] for e in by_type.values())
    bench_total = sum(e["bench"] for e in by_type.values())
    kafka_total = sum(e["kafka"] for e in by_type.values())
    return {
        "mode": mode,
        "processes": processes,
        "events": total,
        "warmup_events": len(warmup),
        "dead_lettered": sum(w.dead for w in workers),
        "failed_attempts": sum(w.failed for w in workers),
        "conflict_reruns": sum(w.reruns for w in workers),
        "events_per_s": round(timed_events / timed_seconds, 1) if timed_seconds else None,
        "cpu_ms_per_event": {
            "service": round(1000 * own_total / total, 2),
            "server": round(1000 * srv_total / total, 2) if server_pid else None,
            "bench_process": round(1000 * bench_total / total, 2),
            "broker": round(1000 * kafka_total / total, 2) if broker_pid else None,
        },
        "cpu_ms_per_event_by_type": {
            label: {
                "events": e["events"],
                "service": round(1000 * e["own"] / e["events"], 2),
                "server": round(1000 * e["srv"] / e["events"], 2) if server_pid else None,
            }
            for label, e in by_type.items()
        },
    }
