"""Peak RSS of the runtime while it drains a backlog, measured in a process of its own.

The parent starts `python -m bench.memory BOOTSTRAP TOPIC N` and samples the child's VmRSS from
/proc every 50 ms; the child also reports its own VmHWM (kernel-tracked peak) and its RSS once it
has joined the group, before it has read anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def status_mb(pid: int | str, field: str) -> float | None:
    """A memory field (VmRSS, VmHWM) of /proc/<pid>/status in MB, None if the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Drain:
    backlog: int
    seconds: float
    rate: float
    rss_mb_ready: float  # joined, nothing read yet
    rss_mb_peak: float  # max VmRSS sampled by the parent
    rss_mb_hwm: float  # the child's VmHWM at the end
    timeline_mb: list[float]  # max VmRSS per second of the child's life
    drain_growth_mb: float  # max RSS in the second half of the life minus the first half


def measure_drain(
    bootstrap: str, topic: str, backlog: int, patched: bool, timeout: float = 600.0
) -> Drain:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", bootstrap, topic, str(backlog), str(timeout)]
        + (["--kafka-patch"] if patched else []),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    deadline = started + timeout + 30
    while proc.poll() is None:
        rss = status_mb(proc.pid, "VmRSS")
        if rss is not None:
            samples.append((time.monotonic() - started, rss))
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("memory worker timed out")
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed with exit code {proc.returncode}")
    report = json.loads(out.strip().splitlines()[-1])
    peak = max((rss for _, rss in samples), default=0.0)
    timeline: dict[int, float] = {}
    for t, rss in samples:
        timeline[int(t)] = max(timeline.get(int(t), 0.0), rss)
    half = len(samples) // 2
    first = max((rss for _, rss in samples[:half]), default=0.0)
    second = max((rss for _, rss in samples[half:]), default=0.0)
    return Drain(
        backlog=backlog,
        seconds=report["seconds"],
        rate=backlog / report["seconds"],
        rss_mb_ready=report["rss_mb_ready"],
        rss_mb_peak=max(peak, report["rss_mb_end"]),
        rss_mb_hwm=report["rss_mb_hwm"],
        timeline_mb=[round(timeline[k], 1) for k in sorted(timeline)],
        drain_growth_mb=second - first,
    )


def _child(bootstrap: str, topic: str, backlog: int, timeout: float, patched: bool) -> None:
    from bench import kafka_patch
    from bench.harness import NoopProcessor, RuntimeRun, quiet_logs, runtime_options

    if patched:
        kafka_patch.apply()
    quiet_logs()
    run = RuntimeRun(NoopProcessor(), runtime_options(bootstrap, topic, 16), backlog).start()
    run.wait_ready()
    ready = status_mb("self", "VmRSS")
    result = run.wait(timeout)
    print(
        json.dumps(
            {
                "seconds": result.seconds,
                "rss_mb_ready": ready,
                "rss_mb_end": status_mb("self", "VmRSS"),
                "rss_mb_hwm": status_mb("self", "VmHWM"),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    _child(
        sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), "--kafka-patch" in sys.argv
    )
