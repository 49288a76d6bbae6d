"""The service as an operator meets it: default settings, and FHIR outages longer than any retry
budget (down mid-stream for 3 minutes; down at start-up). Nothing may be dead-lettered for an
outage, every effect must land exactly once, and /readyz and /metrics must show the outage."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecoord.core.envelope import CloudEvent
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.local import LocalFhir, free_port, start_fhir, start_kafka
from carecoord.service.app import Service, plugin_periodic_jobs
from carecoord.settings import load_settings
from support.fhir_proxy import FhirProxy
from support.outage import (
    carecoord_run,
    clean_env,
    count,
    enrolled,
    escalations,
    get,
    metric,
    produce,
    read,
    unanswered,
)
from support.tcp_proxy import TcpProxy
from support.waiting import wait_for

pytestmark = pytest.mark.integration

ESCALATED = "carecoord.outreach.escalated"


def test_run_with_only_the_required_settings_escalates_three_unanswered_attempts(
    kafka_bootstrap: str, fhir_base_url: str, unique: str, tmp_path: Path
) -> None:
    # The defaults' topics, created as an operator would before the first start.
    defaults = {"carecoord.events": 2, "carecoord.outbound": 2, "carecoord.dlq": 2}
    KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap)).ensure_topics(defaults)
    port = free_port()
    env = clean_env(
        CARECOORD_KAFKA_BOOTSTRAP=kafka_bootstrap,
        CARECOORD_FHIR_BASE_URL=fhir_base_url,
        CARECOORD_HEALTH_PORT=str(port),
        # Required while the referrals handler is on (checked at start-up; a Gravity referral
        # is requested by a PractitionerRole or an Organization): docs/configuration-errors.md
        CARECOORD_HANDLERS__referrals__organization="Organization/practice-dflt",
    )
    log = tmp_path / "run.log"
    proc = carecoord_run(env, log)
    patient = f"dflt-{unique}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"carecoord run exited: {log.read_text()[-3000:]}"
            response = get(f"http://127.0.0.1:{port}/readyz")
            return response is not None and response.status_code == 200

        wait_for(ready, 120, "/readyz with the default settings")
        produce(kafka_bootstrap, "carecoord.events",
                [enrolled(patient), *(unanswered(patient, n) for n in range(3))])  # fmt: skip
        wait_for(lambda: len(escalations(fhir_base_url, patient)) == 1, 120, "the escalation")

        def announced() -> list[CloudEvent]:
            events = [CloudEvent.from_json_bytes(r.value)
                      for r in read(kafka_bootstrap, "carecoord.outbound")]  # fmt: skip
            return [e for e in events if e.subject == f"Patient/{patient}"]

        mine = wait_for(announced, 60, "the escalated event")
        assert [e.type for e in mine] == [ESCALATED]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert proc.returncode == 0
    [started] = [line for line in lines if line["msg"] == "carecoord service starting"]
    assert started["settings"]["sweeper_interval"] == 300.0
    [scheduled] = [line for line in lines if line["msg"] == "periodic jobs scheduled"]
    assert scheduled["intervals"] == [300.0]
    assert count(fhir_base_url, "Communication", patient) == 3
    dead = [r for r in read(kafka_bootstrap, "carecoord.dlq") if r.key == patient.encode()]
    assert dead == []


@pytest.fixture
def own_fhir(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A FHIR server of this test's own, which it may stop and restart on the same database."""
    state: dict[str, object] = {"port": free_port(), "workdir": tmp_path / "fhir", "server": None}
    (tmp_path / "fhir").mkdir()
    yield state
    server = state["server"]
    if isinstance(server, LocalFhir):
        server.close()


def start(state: dict[str, object]) -> None:
    port, workdir = state["port"], state["workdir"]
    assert isinstance(port, int) and isinstance(workdir, Path)
    state["server"] = start_fhir(port, workdir=workdir)


def stop(state: dict[str, object]) -> None:
    server = state.pop("server")
    assert isinstance(server, LocalFhir)
    server.proc.kill()  # as a crash would: no graceful shutdown
    server.proc.wait(10)
    state["server"] = None


