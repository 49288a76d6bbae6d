"""OpenTelemetry spans and W3C trace context through the real runtime (in-memory broker, FhirClient
on an httpx.MockTransport), recorded with the SDK's InMemorySpanExporter: one consumer span per
event, a client span per FHIR request and a producer span for its emits under it, the parent
taken from the inbound event's `traceparent`, the emitted events carrying the trace on; and
carecoord still working, and forwarding the context, without opentelemetry installed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from carecoord.core import tracing
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.client import FhirClient
from carecoord.fhir.transport import Backoff
from carecoord.handlers.processing import HandlerProcessor
from carecoord.service.logging import JsonFormatter, LogContextFilter
from support.runtime import options, produce

BASE = "http://fhir.test/r4"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
INBOUND = f"00-{TRACE_ID}-{UPSTREAM_SPAN}-01"
log = logging.getLogger("carecoord.handlers.test_traced")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_tracer_provider(None)
        provider.shutdown()


def fhir_server(request: httpx.Request) -> httpx.Response:
    if request.method == "GET" and request.url.path == "/r4/Patient/p-9":
        body: dict[str, Any] = {"resourceType": "Patient", "id": "p-9", "meta": {"versionId": "1"}}
    elif request.method == "GET" and request.url.path == "/r4/Basic":  # the outbox lookup
        body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    else:
        return httpx.Response(404)
    return httpx.Response(200, json=body, headers={"Content-Type": "application/fhir+json"})


def reading_handler(event: CloudEvent, ctx: HandlerContext) -> Effects:
    ctx.fhir.read("Patient", event.patient_id or "")
    log.info("patient read")
    effects = Effects()
    effects.emit("test.traced.done", event.subject or "", {}, f"{event.id}/done")
    return effects


def run_one(event: CloudEvent, log_stream: io.StringIO | None = None) -> InMemoryBroker:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", event.patient_id, event.to_json_bytes())
    handler = logging.StreamHandler(log_stream or io.StringIO())
    handler.addFilter(LogContextFilter())  # what configure_logging installs
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    spec = HandlerSpec("reader", ("test.traced",), reading_handler)
    try:
        with FhirClient(BASE, transport=httpx.MockTransport(fhir_server)) as fhir:
            runtime = EventRuntime(HandlerProcessor([spec], fhir), options(), broker=broker)
            assert runtime.run_until_idle(timeout=10.0)
    finally:
        log.removeHandler(handler)
        log.setLevel(logging.NOTSET)
    return broker


def by_kind(finished: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in finished if s.kind == kind]


def test_an_event_span_has_the_fhir_requests_and_the_produce_under_it(
    spans: InMemorySpanExporter,
) -> None:
    stream = io.StringIO()
    event = new_event("test.traced", "p-9", {}, id="evt-9").model_copy(
        update={"traceparent": INBOUND, "tracestate": "vendor=abc"}
    )
    broker = run_one(event, stream)
    finished = spans.get_finished_spans()

    (consumer,) = by_kind(finished, SpanKind.CONSUMER)
    assert consumer.name == "process in"
    assert consumer.parent is not None and consumer.parent.is_remote
    assert f"{consumer.parent.span_id:016x}" == UPSTREAM_SPAN
    assert f"{consumer.context.trace_id:032x}" == TRACE_ID
    assert consumer.context.trace_state.get("vendor") == "abc"
    assert dict(consumer.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "in",
        "messaging.destination.partition.id": "0",
        "messaging.consumer.group.name": "g",
        "messaging.kafka.offset": 0,
        "messaging.message.id": "evt-9",
        "cloudevents.event_id": "evt-9",
        "cloudevents.event_type": "test.traced",
        "carecoord.handlers": ("reader",),
    }
    assert consumer.status.status_code == StatusCode.UNSET

    requests = by_kind(finished, SpanKind.CLIENT)
    assert [(s.name, s.attributes["http.response.status_code"]) for s in requests] == [  # type: ignore[index]
        ("GET /r4/Patient/{id}", 200),
        ("GET /r4/Basic", 200),
    ]
    read = requests[0].attributes or {}
    assert (read["http.request.method"], read["url.template"], read["server.address"]) == (
        "GET",
        "/r4/Patient/{id}",
        "fhir.test",
    )
    assert read["carecoord.fhir.resource_type"] == "Patient"
    (send,) = by_kind(finished, SpanKind.PRODUCER)
    assert send.name == "send out"
    assert send.attributes is not None and send.attributes["messaging.message.id"] == "evt-9/done"
    for child in [*requests, send]:
        assert child.parent is not None and child.parent.span_id == consumer.context.span_id
    # No id, no query string (the outbox search's identifier) in any span.
    texts = json.dumps([dict(s.attributes or {}) for s in finished] + [s.name for s in finished])
    assert "p-9" not in texts and "?" not in texts and "identifier" not in texts

    (out,) = broker.records("out")
    emitted = CloudEvent.from_json_bytes(out.value)
    assert emitted.traceparent == f"00-{TRACE_ID}-{send.context.span_id:016x}-01"
    assert emitted.tracestate == "vendor=abc"

    (line,) = [json.loads(x) for x in stream.getvalue().splitlines() if "patient read" in x]
    assert line["trace_id"] == TRACE_ID
    assert line["span_id"] == f"{consumer.context.span_id:016x}"
    assert line["event_id"] == "evt-9" and line["handler"] == "reader"


def test_an_event_without_trace_context_starts_a_trace(spans: InMemorySpanExporter) -> None:
    broker = run_one(new_event("test.traced", "p-9", {}, id="evt-10"))
    (consumer,) = by_kind(spans.get_finished_spans(), SpanKind.CONSUMER)
    assert consumer.parent is None
    (out,) = broker.records("out")
    emitted = CloudEvent.from_json_bytes(out.value)
    assert emitted.traceparent is not None
    assert emitted.traceparent.split("-")[1] == f"{consumer.context.trace_id:032x}"


def test_without_a_tracer_provider_the_inbound_context_is_forwarded() -> None:
    # opentelemetry-api installed but no SDK configured: nothing is recorded, the context goes on.
    event = new_event("test.traced", "p-9", {}, id="evt-12").model_copy(
        update={"traceparent": INBOUND, "tracestate": "vendor=abc"}
    )
    (out,) = run_one(event).records("out")
    emitted = CloudEvent.from_json_bytes(out.value)
    assert (emitted.traceparent, emitted.tracestate) == (INBOUND, "vendor=abc")


def test_a_failed_event_span_names_the_error_type(spans: InMemorySpanExporter) -> None:
    # No handler for the type: MalformedEvent, dead-lettered; the span says so by type only.
    run_one(new_event("test.untraced", "p-9", {}, id="evt-11"))
    (consumer,) = by_kind(spans.get_finished_spans(), SpanKind.CONSUMER)
    assert consumer.status.status_code == StatusCode.ERROR
    assert consumer.attributes is not None
    assert consumer.attributes["error.type"] == "MalformedEvent"
    assert consumer.attributes["carecoord.dead_lettered"] is True
    assert "cloudevents.event_type" not in consumer.attributes  # not a type anyone handles


def test_each_fhir_attempt_is_a_span_and_an_error_status_fails_it(
    spans: InMemorySpanExporter,
) -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, json={"resourceType": "Patient"}),
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        step = answers.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    transport = httpx.MockTransport(answer)
    with FhirClient(BASE, transport=transport, backoff=Backoff(0.001, 0.002)) as fhir:
        fhir.read("Patient", "p-1")
    unreachable, unavailable, ok = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    assert [s.status.status_code for s in (unreachable, unavailable, ok)] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert (unreachable.attributes or {})["error.type"] == "ConnectError"
    assert (unavailable.attributes or {})["error.type"] == "503"
    assert (ok.attributes or {})["http.response.status_code"] == 200


def test_the_async_client_traces_its_requests_too(spans: InMemorySpanExporter) -> None:
    async def search() -> None:
        transport = httpx.MockTransport(fhir_server)
        async with AsyncFhirClient(BASE, transport=transport) as fhir:
            await fhir.search("Basic", {"identifier": "urn:x|p-9"})

    asyncio.run(search())
    (request,) = by_kind(spans.get_finished_spans(), SpanKind.CLIENT)
    assert request.name == "GET /r4/Basic"
    assert (request.attributes or {})["http.response.status_code"] == 200
    assert "p-9" not in json.dumps(dict(request.attributes or {}))


def test_trace_context_attributes_are_optional_and_checked() -> None:
    plain = new_event("test.traced", "p-9", {}, id="e")
    assert b"traceparent" not in plain.to_json_bytes()  # the v1 wire format as before
    raw = json.loads(plain.to_json_bytes())
    later = "01" + INBOUND[2:] + "-what-a-later-version-adds"  # W3C: parse the known part
    for good in [INBOUND, later]:
        parsed = CloudEvent.from_json_bytes(json.dumps({**raw, "traceparent": good}).encode())
        assert parsed.traceparent == good
    zero_trace = "00-" + "0" * 32 + "-00f067aa0ba902b7-01"
    for bad in [zero_trace, "ff" + INBOUND[2:], INBOUND + "-x", INBOUND.upper(), INBOUND[:-1], 7]:
        event = CloudEvent.from_json_bytes(
            json.dumps({**raw, "traceparent": bad, "tracestate": "a=b"}).encode()
        )
        assert (event.traceparent, event.tracestate) == (None, None)  # restart, never refuse


def test_carecoord_runs_without_opentelemetry() -> None:
    # A fresh interpreter where `import opentelemetry` fails, as when the extra is not installed.
    code = textwrap.dedent(
        f"""
        import io, json, logging, sys
        sys.modules["opentelemetry"] = None
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from support.runtime import Recorder, options, produce
        import carecoord, carecoord.cli  # the public API and the command import
        from carecoord.core import tracing
        from carecoord.core.envelope import CloudEvent, new_event
        from carecoord.events.memory import InMemoryBroker
        from carecoord.events.runtime import EventRuntime
        from carecoord.service.logging import configure_logging

        assert not tracing.ENABLED
        stream = io.StringIO()
        configure_logging("DEBUG", "json", stream)
        event = new_event("test.step", "p1", {{"n": 1}}, id="e1")
        event = event.model_copy(update={{"traceparent": {INBOUND!r}}})
        broker = InMemoryBroker(default_partitions=1)
        produce(broker, "in", "p1", event.to_json_bytes())
        assert EventRuntime(Recorder(emit=True), options(), broker=broker).run_until_idle(10.0)
        (out,) = broker.records("out")
        lines = [json.loads(x) for x in stream.getvalue().splitlines()]
        (processed,) = [x for x in lines if x["msg"] == "processed"]
        print(json.dumps({{
            "traceparent": CloudEvent.from_json_bytes(out.value).traceparent,
            "trace_id": processed.get("trace_id"),
            "span_id": processed.get("span_id"),
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    # Not a participant: the inbound context is forwarded as it came, and logged.
    assert result == {"traceparent": INBOUND, "trace_id": TRACE_ID, "span_id": None}
