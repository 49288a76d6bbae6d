"""A FHIR server that answers /metadata, but not with a CapabilityStatement, is up with unknown
capabilities: ONE warning, the conservative request plan, and events are processed. A server
answering 503 is down. (Issue 22: such a server used to leave the service not ready forever.)"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.events.broker import Message
from carecoord.events.memory import InMemoryBroker
from carecoord.fhir.batch_reads import declares_batch
from carecoord.fhir.capabilities import declares_include, statement_of
from carecoord.fhir.client import FhirClient
from carecoord.fhir.transport import Backoff
from carecoord.handlers.loader import HandlerTable
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.waiting import wait_for

BASE = "http://fhir.test/fhir"
WARNING = "FHIR server has no valid CapabilityStatement: capabilities unknown"

Answer = Callable[[httpx.Request], httpx.Response]

NOT_A_STATEMENT: dict[str, Answer] = {
    "other-json": lambda r: httpx.Response(200, json={"resourceType": "Bundle", "type": "batch"}),
    "html-page": lambda r: httpx.Response(200, text="<html>gateway</html>",
                                          headers={"Content-Type": "text/html"}),
    "not-found": lambda r: httpx.Response(404, json={"resourceType": "OperationOutcome"}),
}  # fmt: skip


class Server:
    """/metadata answered by `metadata`; every search an empty searchset."""

    def __init__(self, metadata: Answer) -> None:
        self.metadata = metadata
        self.pings = 0
        self.statements = 0  # full /metadata requests (not the _summary ping)
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            with self.lock:
                if request.url.params.get("_summary"):
                    self.pings += 1
                else:
                    self.statements += 1
            return self.metadata(request)
        empty = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
        return httpx.Response(200, json=empty)


def client(server: Server) -> FhirClient:
    return FhirClient(BASE, transport=httpx.MockTransport(server), retry_budget=0.05,
                      backoff=Backoff(0.001, 0.002), sleep=lambda s: None)  # fmt: skip


def greet(event: CloudEvent, ctx: HandlerContext) -> Effects:
    effects = Effects()
    effects.emit("test.greeted", event.subject or "", {}, f"{event.id}:g")
    return effects


TABLE = HandlerTable(
    specs=(HandlerSpec("greeter", ("test.greet",), greet),), configs={"greeter": {}},
    known=("greeter",),
)  # fmt: skip


def _accept(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed: the test is over
            return
        conn.close()


@pytest.fixture
def service_with(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[Server], tuple[Service, InMemoryBroker]]]:
    started: list[tuple[Service, threading.Thread]] = []
    # The broker's probe opens a TCP connection to the bootstrap: a listener accepts them.
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_accept, args=(listener,), daemon=True).start()
    bootstrap = f"127.0.0.1:{listener.getsockname()[1]}"
    for name in [n for n in os.environ if n.startswith("CARECOORD_")]:
        monkeypatch.delenv(name)

    def start(server: Server) -> tuple[Service, InMemoryBroker]:
        settings = load_settings(
            kafka_bootstrap=bootstrap, fhir_base_url=BASE, health_host="127.0.0.1",
            health_port=0, topic_in="in", topic_out="out", topic_dlq="dlq",
            health_check_interval=0.02,
            kafka_options={"poll_timeout_seconds": 0.02, "commit_interval_seconds": 0.02},
        )  # fmt: skip
        broker = InMemoryBroker()
        service = Service(settings, handlers=TABLE, fhir=client(server), broker=broker)
        thread = threading.Thread(target=service.run, daemon=True)
        thread.start()
        started.append((service, thread))
        return service, broker

    yield start
    for service, thread in started:
        service.request_stop()
        thread.join(30)
    listener.close()


@pytest.mark.parametrize("answer", NOT_A_STATEMENT.values(), ids=NOT_A_STATEMENT.keys())
def test_no_capability_statement_means_unknown_capabilities_not_an_outage(
    answer: Answer,
    service_with: Callable[[Server], tuple[Service, InMemoryBroker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = Server(answer)
    service, broker = service_with(server)
    wait_for(service.ready, 10, "readiness with unknown capabilities", interval=0.02)

    event = new_event("test.greet", "p1", {}, id="e1")
    broker.producer().send_all([Message("in", b"p1", event.to_json_bytes())], 5)
    wait_for(lambda: list(broker.read_topic("out", timeout=0.1)), 10, "the event processed")

    wait_for(lambda: server.pings >= 5, 10, "several readiness probes", interval=0.02)
    assert service.ready()
    warnings = [r for r in caplog.records if r.getMessage().startswith(WARNING)]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert server.statements == 1  # asked once: unknown is remembered, not re-fetched per probe
    assert not [r for r in caplog.records if r.getMessage() == "dependency probe failed"]


def test_unknown_capabilities_take_the_conservative_plan() -> None:
    server = Server(NOT_A_STATEMENT["other-json"])
    fhir = client(server)
    assert statement_of(fhir) is None
    assert not declares_batch(fhir)
    assert not declares_include(fhir, "CarePlan", "CarePlan:care-team")
    assert server.statements == 1


def test_a_server_answering_503_is_down(
    service_with: Callable[[Server], tuple[Service, InMemoryBroker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = Server(lambda r: httpx.Response(503, text="maintenance"))
    service, _ = service_with(server)
    wait_for(lambda: server.pings >= 3, 20, "probes of the unavailable server", interval=0.02)
    assert not service.ready()
    assert not service.fhir_availability.up
    failed = [r for r in caplog.records if r.getMessage() == "dependency probe failed"]
    assert failed and failed[0].levelno == logging.WARNING  # the first says why, at WARNING
    assert all(r.levelno == logging.INFO for r in failed[1:])


def test_refused_credentials_are_not_unknown_capabilities(
    service_with: Callable[[Server], tuple[Service, InMemoryBroker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The ping counts any answer as "up"; a 401 on the statement is a setting to fix, so the
    # service waits (not ready, nothing consumed, nothing dead-lettered) instead of going on.
    caplog.set_level(logging.INFO)
    server = Server(lambda r: httpx.Response(401, json={"resourceType": "OperationOutcome"}))
    service, _ = service_with(server)
    wait_for(lambda: server.statements >= 3, 20, "probes of the refusing server", interval=0.02)
    assert not service.ready()
    assert not [r for r in caplog.records if r.getMessage().startswith(WARNING)]
    failed = [r for r in caplog.records if r.getMessage() == "dependency probe failed"]
    assert failed and getattr(failed[0], "error", None) == "FhirUnauthorized"
