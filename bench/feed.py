"""Produce events at a steady rate from a process of its own (for the latency scenario), so the
producer does not share the runtime's GIL: `python -m bench.feed BOOTSTRAP TOPIC N KEYS RATE`."""

from __future__ import annotations

import subprocess
import sys

from bench.memory import ROOT
from bench.workload import produce


def start_feeder(
    bootstrap: str, topic: str, n: int, keys: int, rate: float
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.feed", bootstrap, topic, str(n), str(keys), str(rate)],
        cwd=ROOT,
    )


if __name__ == "__main__":
    bootstrap, topic, n, keys, rate = sys.argv[1:6]
    produce(bootstrap, topic, int(n), int(keys), rate=float(rate), stamp=True)
