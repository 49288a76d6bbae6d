"""Synthetic CloudEvents and a fast producer for them.

Events are built with json.dumps (not the pydantic model) so producing 250k of them stays cheap;
they are valid v1 envelopes all the same. Keys go round-robin over `keys` patient ids, so event i
is the (i // keys)-th event of its key: `seq` in the data lets a processor check per-key order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from carecoord.events.broker import KafkaBroker, KafkaConnection

EVENT_TYPE = "carecoord.outreach.attempted"


def patient_id(k: int) -> str:
    return f"bench-pt-{k:06d}"


def event_bytes(k: int, seq: int, *, sent_ns: int | None = None) -> bytes:
    """One realistic-sized (~450 bytes) outreach.attempted CloudEvent for patient `k`."""
    pid = patient_id(k)
    data: dict[str, Any] = {
        "channel": "phone",
        "outcome": "no-answer",
        "attempted_at": "2025-03-14T15:09:26+00:00",
        "by": "Practitioner/bench-cm-1",
        "outreach": f"CommunicationRequest/bench-cr-{k:06d}",
        "duration_minutes": 4,
        "seq": seq,
    }
    if sent_ns is not None:
        data["sent_ns"] = sent_ns
    return json.dumps(
        {
            "specversion": "1.0",
            "id": f"bench-{k:06d}-{seq:06d}",
            "source": "urn:carecoord:bench",
            "type": EVENT_TYPE,
            "time": "2025-03-14T15:09:27+00:00",
            "subject": f"Patient/{pid}",
            "datacontenttype": "application/json",
            "data": data,
        },
        separators=(",", ":"),
    ).encode()


def keyed(n: int, keys: int) -> Iterator[tuple[int, int]]:
    """(key index, per-key sequence) for n events over `keys` keys, round-robin."""
    for i in range(n):
        yield i % keys, i // keys


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    KafkaBroker(KafkaConnection(bootstrap=bootstrap)).ensure_topics(topics)


@dataclass
class Produced:
    events: int
    seconds: float


def produce(
    bootstrap: str, topic: str, n: int, keys: int, *, rate: float | None = None, stamp: bool = False
) -> Produced:
    """Produce n events (acks=1, batched) and wait for all acks. With `rate`, pace them evenly
    (events/s) and stamp each with its send time (`sent_ns`) for latency measurement."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=[bootstrap],
        client_id="carecoord-bench-producer",
        acks=1,
        linger_ms=0 if rate else 20,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=1,  # keeps per-key order under retries
    )
    started = time.perf_counter()
    try:
        for i, (k, seq) in enumerate(keyed(n, keys)):
            if rate:
                due = started + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            sent_ns = time.time_ns() if stamp else None
            producer.send(
                topic, key=patient_id(k).encode(), value=event_bytes(k, seq, sent_ns=sent_ns)
            )
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)
    return Produced(n, time.perf_counter() - started)