def service_for(kafka_bootstrap: str, fhir_url: str, unique: str) -> Service:
    """Default settings but for this test's topics and group, and a short group session (tansu
    joins a group in about half of it)."""
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_url,
        topic_in=f"out-in-{unique}",
        topic_out=f"out-out-{unique}",
        topic_dlq=f"out-dlq-{unique}",
        group_id=f"out-{unique}",
        health_host="127.0.0.1",
        health_port=0,
        kafka_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                       "create_topics_partitions": 3},
        handlers={"referrals": {"organization": "Organization/practice-out"}},
    )  # fmt: skip
    service = Service(settings)
    service.add_periodic_jobs(plugin_periodic_jobs(service))
    return service


def health_url(service: Service) -> str:
    wait_for(lambda: service.health is not None, 30, "the health server")
    assert service.health is not None
    return f"http://127.0.0.1:{service.health.port}"


def outlast_the_retry_budgets(service: Service, health: str, dependency: str) -> None:
    """Wait until the service itself has seen `dependency` down for longer than the FHIR client's
    and the runtime's retry budgets together: any event that an outage could wrongly dead-letter
    has been held past its budget by then."""
    settings = service.settings
    budgets = settings.retry_budget + settings.fhir_retry_budget
    label = f'dependency="{dependency}"'

    def outlasted() -> bool:
        down = metric(health, "carecoord_dependency_down_seconds", label)
        return down is not None and down > budgets

    wait_for(outlasted, budgets + 60, f"{dependency} down for longer than the retry budgets")


def readyz(health: str) -> int | None:
    response = get(f"{health}/readyz")
    return response.status_code if response is not None else None


@pytest.mark.timeout(600)
def test_fhir_down_for_three_minutes_mid_stream_loses_nothing_and_dead_letters_nothing(
    kafka_bootstrap: str, unique: str, own_fhir: dict[str, object]
) -> None:
    start(own_fhir)
    fhir_url = f"http://127.0.0.1:{own_fhir['port']}/fhir"
    service = service_for(kafka_bootstrap, fhir_url, unique)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    patients = [f"out-{unique}-{i}" for i in range(8)]
    topic = service.settings.topic_in
    try:
        health = health_url(service)
        wait_for(lambda: readyz(health) == 200, 90, "ready")
        produce(
            kafka_bootstrap, topic, [e for p in patients for e in (enrolled(p), unanswered(p, 0))]
        )
        wait_for(lambda: all(count(fhir_url, "Communication", p) == 1 for p in patients), 90,
                 "the first attempts")  # fmt: skip

        stop(own_fhir)
        down_at = time.monotonic()
        produce(kafka_bootstrap, topic, [unanswered(p, n) for n in (1, 2) for p in patients])
        wait_for(lambda: readyz(health) == 503, 90, "/readyz to report the outage")
        fhir_up = 'dependency="fhir"'
        assert metric(health, "carecoord_dependency_up", fhir_up) == 0.0
        time.sleep(max(0.0, 180 - (time.monotonic() - down_at)))
        assert readyz(health) == 503
        start(own_fhir)

        wait_for(lambda: all(len(escalations(fhir_url, p)) == 1 for p in patients), 180,
                 "every escalation after the outage")  # fmt: skip
        wait_for(lambda: readyz(health) == 200, 60, "ready again")
        assert metric(health, "carecoord_dependency_up", fhir_up) == 1.0
        outages = metric(health, "carecoord_dependency_outages_total", fhir_up)
        assert outages is not None and outages >= 1
    finally:
        service.request_stop()
        thread.join(60)
    for p in patients:  # every effect exactly once
        assert count(fhir_url, "Communication", p) == 3
        assert count(fhir_url, "CarePlan", p) == 1
        assert len(escalations(fhir_url, p)) == 1
    assert read(kafka_bootstrap, service.settings.topic_dlq) == []
    announced = [CloudEvent.from_json_bytes(r.value)
                 for r in read(kafka_bootstrap, service.settings.topic_out)]  # fmt: skip
    escalated = {e.subject for e in announced if e.type == ESCALATED}
    assert escalated == {f"Patient/{p}" for p in patients}


