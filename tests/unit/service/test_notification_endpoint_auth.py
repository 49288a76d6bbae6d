"""The rest-hook route's decisions without a socket: the bearer check (an empty token is never
accepted, whatever the configured one) and each answer (200, 400, 401, 500, 503).

The HTTP server around it is tested in test_notification_listener.py and test_notifications.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError, HandlerError
from carecoord.fhir.errors import FhirServerError
from carecoord.service import notification_endpoint
from carecoord.service.http import HttpResponse
from carecoord.service.notification_endpoint import NotificationEndpoint
from support.notifications import Publisher, Reader, backport_bundle, full_entry, task_json

TOKEN = "s3cret"
BODY = json.dumps(backport_bundle(full_entry(task_json()))).encode()


def endpoint(token: str = TOKEN, publisher: Any = None, reader: Any = None) -> NotificationEndpoint:
    return NotificationEndpoint(
        publisher or Publisher(), reader or Reader(task_json()), token=token
    )


def outcome(response: HttpResponse) -> dict[str, Any]:
    assert response.content_type == "application/fhir+json"
    body: dict[str, Any] = json.loads(response.body)
    assert body["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = body["issue"][0]
    return issue


@pytest.mark.parametrize("configured", [TOKEN, " s3cret ", "x", "a b"])
@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Bearer    ", "bearer ", "Bearer \t", " Bearer ", ""]
)
def test_an_empty_bearer_token_is_refused_whatever_the_configured_one(
    configured: str, header: str
) -> None:
    publisher = Publisher()
    route = endpoint(configured, publisher)
    refused = route.authorize({"authorization": header})
    assert refused is not None and refused.status == 401
    assert route(BODY, {"authorization": header}).status == 401
    assert publisher.published == []


@pytest.mark.parametrize("token", ["", " ", "\t\n"])
def test_an_endpoint_cannot_be_configured_without_a_token(token: str) -> None:
    with pytest.raises(ConfigError) as raised:
        endpoint(token)
    assert str(raised.value) == "the FHIR notification endpoint needs a non-empty bearer token"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer s3cre",
        "Bearer s3crets",
        "Bearer S3CRET",
        "Basic s3cret",
        "s3cret",
        "Bearers3cret",
        "Token s3cret",
    ],
)
def test_a_wrong_or_partial_token_is_refused_401(header: str | None) -> None:
    headers = {} if header is None else {"authorization": header}
    refused = endpoint().authorize(headers)
    assert refused is not None
    assert refused.status == 401
    assert dict(refused.headers) == {"WWW-Authenticate": 'Bearer realm="carecoord"'}
    assert outcome(refused) == {
        "severity": "error",
        "code": "login",
        "diagnostics": "missing or wrong bearer token",
    }
    assert TOKEN.encode() not in refused.body


@pytest.mark.parametrize(
    ("configured", "header"),
    [
        (TOKEN, "Bearer s3cret"),
        (TOKEN, "bearer s3cret"),
        (TOKEN, "BEARER s3cret"),
        (TOKEN, "Bearer  s3cret "),
        (" s3cret\n", "Bearer s3cret"),
    ],
)
def test_the_right_token_is_accepted(configured: str, header: str) -> None:
    assert endpoint(configured).authorize({"authorization": header}) is None


AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_a_notification_is_published_and_answered_200() -> None:
    publisher = Publisher()
    response = endpoint(publisher=publisher)(BODY, AUTH)
    assert response.status == 200
    assert outcome(response) == {
        "severity": "information",
        "code": "informational",
        "diagnostics": "1 event(s)",
    }
    assert [e.type for e in publisher.published] == ["carecoord.referral.status-changed"]


def test_nothing_to_publish_is_200_too() -> None:
    publisher = Publisher()
    heartbeat = json.dumps(backport_bundle(kind="heartbeat")).encode()
    response = endpoint(publisher=publisher)(heartbeat, AUTH)
    assert response.status == 200 and outcome(response)["diagnostics"] == "0 event(s)"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON (JSONDecodeError)"),
        (b'{"a": "\xff"}', "not JSON (UnicodeDecodeError)"),
    ],
)
def test_a_body_that_is_not_json_is_400(body: bytes, why: str) -> None:
    response = endpoint()(body, AUTH)
    assert response.status == 400
    assert outcome(response) == {"severity": "error", "code": "structure", "diagnostics": why}


def test_a_payload_that_is_no_notification_is_400_invalid() -> None:
    response = endpoint()(json.dumps({"note": "x"}).encode(), AUTH)
    assert response.status == 400
    assert outcome(response) == {
        "severity": "error",
        "code": "invalid",
        "diagnostics": "not a FHIR notification: expected a notification Bundle, "
        "{operationType, location, resource} feed item(s) or a resource",
    }


class FailingReader(Reader):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def read(self, resource_type: str, resource_id: str) -> Any:
        raise self.error


def test_a_failed_read_is_503_with_retry_after() -> None:
    publisher = Publisher()
    route = endpoint(publisher=publisher, reader=FailingReader(FhirServerError("down", status=502)))
    response = route(BODY, AUTH)
    assert response.status == 503
    assert dict(response.headers) == {"Retry-After": "5"}
    assert outcome(response) == {
        "severity": "error",
        "code": "transient",
        "diagnostics": "the notified resource could not be read: retry later",
    }
    assert publisher.published == []


def test_a_translation_error_is_500() -> None:
    route = endpoint(reader=FailingReader(HandlerError("bug")))
    response = route(BODY, AUTH)
    assert response.status == 500
    assert outcome(response) == {
        "severity": "error",
        "code": "exception",
        "diagnostics": "not translated",
    }


def test_a_failed_publish_is_503_with_retry_after() -> None:
    response = endpoint(publisher=Publisher(fail=True))(BODY, AUTH)
    assert response.status == 503
    assert dict(response.headers) == {"Retry-After": "5"}
    assert outcome(response)["diagnostics"] == "the events could not be published: retry later"


def test_an_unauthorized_request_is_never_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def translate(payload: Any, *, fhir: Any) -> Sequence[CloudEvent]:
        calls.append(payload)
        return []

    monkeypatch.setattr(notification_endpoint, "translate", translate)
    assert endpoint()(BODY, {"authorization": "Bearer nope"}).status == 401
    assert calls == []
