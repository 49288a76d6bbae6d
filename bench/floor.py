"""The floor of the pipeline benchmark: the least a service can do for the same events.

A plain kafka-python consumer in one consumer group that, for each event, does the same work
carecoord does for an event of the same kind, and nothing else:

- sends the very FHIR requests carecoord sent (captured by the proxy from one calibration
  patient, that patient's id replaced by the event's; a transaction with carecoord's
  `Prefer: return=representation`), with one httpx client (kept-alive connections), and
  parses each answer's JSON (`response.json()`);
- produces the very outbound messages carecoord produced for it (the same value bytes, patient
  id replaced, the same key, header and topic: the outbound topic, or the input topic for a
  follow-up), with carecoord's producer settings (acks=all, linger_ms 5), and waits for their
  acknowledgement before counting the event done, as carecoord does before marking its offset;
- commits the consumed offsets itself every second once the poll's events are done (carecoord's
  `commit_interval_seconds`), not by auto-commit ahead of the work.

The keys of one poll's records are handled at the same time (16 threads, as many as the
runtime's default max_in_flight), each key's events in order, so its wall time and idle overhead
are comparable with the runtime's. No validation, no models, no retries, no outbox: carecoord's
CPU per event against this one's is the cost of everything carecoord adds.

Templates (bench/pipeline.py writes them): {"patient": <calibration id>, "by_kind":
{<event-id suffix, e.g. "att-3">: [[method, path, body], ...]}, "produced": {<suffix>:
[["out" | "in", value], ...]}}; an event's kind is its id with the patient's id and "-" taken
off the front (bench/pipeline.py `events_of` names them so). If-Match preconditions are dropped
(the versions they named belong to another patient's resources), as in the raw-transaction
replay.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer

IN_FLIGHT = 16
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
COMMIT_INTERVAL = 1.0  # seconds, carecoord's RuntimeOptions.commit_interval_seconds
EVENT_HEADERS = [("content-type", b"application/cloudevents+json")]
TRANSACTION = {"Prefer": "return=representation"}  # as carecoord sends its transactions
Requests = dict[str, list[tuple[str, str, bytes, dict[str, str]]]]
Produced = dict[str, list[tuple[str, bytes]]]


def _strip_if_match(body: bytes) -> bytes:
    if b"ifMatch" not in body:
        return body
    bundle = json.loads(body)
    for entry in bundle.get("entry") or []:
        entry.get("request", {}).pop("ifMatch", None)
    return json.dumps(bundle).encode()


def headers_of(method: str, path: str, body: bytes) -> dict[str, str]:
    """The headers carecoord adds to this request beside HEADERS (a transaction's Prefer)."""
    if method == "POST" and path in ("", "/") and json.loads(body).get("type") == "transaction":
        return TRANSACTION
    return {}


def load_templates(path: str) -> tuple[str, Requests, Produced]:
    data = json.loads(Path(path).read_text())
    by_kind = {
        kind: [
            (m, p, _strip_if_match(b.encode()), headers_of(m, p, b.encode()))
            for m, p, b in requests
        ]
        for kind, requests in data["by_kind"].items()
    }
    produced = {
        kind: [(where, value.encode()) for where, value in messages]
        for kind, messages in data.get("produced", {}).items()
    }
    return data["patient"], by_kind, produced


def run_floor(
    bootstrap: str,
    fhir_url: str,
    topic: str,
    group: str,
    templates: str,
    report_until: Callable[[threading.Event, Callable[[], tuple[int, int]]], None],
) -> None:
    template_patient, by_kind, produced = load_templates(templates)
    old = template_patient.encode()
    topics = {"out": f"{topic}-out", "in": topic}  # bench/drain.py's outbound topic
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    client = httpx.Client(base_url=fhir_url, timeout=30, headers=HEADERS, limits=limits)
    pool = ThreadPoolExecutor(IN_FLIGHT)
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    done = [0]
    reporter = threading.Thread(target=report_until, args=(stop, lambda: (done[0], 0)))
    reporter.start()
    print("ready", flush=True)
    lock = threading.Lock()

    def one_key(key: bytes, values: list[bytes]) -> None:
        for value in values:
            kind = handle(client, by_kind, old, json.loads(value))
            messages = produced.get(kind, ())
            acks = [
                producer.send(topics[w], key=key, value=v.replace(old, key), headers=EVENT_HEADERS)
                for w, v in messages
            ]
            for ack in acks:
                ack.get(timeout=30)
            with lock:
                done[0] += 1

    committed = time.monotonic()
    while not stop.is_set():
        by_key: dict[bytes, list[bytes]] = {}
        for records in consumer.poll(timeout_ms=100).values():
            for record in records:
                by_key.setdefault(record.key, []).append(record.value)
        list(pool.map(one_key, by_key.keys(), by_key.values()))
        if time.monotonic() - committed >= COMMIT_INTERVAL:
            consumer.commit()  # the positions polled so far: all of their events are done
            committed = time.monotonic()
    pool.shutdown()
    consumer.commit()
    consumer.close()
    producer.close()
    client.close()
    reporter.join()


def handle(
    client: httpx.Client,
    by_kind: Requests,
    old: bytes,
    event: dict[str, Any],
) -> str:
    """Send the event kind's requests; return its kind."""
    patient = str(event["subject"]).removeprefix("Patient/")
    kind = str(event["id"])[len(patient) + 1 :]
    new = patient.encode()
    for method, path, body, headers in by_kind[kind]:
        url = path.replace(old.decode(), patient)
        content = body.replace(old, new) if body else None
        r = client.request(method, url, content=content, headers=headers)
        if r.content:
            r.json()
    return kind
