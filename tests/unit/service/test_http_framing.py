"""RFC 9112 framing on both listeners, byte for byte over a raw socket: what a lenient parser
would accept (and a proxy in front might read differently) is a 400 before any token check or
body read, and an answer never names the server's software."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from carecoord.service.health import HealthServer
from carecoord.service.notification_endpoint import NotificationEndpoint
from carecoord.service.notification_server import NotificationServer
from support.notifications import Publisher, Reader, backport_bundle

TOKEN = "framing-token"
PATH = "/fhir/notifications"
HEARTBEAT = json.dumps(backport_bundle(kind="heartbeat")).encode()
N = len(HEARTBEAT)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def exchange(port: int, raw: bytes, within: float = 5.0) -> Answer:
    """Send `raw` as is, read until the server closes, parse the status line and headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=within) as sock:
        sock.sendall(raw)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass  # the server may reset after answering with the body unread
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    return Answer(int(status_line.split(" ")[1]), headers, body)


@contextmanager
def notifications() -> Iterator[tuple[int, Publisher]]:
    publisher = Publisher()
    route = NotificationEndpoint(publisher, Reader(), token=TOKEN)
    with NotificationServer(route, host="127.0.0.1", port=0) as server:
        yield server.port, publisher


def post(*header_lines: str, body: bytes = HEARTBEAT) -> bytes:
    head = "".join(f"{line}\r\n" for line in header_lines)
    return f"POST {PATH} HTTP/1.1\r\n{head}\r\n".encode() + body


GOOD = ("Host: carecoord", f"Authorization: Bearer {TOKEN}", f"Content-Length: {N}")


def test_the_well_formed_request_these_variants_come_from_is_accepted() -> None:
    with notifications() as (port, _):
        assert exchange(port, post(*GOOD)).status == 200
        # the same Content-Length twice is one value (RFC 9112 §6.3 lets a server take it)
        assert exchange(port, post(*GOOD, f"Content-Length: {N}")).status == 200


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param((*GOOD[:2], f"Content-Length: +{N}"), id="content-length-plus-sign"),
        pytest.param((*GOOD[:2], f"Content-Length: {N // 10}_{N % 10}"), id="underscore"),
        pytest.param((*GOOD[:2], f"Content-Length: {N}, {N + 1}"), id="comma-list-differing"),
        pytest.param((*GOOD, f"Content-Length: {N + 1}"), id="duplicate-differing-lengths"),
        pytest.param((*GOOD[:2], f"Content-Length : {N}"), id="space-before-colon"),
        pytest.param((*GOOD, "X-Note: first", " folded"), id="obs-fold-space"),
        pytest.param((*GOOD, "X-Note: first", "\tfolded"), id="obs-fold-tab"),
        pytest.param((*GOOD, "Transfer-Encoding: chunked"), id="transfer-encoding-and-length"),
        pytest.param((*GOOD, "Authorization: Bearer other"), id="two-authorizations-last-wrong"),
        pytest.param(
            (GOOD[0], "Authorization: Bearer other", *GOOD[1:]), id="two-authorizations-last-right"
        ),
        pytest.param((*GOOD, "Host: elsewhere"), id="two-hosts"),
        pytest.param(GOOD[1:], id="no-host-in-http-1.1"),
    ],
)
def test_ambiguous_framing_is_refused_400_and_nothing_is_published(lines: tuple[str, ...]) -> None:
    with notifications() as (port, publisher):
        answer = exchange(port, post(*lines))
    assert answer.status == 400
    assert publisher.published == []


def test_two_authorization_headers_are_refused_on_the_health_port_too() -> None:
    with HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0) as h:
        raw = b"GET /healthz HTTP/1.1\r\nHost: c\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n"
        assert exchange(h.port, raw).status == 400
        assert exchange(h.port, b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n").status == 200


def test_headers_over_the_cap_are_refused_431() -> None:
    with notifications() as (port, _):
        answer = exchange(port, post(*GOOD, "X-Pad: " + "a" * 70_000))
    assert answer.status == 431


def test_answers_carry_no_server_banner_and_a_date() -> None:
    with (
        notifications() as (port, _),
        HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0) as h,
    ):
        answers = [
            exchange(port, post(*GOOD)),
            exchange(port, post(GOOD[0], f"Content-Length: {N}")),  # 401
            exchange(port, post(*GOOD[:2], f"Content-Length: +{N}")),  # 400
            exchange(h.port, b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n"),
            exchange(h.port, b"GET /nope HTTP/1.0\r\n\r\n"),
        ]
    assert [a.status for a in answers] == [200, 401, 400, 200, 404]
    for answer in answers:
        assert answer.header("Server") is None
        assert answer.header("Connection") == "close"
    assert all(a.header("Date") for a in answers if a.status != 400)


def test_a_client_waiting_for_100_continue_gets_401_without_sending_its_body() -> None:
    with notifications() as (port, publisher):
        refused = exchange(
            port, post(GOOD[0], "Expect: 100-continue", f"Content-Length: {N}", body=b"")
        )
        assert refused.status == 401
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(post(*GOOD, "Expect: 100-continue", body=b""))
            assert sock.recv(4096).startswith(b"HTTP/1.1 100 ")
            sock.sendall(HEARTBEAT)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    assert publisher.published == []  # a heartbeat names nothing


def test_health_answers_head_without_a_body_and_refuses_other_methods() -> None:
    with HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0) as h:
        head = exchange(h.port, b"HEAD /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
        assert (head.status, head.body, head.header("Content-Length")) == (200, b"", "3")
        put = exchange(h.port, b"PUT /readyz HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\nhi")
        assert (put.status, put.header("Allow")) == (405, "GET, HEAD")
        body = exchange(h.port, b"GET /readyz HTTP/1.1\r\nHost: c\r\nContent-Length: 2\r\n\r\nhi")
        assert body.status == 413
