"""Shared pieces of the default-settings and outage tests: catalog events for the outreach flow, a
`carecoord run` subprocess, and reading what the service left on the servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection, Message
from carecoord.fhir.client import FhirClient
from support.enrolment import consented


def enrolled(patient: str) -> CloudEvent:
    body = consented({"program": "CCM", "provider": "Practitioner/doc", "start": "2024-05-03",
                      "care_manager": "Practitioner/cm-outage"})  # fmt: skip
    return new_event("carecoord.patient.enrolled", patient, body, id=f"enrol-{patient}")


def unanswered(patient: str, n: int) -> CloudEvent:
    body = {"channel": "phone", "outcome": "no-answer", "by": "Practitioner/cm-outage",
            "attempted_at": f"2024-05-{10 + n:02d}T10:00:00Z"}  # fmt: skip
    return new_event("carecoord.outreach.attempted", patient, body, id=f"att-{patient}-{n}")


def produce(bootstrap: str, topic: str, events: list[CloudEvent]) -> None:
    producer = KafkaBroker(KafkaConnection(bootstrap=bootstrap)).producer()
    try:
        producer.send_all([Message(topic, e.key, e.to_json_bytes()) for e in events], 30)
    finally:
        producer.close()


def read(bootstrap: str, topic: str) -> list[Any]:
    return list(KafkaBroker(KafkaConnection(bootstrap=bootstrap)).read_topic(topic, timeout=3.0))


def escalations(fhir_url: str, patient: str) -> list[Any]:
    with FhirClient(fhir_url) as fhir:
        tasks = fhir.search("Task", {"patient": f"Patient/{patient}"})
    return [t for t in tasks if t.code and t.code.coding[0].code == "outreach-escalation"]


def count(fhir_url: str, resource_type: str, patient: str) -> int:
    with FhirClient(fhir_url) as fhir:
        return len(fhir.search(resource_type, {"patient": f"Patient/{patient}"}))


def carecoord_run(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`carecoord run` as a user starts it; stderr (JSON logs) to `log`, which nobody has to read
    while it runs (a pipe would fill up and block the service)."""
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", "from carecoord.cli import app; app()", "run"],
            env=env, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def clean_env(**settings: str) -> dict[str, str]:
    """The test process's environment without any CARECOORD_* variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(settings)
    return env


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def metric(health: str, name: str, labels: str) -> float | None:
    response = get(f"{health}/metrics")
    if response is None:
        return None
    for line in response.text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None
