"""The running service's listeners under a slow-client attack, on the real broker and FHIR server:
200 connections per port that send their headers a byte at a time (no token needed) must not
delay a probe or an authorised notification.

The one timing assertion of the suite, asked for by the issue (a Kubernetes probe times out after
1 s; before the h11 listener, 40 such clients made /healthz take 4.5 s at the median). The bound,
p99 < 250 ms per series, is generous on purpose: on loopback an answer takes about a millisecond
to a few, so it only fails when the attack really delays requests (the old listener: seconds),
not when this shared machine is busy. The attackers run in a process of their own, as they
would, so their work does not compete for the service's interpreter lock.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.waiting import wait_for

pytestmark = pytest.mark.integration

TOKEN = "load-test-token"
SLOW_PER_PORT = 200
MEASURE_SECONDS = 12.0  # past the health port's 5 s header deadline: the attackers reconnect
P99_BOUND = 0.250
HEARTBEAT = {
    "resourceType": "Bundle",
    "type": "history",
    "entry": [
        {
            "resource": {
                "resourceType": "Parameters",
                "parameter": [{"name": "type", "valueCode": "heartbeat"}],
            }
        }
    ],
}

# Keeps `n` connections per port sending a header byte every `pace` seconds, reconnecting
# whenever the server closes one; prints "ready", then at the end the counts as JSON.
ATTACKER = textwrap.dedent(
    """
    import json, selectors, socket, sys, time
    ports, n, pace, seconds = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), \\
        float(sys.argv[4])
    sel = selectors.DefaultSelector()
    stats = {str(p): {"open_peak": 0, "cut_off": 0} for p in ports}
    open_now = {p: 0 for p in ports}

    def connect(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: ")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, port)
        open_now[port] += 1
        stats[str(port)]["open_peak"] = max(stats[str(port)]["open_peak"], open_now[port])

    for port in ports:
        for _ in range(n):
            connect(port)
    print("ready", flush=True)
    end = time.monotonic() + seconds
    next_byte = time.monotonic()
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=max(0.0, next_byte - time.monotonic())):
            port = key.data
            try:
                key.fileobj.recv(4096)  # a 408 or the close: this one was cut off
            except OSError:
                pass
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_now[port] -= 1
            stats[str(port)]["cut_off"] += 1
            connect(port)
        if time.monotonic() >= next_byte:
            for key in list(sel.get_map().values()):
                try:
                    key.fileobj.send(b"a")
                except OSError:
                    pass
            next_byte = time.monotonic() + pace
    print(json.dumps(stats), flush=True)
    """
)


@pytest.fixture
def service(kafka_bootstrap: str, fhir_base_url: str, unique: str) -> Iterator[Service]:
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment"],
        topic_in=f"ll-in-{unique}",
        topic_out=f"ll-out-{unique}",
        topic_dlq=f"ll-dlq-{unique}",
        group_id=f"ll-{unique}",
        health_host="127.0.0.1",
        health_port=0,
        notifications_enabled=True,
        notifications_token=TOKEN,
        notifications_port=0,
        sweeper_interval=0,
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
    )
    svc = Service(settings)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    yield svc
    svc.request_stop()
    thread.join(30)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_200_slow_clients_per_port_delay_no_probe_and_no_notification(service: Service) -> None:
    assert service.health is not None and service.notifications is not None
    health, notify = service.health.port, service.notifications.port
    ports, pace, seconds = json.dumps([health, notify]), "0.5", str(MEASURE_SECONDS + 1)
    attacker = subprocess.Popen(
        [sys.executable, "-c", ATTACKER, ports, str(SLOW_PER_PORT), pace, seconds],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert attacker.stdout is not None
        assert attacker.stdout.readline().strip() == "ready"
        timings: dict[str, list[float]] = {"healthz": [], "readyz": [], "notification": []}
        statuses: set[int] = set()
        body = json.dumps(HEARTBEAT).encode()
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
        with httpx.Client(timeout=10) as client:
            end = time.monotonic() + MEASURE_SECONDS
            while time.monotonic() < end:
                for name, send in (
                    ("healthz", lambda: client.get(f"http://127.0.0.1:{health}/healthz")),
                    ("readyz", lambda: client.get(f"http://127.0.0.1:{health}/readyz")),
                    (
                        "notification",
                        lambda: client.post(
                            f"http://127.0.0.1:{notify}/fhir/notifications",
                            content=body,
                            headers=auth,
                        ),
                    ),
                ):
                    started = time.perf_counter()
                    statuses.add(send().status_code)
                    timings[name].append(time.perf_counter() - started)
                time.sleep(0.03)
        out, _ = attacker.communicate(timeout=30)
    finally:
        attacker.kill()
        attacker.wait()
    stats = json.loads(out.strip().splitlines()[-1])
    # the attack was real: every slow connection held at once, and the health port cut some off
    assert stats[str(health)]["open_peak"] == SLOW_PER_PORT
    assert stats[str(notify)]["open_peak"] == SLOW_PER_PORT
    assert stats[str(health)]["cut_off"] >= SLOW_PER_PORT
    assert statuses == {200}
    summary = {name: round(p99(samples) * 1000, 1) for name, samples in timings.items()}
    print("p99 ms under attack:", summary, "samples:", {k: len(v) for k, v in timings.items()})
    assert all(len(samples) >= 100 for samples in timings.values())
    assert all(p99(samples) < P99_BOUND for samples in timings.values()), summary
