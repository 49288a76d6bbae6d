"""The CapabilityStatement is fetched once per client, however many threads ask at once, and a
server that is down while it is fetched is not taken for one that has no statement."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Effects
from carecoord.errors import CarecoordError
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import FhirServerError, FhirTransportError
from carecoord.fhir.transport import Backoff

BASE = "https://fhir.example.org/r4"
STATEMENT = {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
             "date": "2026-01-01", "fhirVersion": "4.0.1", "format": ["json"]}  # fmt: skip


def transaction_response(request: httpx.Request) -> httpx.Response:
    n = len(json.loads(request.content)["entry"])
    entries = [{"response": {"status": "201 Created", "location": f"Task/{i}/_history/1"}}
               for i in range(n)]  # fmt: skip
    body = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return httpx.Response(200, json=body, headers={"Content-Type": "application/fhir+json"})


class Server:
    def __init__(self) -> None:
        self.metadata = 0
        self.pings = 0
        self.down = False
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path.endswith("/metadata"):
            with self.lock:
                if request.url.params.get("_summary"):
                    self.pings += 1
                else:
                    self.metadata += 1
            time.sleep(0.05)  # long enough for every thread to ask before the first answer
            return httpx.Response(200, json=STATEMENT)
        return transaction_response(request)


def client(server: Server) -> FhirClient:
    return FhirClient(BASE, transport=httpx.MockTransport(server), retry_budget=0.05,
                      backoff=Backoff(0.001, 0.002), sleep=lambda s: None)  # fmt: skip


def effects(n: int) -> Effects:
    e = Effects()
    task = Task(
        status="requested", intent="order", identifier=[{"system": "urn:t", "value": str(n)}]
    )
    e.create(task, "urn:t", str(n))
    return e


def test_concurrent_first_writes_fetch_the_statement_once() -> None:
    server = Server()
    fhir = client(server)
    with ThreadPoolExecutor(9) as pool:
        list(pool.map(lambda n: fhir.apply(effects(n).writes), range(9)))
    assert server.metadata == 1
    assert fhir.capabilities().get_resource_type() == "CapabilityStatement"
    assert server.metadata == 1  # the readiness probe shares it


def test_ping_is_one_cheap_request_without_retries() -> None:
    server = Server()
    fhir = client(server)
    fhir.ping()
    assert (server.pings, server.metadata) == (1, 0)
    server.down = True
    with pytest.raises(FhirTransportError) as err:
        fhir.ping()
    assert err.value.unavailable


def test_a_server_down_while_the_statement_is_fetched_is_not_taken_as_statement_less() -> None:
    server = Server()
    server.down = True
    fhir = client(server)
    with pytest.raises(FhirTransportError):
        fhir.apply(effects(1).writes)
    server.down = False
    fhir.apply(effects(2).writes)
    assert server.metadata == 1  # learned once the server answered, not cached as "none"


def test_the_backoff_stays_at_its_maximum_however_many_attempts_failed() -> None:
    # The test client above retries without sleeping, so a down server is retried thousands of
    # times within its budget: the delay must not overflow (2.0 ** 1024 does).
    backoff = Backoff(0.001, 0.002)
    assert all(0.001 <= backoff.delay(n) <= 0.002 for n in (2, 1025, 10**6))


def test_5xx_and_429_are_unavailable_but_not_404() -> None:
    def answer(status: int) -> Any:
        return lambda request: httpx.Response(status)

    for status, unavailable in ((500, True), (503, True), (429, True), (404, False)):
        fhir = FhirClient(BASE, transport=httpx.MockTransport(answer(status)), retry_budget=0)
        try:
            fhir.capability_statement()
        except CarecoordError as exc:
            assert exc.unavailable is unavailable, status
            if status in (503, 429):
                assert isinstance(exc, FhirServerError) and exc.declared_unavailable
        else:
            raise AssertionError(f"{status} did not raise")
