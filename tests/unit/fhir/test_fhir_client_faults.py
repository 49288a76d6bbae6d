"""FhirClient against scripted faults (httpx.MockTransport): retries, budgets, error mapping."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.patient import Patient

from carecoord.fhir.async_client import AsyncFhirClient
from carecoord.fhir.client import FhirClient
from carecoord.fhir.errors import (
    FhirConflict,
    FhirError,
    FhirForbidden,
    FhirGone,
    FhirInvalid,
    FhirNotFound,
    FhirPreconditionFailed,
    FhirRateLimited,
    FhirResponseInvalid,
    FhirServerError,
    FhirTransportError,
    FhirUnauthorized,
)
from carecoord.fhir.transport import Backoff, parse_retry_after

BASE = "https://fhir.example.org/r4"
TINY = Backoff(initial=0.001, maximum=0.004)
PATIENT = {"resourceType": "Patient", "id": "p1", "meta": {"versionId": "3"}}

Handler = Callable[[httpx.Request], httpx.Response]


def fhir_json(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/fhir+json", **headers},
    )


def outcome(*issues: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


class Script:
    """Answers requests from a list of responses (or exceptions), recording what was asked."""

    def __init__(self, *steps: httpx.Response | Exception | Handler) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def client(script: Script, *, budget: float = 5.0, sleeps: list[float] | None = None) -> FhirClient:
    recorded = sleeps if sleeps is not None else []
    return FhirClient(
        BASE,
        transport=httpx.MockTransport(script),
        retry_budget=budget,
        backoff=TINY,
        sleep=recorded.append,
    )


# --- transient faults are retried ---------------------------------------------------------------


def test_a_burst_of_503_then_success_returns_the_resource() -> None:
    script = Script(
        fhir_json(503, outcome({"severity": "error", "code": "transient"})),
        httpx.Response(503, text="<html>busy</html>", headers={"Content-Type": "text/html"}),
        fhir_json(503, {}),
        fhir_json(200, PATIENT),
    )
    with client(script) as fhir:
        patient = fhir.read("Patient", "p1")
    assert patient.id == "p1"
    assert len(script.requests) == 4


def test_timeouts_and_connect_errors_are_retried_for_reads() -> None:
    script = Script(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        fhir_json(200, PATIENT),
    )
    with client(script) as fhir:
        assert fhir.read("Patient", "p1").id == "p1"
    assert len(script.requests) == 3


def test_429_waits_as_long_as_retry_after_says() -> None:
    sleeps: list[float] = []
    script = Script(
        fhir_json(429, outcome({"severity": "error", "code": "throttled"}), **{"Retry-After": "2"}),
        fhir_json(200, PATIENT),
    )
    with client(script, sleeps=sleeps) as fhir:
        assert fhir.read("Patient", "p1").id == "p1"
    assert sleeps == [2.0]


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now=lambda: now) == pytest.approx(7.0)
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("3") == 3.0


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    sleeps: list[float] = []
    script = Script(fhir_json(429, {}, **{"Retry-After": "120"}))
    with client(script, budget=10, sleeps=sleeps) as fhir, pytest.raises(FhirRateLimited) as err:
        fhir.read("Patient", "p1")
    assert err.value.transient
    assert err.value.retry_after == 120
    assert sleeps == []
    assert len(script.requests) == 1


def test_budget_exhausted_on_503_raises_a_transient_server_error() -> None:
    script = Script(fhir_json(503, outcome({"severity": "fatal", "code": "transient"})))
    fhir = FhirClient(BASE, transport=httpx.MockTransport(script), retry_budget=0.05, backoff=TINY)
    with fhir, pytest.raises(FhirServerError) as err:
        fhir.read("Patient", "p1")
    assert err.value.status == 503 and err.value.transient
    assert len(script.requests) > 1


def test_budget_exhausted_on_connect_errors_raises_a_transport_error() -> None:
    script = Script(httpx.ConnectError("refused"))
    fhir = FhirClient(BASE, transport=httpx.MockTransport(script), retry_budget=0.05, backoff=TINY)
    with fhir, pytest.raises(FhirTransportError) as err:
        fhir.read("Patient", "p1")
    assert err.value.transient
    assert err.value.request == "GET /r4/Patient/p1"
    assert len(script.requests) > 1


def test_500_is_not_retried() -> None:
    script = Script(fhir_json(500, outcome({"severity": "fatal", "code": "exception"})))
    with client(script) as fhir, pytest.raises(FhirServerError) as err:
        fhir.read("Patient", "p1")
    assert not err.value.transient
    assert len(script.requests) == 1


def test_retries_are_logged_with_path_and_status_only(caplog: pytest.LogCaptureFixture) -> None:
    script = Script(
        fhir_json(502, {}), fhir_json(200, {"resourceType": "Bundle", "type": "searchset"})
    )
    with caplog.at_level(logging.WARNING, logger="carecoord.fhir"), client(script) as fhir:
        fhir.search("Patient", {"name": "Jane Doe", "phone": "555-0100"})
    text = caplog.text
    assert "GET /r4/Patient" in text and "502" in text
    assert "Jane" not in text and "555" not in text


# --- writes that must not be repeated blindly -------------------------------------------------


def test_plain_create_is_not_retried_after_it_may_have_reached_the_server() -> None:
    for fault in (fhir_json(503, {}), fhir_json(504, {}), httpx.ReadTimeout("lost")):
        script = Script(fault, fhir_json(201, PATIENT))
        with client(script) as fhir, pytest.raises(FhirError) as err:
            fhir.create(Patient())
        assert err.value.transient  # the caller may decide; we did not repeat it
        assert len(script.requests) == 1


def test_plain_create_is_retried_when_it_never_left() -> None:
    script = Script(httpx.ConnectError("refused"), fhir_json(201, PATIENT))
    with client(script) as fhir:
        assert fhir.create(Patient()).id == "p1"
    assert len(script.requests) == 2


def test_plain_create_is_retried_after_429_because_it_was_refused() -> None:
    script = Script(fhir_json(429, {}), fhir_json(201, PATIENT))
    with client(script) as fhir:
        assert fhir.create(Patient()).id == "p1"
    assert len(script.requests) == 2


def test_conditional_create_and_if_match_update_are_retried() -> None:
    script = Script(httpx.ReadTimeout("lost"), fhir_json(200, PATIENT))
    with client(script) as fhir:
        fhir.create(Patient(), if_none_exist="identifier=urn:x|1")
    assert script.requests[-1].headers["If-None-Exist"] == "identifier=urn:x|1"
    assert len(script.requests) == 2

    script = Script(fhir_json(503, {}), fhir_json(200, PATIENT))
    with client(script) as fhir:
        fhir.update(Patient(id="p1"), if_match="2")
    assert script.requests[-1].headers["If-Match"] == 'W/"2"'
    assert len(script.requests) == 2


def test_transaction_with_an_unconditional_create_is_not_retried() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    script = Script(fhir_json(503, {}))
    with client(script) as fhir, pytest.raises(FhirServerError):
        fhir.transaction(bundle)
    assert len(script.requests) == 1

    bundle["entry"][0]["request"]["ifNoneExist"] = "identifier=urn:x|1"  # type: ignore[index]
    reply = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": "200 OK", "location": "Patient/p1/_history/3"}}],
    }
    script = Script(fhir_json(503, {}), fhir_json(200, reply))
    with client(script) as fhir:
        assert fhir.transaction(bundle)[0].reference == "Patient/p1"
    assert len(script.requests) == 2


# --- error mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, FhirInvalid),
        (422, FhirInvalid),
        (401, FhirUnauthorized),
        (403, FhirForbidden),
        (404, FhirNotFound),
        (409, FhirConflict),
        (410, FhirGone),
        (412, FhirPreconditionFailed),
    ],
)
def test_status_codes_map_to_typed_errors(status: int, cls: type[FhirError]) -> None:
    script = Script(fhir_json(status, outcome({"severity": "error", "code": "processing"})))
    with client(script) as fhir, pytest.raises(cls) as err:
        fhir.read("Patient", "p1")
    assert type(err.value) is cls
    assert err.value.status == status
    assert not err.value.transient
    assert len(script.requests) == 1


def test_operation_outcome_with_several_issues_is_in_the_error() -> None:
    body = outcome(
        {
            "severity": "error",
            "code": "required",
            "diagnostics": "Task.status is required",
            "expression": ["Task.status"],
        },
        {
            "severity": "error",
            "code": "value",
            "details": {"text": "bad intent"},
            "location": ["Task.intent"],
        },
        {"severity": "warning", "code": "informational"},
    )
    script = Script(fhir_json(422, body))
    with client(script) as fhir, pytest.raises(FhirInvalid) as err:
        fhir.create(Patient())
    issues = err.value.issues
    assert [(i.severity, i.code) for i in issues] == [
        ("error", "required"),
        ("error", "value"),
        ("warning", "informational"),
    ]
    assert issues[0].expression == ("Task.status",)
    assert issues[1].diagnostics == "bad intent" and issues[1].expression == ("Task.intent",)
    message = str(err.value)
    assert "POST /r4/Patient" in message and "422" in message
    assert "Task.status is required" in message and "bad intent" in message


def test_error_names_the_request_without_its_query_string() -> None:
    script = Script(fhir_json(400, outcome({"severity": "error", "code": "invalid"})))
    with client(script) as fhir, pytest.raises(FhirInvalid) as err:
        fhir.search("Patient", {"name": "Jane Doe", "birthdate": "1960-01-01"})
    assert err.value.request == "GET /r4/Patient"
    assert "Jane" not in str(err.value) and "1960" not in str(err.value)


def test_malformed_json_is_an_invalid_response() -> None:
    script = Script(
        httpx.Response(
            200,
            text='{"resourceType": "Patient", ',
            headers={"Content-Type": "application/fhir+json"},
        )
    )
    with client(script) as fhir, pytest.raises(FhirResponseInvalid) as err:
        fhir.read("Patient", "p1")
    assert "not JSON" in str(err.value)


def test_html_page_with_200_is_an_invalid_response() -> None:
    page = "<html><body>Please log in</body></html>"
    script = Script(httpx.Response(200, text=page, headers={"Content-Type": "text/html"}))
    with client(script) as fhir, pytest.raises(FhirResponseInvalid) as err:
        fhir.read("Patient", "p1")
    assert "text/html" in str(err.value)


def test_html_error_page_keeps_its_status_class() -> None:
    page = "<html><body>Bad gateway</body></html>"
    script = Script(httpx.Response(404, text=page, headers={"Content-Type": "text/html"}))
    with client(script) as fhir, pytest.raises(FhirNotFound) as err:
        fhir.read("Patient", "p1")
    assert "non-FHIR text/html" in str(err.value)


def test_json_that_is_not_a_resource_or_the_wrong_type_is_invalid() -> None:
    for body in ({"hello": "world"}, [1, 2], {"resourceType": "Observation", "status": "final"}):
        script = Script(fhir_json(200, body))
        with client(script) as fhir, pytest.raises(FhirResponseInvalid):
            fhir.read("Patient", "p1")


def test_a_resource_failing_validation_is_invalid_and_named() -> None:
    script = Script(fhir_json(200, {"resourceType": "Patient", "id": "p1", "active": "maybe"}))
    with client(script) as fhir, pytest.raises(FhirResponseInvalid) as err:
        fhir.read("Patient", "p1")
    assert "Patient/p1" in str(err.value) and "active" in str(err.value)
    assert "maybe" not in str(err.value)


def test_ids_that_would_change_the_path_are_refused_before_sending() -> None:
    script = Script(fhir_json(200, PATIENT))
    with client(script) as fhir:
        for bad in ("../metadata", "p1?x=1", "a/b", ""):
            with pytest.raises(FhirInvalid):
                fhir.read("Patient", bad)
        with pytest.raises(FhirInvalid):
            fhir.read("patient; drop", "p1")
    assert script.requests == []


# --- the async client shares all of the above ---------------------------------------------------


def test_async_client_retries_honours_retry_after_and_maps_errors() -> None:
    sleeps: list[float] = []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> None:
        script = Script(
            fhir_json(429, {}, **{"Retry-After": "1.5"}),
            httpx.ConnectError("refused"),
            fhir_json(200, PATIENT),
        )
        async with AsyncFhirClient(
            BASE, transport=httpx.MockTransport(script), backoff=TINY, sleep=record
        ) as fhir:
            assert (await fhir.read("Patient", "p1")).id == "p1"
        assert len(script.requests) == 3

        script = Script(fhir_json(503, {}), fhir_json(201, PATIENT))
        async with AsyncFhirClient(
            BASE, transport=httpx.MockTransport(script), backoff=TINY, sleep=record
        ) as fhir:
            with pytest.raises(FhirServerError):
                await fhir.create(Patient())
        assert len(script.requests) == 1

    asyncio.run(scenario())
    assert sleeps[0] == 1.5 and len(sleeps) == 2
