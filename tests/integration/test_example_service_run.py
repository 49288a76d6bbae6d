"""`carecoord run` as the examples/service Deployment runs it, scaled: two instances with the same
consumer group, configured only by environment variables, both live and ready on their health
ports, sharing the input topic's partitions; SIGTERM stops each cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from carecoord.core.envelope import new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.producer import EventProducer
from carecoord.fhir.client import FhirClient
from carecoord.local import free_port
from support.waiting import wait_for

pytestmark = pytest.mark.integration


def _status(port: int, path: str) -> int | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return None


def test_two_instances_in_one_consumer_group(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(
        CARECOORD_KAFKA_BOOTSTRAP=kafka_bootstrap, CARECOORD_FHIR_BASE_URL=fhir_base_url,
        CARECOORD_GROUP_ID=f"svc-{unique}", CARECOORD_TOPIC_IN=f"svc-in-{unique}",
        CARECOORD_TOPIC_OUT=f"svc-out-{unique}", CARECOORD_TOPIC_DLQ=f"svc-dlq-{unique}",
        CARECOORD_HEALTH_HOST="127.0.0.1", CARECOORD_SWEEPER_INTERVAL="0",
        CARECOORD_HANDLERS_ENABLED="enrolment",
        CARECOORD_KAFKA_OPTIONS='{"create_topics_partitions": 4, "session_timeout_ms": 6000,'
        ' "heartbeat_interval_ms": 1000}',
    )  # fmt: skip
    exe = str(Path(sys.executable).parent / "carecoord")
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen([exe, "run"], env={**env, "CARECOORD_HEALTH_PORT": str(port)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports
    ]  # fmt: skip
    try:
        for port in ports:
            wait_for(lambda p=port: _status(p, "/healthz") == 200, 60.0, "liveness")
            wait_for(lambda p=port: _status(p, "/readyz") == 200, 90.0, "readiness")
        patients = [f"svc-{unique}-{i}" for i in range(8)]
        producer = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap)).producer()
        try:
            EventProducer(producer, env["CARECOORD_TOPIC_IN"]).publish([
                new_event("carecoord.patient.enrolled", p,
                          {"program": "CCM", "provider": "Practitioner/dr-okafor",
                           "care_manager": f"Practitioner/cm-{unique}", "start": "2026-11-02"})
                for p in patients
            ])  # fmt: skip
        finally:
            producer.close()
        with FhirClient(fhir_base_url) as fhir:

            def enrolled() -> bool:
                return all(fhir.search("CarePlan", {"subject": f"Patient/{p}"}) for p in patients)

            wait_for(enrolled, 90.0, "every patient enrolled by one of the instances")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    assert codes == [0, 0]
