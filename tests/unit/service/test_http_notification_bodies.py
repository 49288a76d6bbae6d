"""Notification bodies that used to cost a 500 (which the FHIR server retries) or thousands of
FHIR reads: each is a 400 or 413 with an OperationOutcome, before any read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from carecoord.errors import ConfigError
from carecoord.service.notification_endpoint import DEFAULT_MAX_RESOURCES, NotificationEndpoint
from carecoord.service.notification_server import NotificationServer
from support.notifications import Publisher, Reader, backport_bundle, full_entry, task_json

TOKEN = "bodies-token"


@contextmanager
def endpoint(reader: Reader, **extra: Any) -> Iterator[tuple[str, Publisher]]:
    publisher = Publisher()
    route = NotificationEndpoint(publisher, reader, token=TOKEN, **extra)
    with NotificationServer(route, host="127.0.0.1", port=0) as server:
        yield f"http://127.0.0.1:{server.port}/fhir/notifications", publisher


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url, content=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def tasks_named(n: int) -> bytes:
    entries = [{"fullUrl": f"http://fhir.example.org/fhir/Task/t{i}"} for i in range(n)]
    return json.dumps(backport_bundle(*entries)).encode()


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_deeply_nested_json_is_a_400_not_a_500(opening: bytes) -> None:
    body = opening * 100_000
    with endpoint(Reader()) as (url, publisher):
        response = post(url, body)
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == "JSON nested too deeply"
    assert publisher.published == []


@pytest.mark.parametrize("bad_id", ["t1\n", "t1 ", " t1", "t\t1", "t1/../t2", "x" * 65])
def test_an_id_that_is_not_fhirs_is_a_400_and_never_read(bad_id: str) -> None:
    reader = Reader(task_json("completed"))
    body = json.dumps(backport_bundle(full_entry(task_json("completed", id=bad_id)))).encode()
    with endpoint(reader) as (url, publisher):
        response = post(url, body)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert bad_id not in response.text
    assert reader.reads == [] and publisher.published == []


def test_a_type_with_a_trailing_newline_is_a_400_too() -> None:
    task = task_json("completed")
    task["resourceType"] = "Task\n"
    with endpoint(reader := Reader()) as (url, _):
        assert post(url, json.dumps(backport_bundle(full_entry(task))).encode()).status_code == 400
    assert reader.reads == []


def test_the_same_valid_notification_is_read_and_published() -> None:
    reader = Reader(task_json("completed"))
    body = json.dumps(backport_bundle(full_entry(task_json("completed")))).encode()
    with endpoint(reader) as (url, publisher):
        assert post(url, body).status_code == 200
    assert reader.reads == [("Task", "t1")] and len(publisher.published) == 1


def test_a_notification_naming_more_than_the_cap_is_413_with_no_read() -> None:
    assert DEFAULT_MAX_RESOURCES == 100  # documented in docs/listeners.md
    reader = Reader()
    with endpoint(reader) as (url, _):
        refused = post(url, tasks_named(2000))
        at_cap = post(url, tasks_named(DEFAULT_MAX_RESOURCES))
    assert refused.status_code == 413
    issue = refused.json()["issue"][0]
    assert issue["code"] == "too-costly" and "2000" in issue["diagnostics"]
    assert at_cap.status_code == 200
    assert len(reader.reads) == DEFAULT_MAX_RESOURCES  # all from the one at the cap


def test_the_cap_is_configurable_and_counts_a_repeated_resource_once() -> None:
    reader = Reader()
    repeated = [{"fullUrl": "http://fhir.example.org/fhir/Task/t0"}] * 10
    with endpoint(reader, max_resources=3) as (url, _):
        assert post(url, tasks_named(4)).status_code == 413
        assert post(url, json.dumps(backport_bundle(*repeated)).encode()).status_code == 200
    assert reader.reads == [("Task", "t0")]


def test_a_cap_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_resources"):
        NotificationEndpoint(Publisher(), Reader(), token=TOKEN, max_resources=0)
