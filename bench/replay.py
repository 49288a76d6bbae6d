"""The raw replay of bench/pipeline.py in a process of its own, so that its clients do not share
the bench process (and its counting proxy's threads) for the interpreter lock:

    python -m bench.replay BASE_URL PHASES.json CLIENTS

PHASES.json: [[[[method, path, body, headers], ...], ...], ...]: phases of sequences of
requests. The phases one after the other (as the pipeline's drain publishes one event type at a
time and drains it); in a phase, CLIENTS sequences at a time, each sequence's requests in order,
each answer's JSON parsed. Prints the seconds it took.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


Request = tuple[str, str, bytes, dict[str, str]]


def replay(base_url: str, phases: list[list[list[Request]]], clients: int) -> float:
    local = threading.local()

    def run(sequence: list[Request]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=30, headers=HEADERS)
        for method, path, body, headers in sequence:
            r = client.request(method, path, content=body or None, headers=headers)
            if r.status_code >= 300:
                raise RuntimeError(f"raw replay: {method} answered {r.status_code}")
            r.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for sequences in phases:
            list(pool.map(run, sequences))
    return time.perf_counter() - started


def main(argv: list[str]) -> int:
    base_url, path, clients = argv
    raw = json.loads(Path(path).read_text())
    phases = [[[(m, p, b.encode(), h) for m, p, b, h in s] for s in phase] for phase in raw]
    print(f"{replay(base_url, phases, int(clients)):.6f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
