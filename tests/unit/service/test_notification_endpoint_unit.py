"""NotificationEndpoint's answers pinned exactly, without a socket: each refusal's status and
OperationOutcome, that no FHIR read happens before a refusal, the max_resources boundaries,
what _CheckedReader forwards and refuses, the 200/503 paths and the logged records.

(Written against the mutants mutmut left alive in carecoord.service.notification_endpoint.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from carecoord.errors import ConfigError, HandlerError
from carecoord.fhir.errors import FhirServerError
from carecoord.fhir.notification_bundles import Hint, MalformedNotification
from carecoord.service import notification_endpoint
from carecoord.service.http import HttpResponse
from carecoord.service.notification_endpoint import (
    DEFAULT_MAX_RESOURCES,
    FHIR_JSON,
    NotificationEndpoint,
    _CheckedReader,
)
from support.notifications import Publisher, Reader, backport_bundle, full_entry, task_json

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}
BODY = json.dumps(backport_bundle(full_entry(task_json()))).encode()
LOGGER = "carecoord.service.notification_endpoint"


def make(
    reader: Any = None, publisher: Any = None, max_resources: int | None = None
) -> NotificationEndpoint:
    reader = reader if reader is not None else Reader(task_json())
    publisher = publisher if publisher is not None else Publisher()
    if max_resources is None:
        return NotificationEndpoint(publisher, reader, token=TOKEN)
    return NotificationEndpoint(publisher, reader, token=TOKEN, max_resources=max_resources)


def body_of(response: HttpResponse) -> dict[str, Any]:
    assert response.content_type == "application/fhir+json"
    parsed: dict[str, Any] = json.loads(response.body)
    return parsed


def expect(response: HttpResponse, status: int, severity: str, code: str, diagnostics: str) -> None:
    assert response.status == status
    assert response.content_type == FHIR_JSON == "application/fhir+json"
    assert body_of(response) == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def feed(*refs: str) -> bytes:
    """A list of {operationType, location} feed items, one per reference."""
    return json.dumps([{"operationType": "update", "location": r} for r in refs]).encode()


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER]


# ---------------------------------------------------------------------------------------------
# operation_outcome and the response format


def test_operation_outcome_body_is_exact_json() -> None:
    response = notification_endpoint.operation_outcome(418, "warning", "x-code", "why")
    assert response == HttpResponse(
        418,
        json.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "x-code", "diagnostics": "why"}],
            }
        ).encode(),
        "application/fhir+json",
    )
    assert response.headers == ()


def test_a_published_notification_is_200_with_no_extra_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader, publisher = Reader(task_json()), Publisher()
    response = make(reader, publisher)(BODY, AUTH)
    expect(response, 200, "information", "informational", "1 event(s)")
    assert response.headers == ()
    assert reader.reads == [("Task", "t1")]
    assert len(publisher.published) == 1
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "FHIR notification published"
    assert record.__dict__["event_ids"] == [publisher.published[0].id]


def test_the_publisher_gets_exactly_the_translated_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[Any] = []
    seen_fhir: list[Any] = []

    def translate(payload: Any, *, fhir: Any) -> Sequence[Any]:
        seen_fhir.append(fhir)
        return events

    class Event:
        def __init__(self, id: str) -> None:
            self.id = id

    events = [Event("e1"), Event("e2")]
    monkeypatch.setattr(notification_endpoint, "translate", translate)
    route = NotificationEndpoint(sent.append, Reader(), token=TOKEN)
    response = route(BODY, AUTH)
    expect(response, 200, "information", "informational", "2 event(s)")
    assert sent == [events]
    (fhir,) = seen_fhir
    assert isinstance(fhir, _CheckedReader)


def test_an_empty_notification_is_200_with_no_reads_and_nothing_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader, publisher = Reader(task_json()), Publisher()
    heartbeat = json.dumps(backport_bundle(kind="heartbeat")).encode()
    response = make(reader, publisher)(heartbeat, AUTH)
    expect(response, 200, "information", "informational", "0 event(s)")
    assert response.headers == ()
    assert reader.reads == []
    assert publisher.published == []
    assert records(caplog) == []
    # an empty feed list names nothing too
    expect(make(reader)(b"[]", AUTH), 200, "information", "informational", "0 event(s)")
    assert reader.reads == []


# ---------------------------------------------------------------------------------------------
# __init__


@pytest.mark.parametrize("max_resources", [0, -1, -100])
def test_max_resources_below_one_is_a_config_error(max_resources: int) -> None:
    with pytest.raises(ConfigError) as raised:
        make(max_resources=max_resources)
    assert raised.value.message == (
        "the FHIR notification endpoint's max_resources must be at least 1"
    )
    assert raised.value.context == {"max_resources": max_resources}


def test_max_resources_one_is_accepted_and_allows_one_resource() -> None:
    reader = Reader(task_json())
    route = make(reader, max_resources=1)
    expect(route(BODY, AUTH), 200, "information", "informational", "1 event(s)")
    assert reader.reads == [("Task", "t1")]
    response = route(feed("Task/t1", "Task/t2"), AUTH)
    expect(response, 413, "error", "too-costly", "names 2 resources, more than 1: split it")


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_a_blank_token_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError) as raised:
        NotificationEndpoint(Publisher(), Reader(), token=token)
    assert raised.value.message == "the FHIR notification endpoint needs a non-empty bearer token"
    assert raised.value.context == {}


def test_a_valid_token_is_kept_stripped() -> None:
    route = NotificationEndpoint(Publisher(), Reader(), token="  s3cret\n")
    assert route.authorize({"authorization": "Bearer s3cret"}) is None
    assert route.authorize({"authorization": "Bearer   s3cret"}) is None
    refused = route.authorize({"authorization": "Bearer s3cre"})
    assert refused is not None and refused.status == 401


def test_the_default_max_resources_is_100() -> None:
    assert DEFAULT_MAX_RESOURCES == 100
    reader = Reader()
    route = make(reader)
    hundred = [f"Task/t{i}" for i in range(100)]
    expect(route(feed(*hundred), AUTH), 200, "information", "informational", "0 event(s)")
    assert len(reader.reads) == 100
    reader.reads.clear()
    response = route(feed(*hundred, "Task/t100"), AUTH)
    expect(response, 413, "error", "too-costly", "names 101 resources, more than 100: split it")
    assert reader.reads == []


# ---------------------------------------------------------------------------------------------
# Refusals: 400 / 413, never a read before


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON (JSONDecodeError)"),
        (b"", "not JSON (JSONDecodeError)"),
        (b'{"a": "\xff"}', "not JSON (UnicodeDecodeError)"),
    ],
)
def test_not_json_is_400_structure(body: bytes, why: str) -> None:
    reader, publisher = Reader(task_json()), Publisher()
    response = make(reader, publisher)(body, AUTH)
    expect(response, 400, "error", "structure", why)
    assert response.headers == ()
    assert reader.reads == [] and publisher.published == []


def test_json_nested_too_deeply_is_400_structure() -> None:
    reader, publisher = Reader(task_json()), Publisher()
    deep = b"[" * 100_000 + b"]" * 100_000
    response = make(reader, publisher)(deep, AUTH)
    expect(response, 400, "error", "structure", "JSON nested too deeply")
    assert reader.reads == [] and publisher.published == []


def test_a_malformed_notification_is_400_invalid_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader = Reader(task_json())
    response = make(reader)(b'"a string"', AUTH)
    why = "not a FHIR notification: JSON str, expected an object or a list"
    expect(response, 400, "error", "invalid", why)
    assert reader.reads == []
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "FHIR notification refused"
    assert record.__dict__["error"] == why


@pytest.mark.parametrize("error", [RecursionError, ValueError, TypeError])
def test_an_unforeseen_shape_is_400_not_a_fhir_notification(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error: type[Exception]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    def notified_resources(payload: Any) -> list[Hint]:
        raise error("secret value")

    monkeypatch.setattr(notification_endpoint, "notified_resources", notified_resources)
    reader = Reader(task_json())
    response = make(reader)(BODY, AUTH)
    expect(response, 400, "error", "invalid", "not a FHIR notification")
    assert b"secret" not in response.body
    assert reader.reads == []
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "FHIR notification refused"
    assert record.__dict__["error"] == error.__name__


BAD_HINTS = [
    Hint("Task", "t1\n"),
    Hint("Task\n", "t1"),
    Hint("Task", " t1"),
    Hint("Task", "t1 "),
    Hint(" Task", "t1"),
    Hint("task", "t1"),
    Hint("T", "t1"),
    Hint("Task", ""),
    Hint("", "t1"),
    Hint("Task", "t" * 65),
    Hint("T" + "a" * 64, "t1"),
    Hint("Task", "t/1"),
    Hint("Task1", "t1"),
    Hint("Task", "t_1"),
]


@pytest.mark.parametrize("bad", BAD_HINTS, ids=repr)
def test_a_hint_that_is_not_a_fhir_type_and_id_is_400_before_any_read(
    monkeypatch: pytest.MonkeyPatch, bad: Hint
) -> None:
    # notified_resources checks these itself: the endpoint checks again (defence in depth)
    monkeypatch.setattr(
        notification_endpoint, "notified_resources", lambda payload: [Hint("Task", "t1"), bad]
    )
    reader, publisher = Reader(task_json()), Publisher()
    response = make(reader, publisher)(BODY, AUTH)
    why = "notified resource 1: not a FHIR resource type and id"
    expect(response, 400, "error", "invalid", why)
    assert reader.reads == [] and publisher.published == []


def test_the_first_bad_hint_is_named_by_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        notification_endpoint,
        "notified_resources",
        lambda payload: [Hint("Task", "bad\n"), Hint("task", "t1")],
    )
    response = make()(BODY, AUTH)
    why = "notified resource 0: not a FHIR resource type and id"
    expect(response, 400, "error", "invalid", why)


@pytest.mark.parametrize(
    "good",
    [
        Hint("Ta", "t"),
        Hint("T" + "a" * 63, "x" * 64),
        Hint("Task", "A-z.0-9"),
        Hint("ServiceRequest", "sr-1.2"),
    ],
    ids=repr,
)
def test_edge_valid_hints_pass_the_check(monkeypatch: pytest.MonkeyPatch, good: Hint) -> None:
    endpoint = make()
    assert endpoint._check_named([]) is None
    monkeypatch.setattr(notification_endpoint, "notified_resources", lambda payload: [good])
    assert endpoint._check_named({}) is None


def test_more_resources_than_max_is_413_too_costly_before_any_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader, publisher = Reader(task_json()), Publisher()
    response = make(reader, publisher, max_resources=2)(feed("Task/a", "Task/b", "Task/c"), AUTH)
    expect(response, 413, "error", "too-costly", "names 3 resources, more than 2: split it")
    assert response.headers == ()
    assert reader.reads == [] and publisher.published == []
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "FHIR notification refused"
    assert record.__dict__["resources"] == 3


def test_exactly_max_resources_is_accepted() -> None:
    reader = Reader()
    response = make(reader, max_resources=3)(feed("Task/a", "Task/b", "Task/c"), AUTH)
    expect(response, 200, "information", "informational", "0 event(s)")
    assert reader.reads == [("Task", "a"), ("Task", "b"), ("Task", "c")]


def test_a_repeated_resource_is_counted_once() -> None:
    reader = Reader()
    body = feed("Task/a", "Task/a", "Task/a", "Task/b", "Task/a")
    response = make(reader, max_resources=2)(body, AUTH)
    expect(response, 200, "information", "informational", "0 event(s)")
    assert reader.reads == [("Task", "a"), ("Task", "b")]
    # the same id under another type is another resource
    refused = make(reader, max_resources=2)(feed("Task/a", "Patient/a", "Task/b"), AUTH)
    expect(refused, 413, "error", "too-costly", "names 3 resources, more than 2: split it")


# ---------------------------------------------------------------------------------------------
# 500 / 503


def test_a_failed_read_is_503_transient_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    class Failing(Reader):
        def read(self, resource_type: str, resource_id: str) -> Any:
            self.reads.append((resource_type, resource_id))
            raise FhirServerError("down", status=502)

    reader, publisher = Failing(), Publisher()
    response = make(reader, publisher)(BODY, AUTH)
    assert response.headers == (("Retry-After", "5"),)
    expect(
        response, 503, "error", "transient", "the notified resource could not be read: retry later"
    )
    assert reader.reads == [("Task", "t1")]
    assert publisher.published == []
    (record,) = records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "FHIR notification: read failed"
    assert record.__dict__["error"] == "FhirServerError"


def test_a_failed_publish_is_503_transient_with_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    response = make(publisher=Publisher(fail=True))(BODY, AUTH)
    assert response.headers == (("Retry-After", "5"),)
    expect(response, 503, "error", "transient", "the events could not be published: retry later")
    (record,) = records(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "FHIR notification: publish failed"
    assert record.__dict__["error"] == "RuntimeError"


def test_an_empty_publish_that_fails_is_503_too() -> None:
    heartbeat = json.dumps(backport_bundle(kind="heartbeat")).encode()
    response = make(publisher=Publisher(fail=True))(heartbeat, AUTH)
    assert response.status == 503
    assert response.headers == (("Retry-After", "5"),)


def test_a_translation_error_is_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    class Broken(Reader):
        def read(self, resource_type: str, resource_id: str) -> Any:
            raise HandlerError("bug")

    publisher = Publisher()
    response = make(Broken(), publisher)(BODY, AUTH)
    expect(response, 500, "error", "exception", "not translated")
    assert response.headers == ()
    assert publisher.published == []
    (record,) = records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "FHIR notification not translated"
    assert record.__dict__["error"] == "HandlerError"


def test_a_translator_read_of_a_bad_id_is_400_invalid(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    reader = Reader(task_json())

    def translate(payload: Any, *, fhir: Any) -> Sequence[Any]:
        fhir.read("Task", "t1\n")
        raise AssertionError("unreachable")

    monkeypatch.setattr(notification_endpoint, "translate", translate)
    response = make(reader)(BODY, AUTH)
    why = "a notified resource has no valid FHIR type and id"
    expect(response, 400, "error", "invalid", why)
    assert reader.reads == []
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "FHIR notification refused"
    assert record.__dict__["error"] == why


# ---------------------------------------------------------------------------------------------
# _CheckedReader


def test_checked_reader_read_forwards_a_valid_type_and_id() -> None:
    reader = Reader(task_json())
    resource = _CheckedReader(reader).read("Task", "t1")
    assert reader.reads == [("Task", "t1")]
    assert type(resource).__name__ == "Task" and resource.id == "t1"


@pytest.mark.parametrize(
    ("resource_type", "resource_id"),
    [(h.resource_type, h.id) for h in BAD_HINTS],
)
def test_checked_reader_read_refuses_a_bad_type_or_id(resource_type: str, resource_id: str) -> None:
    reader = Reader(task_json())
    with pytest.raises(MalformedNotification) as raised:
        _CheckedReader(reader).read(resource_type, resource_id)
    assert str(raised.value) == "a notified resource has no valid FHIR type and id"
    assert reader.reads == []


def test_checked_reader_search_forwards_type_and_params_and_returns_the_result() -> None:
    calls: list[tuple[str, Any]] = []
    result = [object(), object()]

    class Searching:
        def read(self, resource_type: str, resource_id: str) -> Any:
            raise AssertionError("search never reads")

        def search(self, resource_type: str, params: Any) -> list[Any]:
            calls.append((resource_type, params))
            return result

    checked = _CheckedReader(Searching())
    params = {"patient": "Patient/p1", "status": "active"}
    assert checked.search("Task", params) is result
    pairs = [("_id", "t1"), ("_id", "t2")]
    assert checked.search("ServiceRequest", pairs) is result
    assert calls == [("Task", params), ("ServiceRequest", pairs)]
    assert calls[0][1] is params and calls[1][1] is pairs
