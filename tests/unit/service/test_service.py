"""The service shell with the in-memory broker: metrics on /metrics, health, JSON logs, jobs."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import Effects, FhirWrite
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.events.broker import Message
from carecoord.events.memory import InMemoryBroker
from carecoord.handlers.loader import HandlerTable
from carecoord.service.app import PeriodicRunner, Service, plugin_periodic_jobs, runtime_options
from carecoord.service.health import HealthServer
from carecoord.service.logging import configure_logging
from carecoord.settings import load_settings
from support.waiting import wait_for


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("CARECOORD_"):
            monkeypatch.delenv(name)


class NullFhir:
    def __init__(self) -> None:
        self.applied: list[Sequence[FhirWrite]] = []

    def read(self, resource_type: str, resource_id: str) -> Resource:
        raise AssertionError("not used")

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        return []

    def apply(self, writes: Sequence[FhirWrite]) -> object:
        self.applied.append(writes)
        return None


def greet(event: CloudEvent, ctx: HandlerContext) -> Effects:
    effects = Effects()
    effects.emit("test.greeted", event.subject or "", {"n": ctx.config["n"]}, f"{event.id}:g")
    return effects


SPEC = HandlerSpec("greeter", ("test.greet",), greet, default_config={"n": 1})


def settings(**kw: object):  # type: ignore[no-untyped-def]
    return load_settings(
        kafka_bootstrap="memory",
        fhir_base_url="http://fhir.invalid/fhir",
        health_host="127.0.0.1",
        health_port=0,
        topic_in="in",
        topic_out="out",
        topic_dlq="dlq",
        kafka_options={"poll_timeout_seconds": 0.02, "commit_interval_seconds": 0.02},
        **kw,
    )


def metric(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_metrics_and_health_after_processing() -> None:
    broker = InMemoryBroker(default_partitions=2)
    table = HandlerTable(specs=(SPEC,), configs={"greeter": {"n": 7}}, known=("greeter",))
    service = Service(settings(), handlers=table, fhir=NullFhir(), broker=broker)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: service.health is not None, 10.0, "the health server", interval=0.02)
        assert service.health is not None
        base = f"http://127.0.0.1:{service.health.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        wait_for(
            lambda: httpx.get(f"{base}/readyz").status_code == 200,
            10.0,
            "/readyz to answer 200",
            interval=0.02,
        )

        good = new_event("test.greet", "p1", {}, id="e1").to_json_bytes()
        unknown = new_event("test.nobody", "p2", {}, id="e2").to_json_bytes()
        broker.producer().send_all([Message("in", b"p1", good), Message("in", b"p2", unknown)], 5)

        def done() -> bool:
            text = httpx.get(f"{base}/metrics").text
            return metric(text, "carecoord_events_dead_lettered_total") >= 1 and (
                metric(text, "carecoord_events_processed_total") >= 1
            )

        wait_for(done, 10.0, "the events to be processed", interval=0.02)
        text = httpx.get(f"{base}/metrics").text
        assert 'event_type="test.greet"' in text
        assert 'error_type="MalformedEvent"' in text
        assert metric(text, "carecoord_events_consumed_total") == 2
        assert metric(text, 'carecoord_handler_seconds_count{handler="greeter"}') == 1
        assert metric(text, "carecoord_events_in_flight") == 0
        out = [json.loads(r.value or b"") for r in broker.records("out")]
        assert [(e["type"], e["data"]) for e in out] == [("test.greeted", {"n": 7})]
    finally:
        service.request_stop()
        thread.join(15)
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz")


def test_readyz_is_503_until_ready() -> None:
    ready = threading.Event()
    with HealthServer(ready=ready.is_set, metrics=lambda: b"", host="127.0.0.1", port=0) as h:
        url = f"http://127.0.0.1:{h.port}"
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200
        ready.set()
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.get(f"{url}/nope").status_code == 404


def test_kafka_options_reach_runtime_and_kafka() -> None:
    s = load_settings(
        kafka_bootstrap="b:9092",
        kafka_options={"session_timeout_ms": 6000, "fetch_min_bytes": 10},
        concurrency=3,
        retry_budget=12,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="u",
        kafka_sasl_password="pw",
        need_fhir=False,
    )
    opts = runtime_options(s)
    assert (opts.kafka.session_timeout_ms, opts.max_in_flight, opts.retry_budget_seconds) == (
        6000,
        3,
        12,
    )
    common = opts.kafka.common()
    assert common["fetch_min_bytes"] == 10
    assert common["sasl_plain_password"] == "pw"
    assert "pw" not in repr(opts)


def test_periodic_jobs_run_and_survive_failures() -> None:
    calls: list[str] = []

    def flaky() -> None:
        calls.append("x")
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    runner = PeriodicRunner([(0.01, flaky)]).start()
    try:
        wait_for(lambda: len(calls) >= 3, 10.0, "three periodic runs", interval=0.02)
    finally:
        runner.close()


def test_json_logs_carry_extra_ids() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        logging.getLogger("carecoord.x").info("processed", extra={"event_id": "e1", "offset": 3})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["msg"], line["event_id"], line["offset"], line["level"]) == (
        "processed",
        "e1",
        3,
        "INFO",
    )


def test_plugin_periodic_jobs_follow_the_sweeper_interval_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"cc_jobs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "def job():\n    pass\n\ndef periodic_jobs(service):\n    return [(300.0, job)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def jobs(**kw: object) -> list[float]:
        service = SimpleNamespace(settings=settings(**kw))
        return [interval for interval, _ in plugin_periodic_jobs(service, module)]  # type: ignore[arg-type]

    assert jobs() == [300.0]
    assert jobs(sweeper_interval=60) == [60.0]
    assert jobs(sweeper_interval=0) == []
    assert plugin_periodic_jobs(SimpleNamespace(), "cc_no_such_jobs_module") == []  # type: ignore[arg-type]


def test_fhir_changes_only_for_an_enabled_handler_are_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Notifications and the poller translate every followed change; with the assessments
    # handler switched off, a completed QuestionnaireResponse's event would be a dead letter.
    broker = InMemoryBroker(default_partitions=1)
    table = HandlerTable(specs=(SPEC,), configs={"greeter": {"n": 1}}, known=("greeter",))
    service = Service(settings(), handlers=table, fhir=NullFhir(), broker=broker)
    greet_event = new_event("test.greet", "p1", {}, id="g1")
    unhandled = new_event(
        "carecoord.assessment.completed",
        "p1",
        {"questionnaire_response": "QuestionnaireResponse/qr1"},
        id="a1",
    )
    with caplog.at_level(logging.INFO, logger="carecoord.service.app"):
        service.publish_changes([unhandled, greet_event])
    published = [CloudEvent.from_json_bytes(r.value).id for r in broker.records("in")]
    assert published == ["g1"]
    (record,) = [r for r in caplog.records if "no enabled handler" in r.getMessage()]
    assert record.event_types == ["carecoord.assessment.completed"]  # type: ignore[attr-defined]
