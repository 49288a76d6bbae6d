from __future__ import annotations

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

pytestmark = pytest.mark.integration


def test_fhir_server_answers_capability_statement(fhir_base_url: str) -> None:
    r = httpx.get(f"{fhir_base_url}/metadata", timeout=10)
    assert r.status_code == 200
    assert r.json()["resourceType"] == "CapabilityStatement"


def test_kafka_round_trip(kafka_bootstrap: str, unique: str) -> None:
    topic = f"smoke-{unique}"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    producer.send(topic, key=b"p1", value=b"hello").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=15000,
    )  # fmt: skip
    first = next(iter(consumer), None)
    consumer.close()
    assert first is not None and first.value == b"hello"