@pytest.mark.timeout(400)
def test_fhir_down_at_start_consumes_nothing_until_it_answers(
    kafka_bootstrap: str, unique: str, own_fhir: dict[str, object]
) -> None:
    fhir_url = f"http://127.0.0.1:{own_fhir['port']}/fhir"
    service = service_for(kafka_bootstrap, fhir_url, unique)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    patients = [f"start-{unique}-{i}" for i in range(5)]
    try:
        health = health_url(service)
        produce(kafka_bootstrap, service.settings.topic_in,
                [e for p in patients for e in (enrolled(p), unanswered(p, 0))])  # fmt: skip
        outlast_the_retry_budgets(service, health, "fhir")
        assert readyz(health) == 503
        assert metric(health, "carecoord_dependency_up", 'dependency="fhir"') == 0.0
        assert read(kafka_bootstrap, service.settings.topic_dlq) == []
        start(own_fhir)
        wait_for(lambda: all(count(fhir_url, "Communication", p) == 1 for p in patients), 120,
                 "every event once the server answers")  # fmt: skip
        wait_for(lambda: readyz(health) == 200, 60, "ready")
    finally:
        service.request_stop()
        thread.join(60)
    assert read(kafka_bootstrap, service.settings.topic_dlq) == []
    assert all(count(fhir_url, "CarePlan", p) == 1 for p in patients)


@pytest.mark.timeout(400)
def test_broker_down_for_a_minute_while_escalations_are_announced_dead_letters_nothing(
    fhir_base_url: str, unique: str
) -> None:
    """The broker goes away (every connection cut, none accepted) just after the third attempts
    were fetched: their FHIR writes land, but their escalations cannot be announced until the
    broker is back. Nothing may be dead-lettered, and every escalation is announced once."""
    proxy_port = free_port()
    kafka = start_kafka(advertised_port=proxy_port)  # clients only ever reach it via the proxy
    proxy = TcpProxy(proxy_port, kafka.port)
    bootstrap = f"127.0.0.1:{proxy_port}"
    slow_fhir = FhirProxy(fhir_base_url, delay=0.5)  # each escalation takes a few seconds
    service = service_for(bootstrap, slow_fhir.base_url, unique)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    patients = [f"brk-{unique}-{i}" for i in range(4)]
    topic = service.settings.topic_in
    try:
        health = health_url(service)
        wait_for(lambda: readyz(health) == 200, 90, "ready")
        produce(
            bootstrap,
            topic,
            [e for p in patients for e in (enrolled(p), unanswered(p, 0), unanswered(p, 1))],
        )
        wait_for(lambda: all(count(fhir_base_url, "Communication", p) == 2 for p in patients),
                 120, "the first two attempts")  # fmt: skip
        consumed = 'topic="' + topic + '"'

        def total_consumed() -> float:
            response = get(f"{health}/metrics")
            assert response is not None
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in response.text.splitlines()
                if line.startswith("carecoord_events_consumed_total{") and consumed in line
            )

        before = total_consumed()
        produce(bootstrap, topic, [unanswered(p, 2) for p in patients])
        wait_for(lambda: total_consumed() >= before + len(patients), 30, "the third attempts")
        proxy.down()
        wait_for(lambda: readyz(health) == 503, 60, "/readyz to report the broker outage")
        assert metric(health, "carecoord_dependency_up", 'dependency="kafka"') == 0.0
        outlast_the_retry_budgets(service, health, "kafka")
        proxy.up()
        wait_for(lambda: readyz(health) == 200, 120, "ready again")

        def announced() -> set[str | None]:
            events = [CloudEvent.from_json_bytes(r.value)
                      for r in read(bootstrap, service.settings.topic_out)]  # fmt: skip
            return {e.subject for e in events if e.type == ESCALATED}

        wait_for(lambda: announced() == {f"Patient/{p}" for p in patients}, 120,
                 "every escalation announced")  # fmt: skip
        assert read(bootstrap, service.settings.topic_dlq) == []
    finally:
        service.request_stop()
        thread.join(60)
        proxy.close()
        slow_fhir.close()
        kafka.close()
    for p in patients:
        assert count(fhir_base_url, "Communication", p) == 3
        assert len(escalations(fhir_base_url, p)) == 1
