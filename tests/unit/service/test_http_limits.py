"""The listeners' limits as a client sees them: slow clients cost no thread and, past the cap,
the oldest of them is closed for a new connection; header and body deadlines are totals, so
trickling a byte at a time does not keep a connection; handler failures are a 500 and one log
line without the payload."""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from collections.abc import Mapping

import httpx
import pytest

from carecoord.service.health import HealthServer
from carecoord.service.http import HttpResponse, Limits
from carecoord.service.notification_server import NotificationServer
from support.notifications import backport_bundle

TOKEN = "limits-token"
PATH = "/fhir/notifications"
HEARTBEAT = json.dumps(backport_bundle(kind="heartbeat")).encode()
SECRET = "Patient told us she sleeps in her car"  # stands in for PHI


class Route:
    """A notification route whose answers the test controls (it may block or raise)."""

    def __init__(self, *, block: threading.Event | None = None, fail: bool = False) -> None:
        self.block = block
        self.fail = fail
        self.entered = threading.Semaphore(0)
        self.bodies: list[bytes] = []

    def authorize(self, headers: Mapping[str, str]) -> HttpResponse | None:
        ok = headers.get("authorization") == f"Bearer {TOKEN}"
        return None if ok else HttpResponse(401, b"no\n")

    def __call__(self, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        self.entered.release()
        if self.block is not None:
            self.block.wait(10)
        if self.fail:
            raise ValueError(f"could not handle {SECRET}")
        self.bodies.append(body)
        return HttpResponse(200, b"ok\n")


def slow_client(port: int, first: bytes = b"GET /healthz HTTP/1.1\r\nHost: c\r\n") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)  # and never the blank line that ends the headers
    return sock


def closed_by_server(socks: list[socket.socket], within: float = 1.0) -> list[bool]:
    """For each socket, whether the server closed it (it would never answer these)."""
    readable, _, _ = select.select(socks, [], [], within)
    closed = []
    for sock in socks:
        try:
            closed.append(sock in readable and sock.recv(4096) == b"")
        except ConnectionResetError:
            closed.append(True)
    return closed


def test_past_the_cap_the_oldest_slow_client_is_closed_and_no_thread_is_started() -> None:
    limits = Limits(max_connections=50, header_timeout=30.0)
    with HealthServer(
        ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0, limits=limits
    ) as h:
        baseline = threading.active_count()
        slow = [slow_client(h.port) for _ in range(120)]
        try:
            probes = [httpx.get(f"http://127.0.0.1:{h.port}/healthz", timeout=5) for _ in range(5)]
            threads = threading.active_count()
            oldest, newest = slow[:60], slow[-40:]
            assert all(closed_by_server(oldest))
            assert not any(closed_by_server(newest))
        finally:
            for sock in slow:
                sock.close()
    assert [p.status_code for p in probes] == [200] * 5
    assert threads - baseline <= 1  # at most the one handler thread the probes used


def test_when_every_connection_is_being_answered_a_new_one_gets_503() -> None:
    release = threading.Event()
    route = Route(block=release)
    limits = Limits(max_connections=2, handler_threads=2)
    auth = f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(HEARTBEAT)}\r\n"
    request = f"POST {PATH} HTTP/1.1\r\nHost: c\r\n{auth}\r\n".encode() + HEARTBEAT
    with NotificationServer(route, host="127.0.0.1", port=0, limits=limits) as server:
        busy = []
        for _ in range(2):
            busy.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            busy[-1].sendall(request)
            assert route.entered.acquire(timeout=5)
        third = httpx.post(f"http://127.0.0.1:{server.port}{PATH}", content=b"", timeout=5)
        release.set()
        answers = [sock.recv(4096).split(b" ", 2)[1] for sock in busy]
        for sock in busy:
            sock.close()
    assert third.status_code == 503
    assert answers == [b"200", b"200"]


def trickle(sock: socket.socket, data: bytes, every: float) -> tuple[bytes, int]:
    """Send `data` a byte at a time; stop when the server answers or closes.
    Returns (what the server sent, how many bytes were sent)."""
    sock.settimeout(every)
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(4096)
            return answer, sent + 1
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent
    return b"", len(data)


def test_the_header_deadline_is_a_total_so_trickling_bytes_does_not_keep_a_connection() -> None:
    limits = Limits(header_timeout=1.0)
    with HealthServer(
        ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0, limits=limits
    ) as h:
        pad = b"X-Slow: " + b"a" * 200 + b"\r\n"  # 200+ bytes at 0.05 s each: 10 s if let be
        with socket.create_connection(("127.0.0.1", h.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: c\r\n")
            answer, sent = trickle(sock, pad + b"\r\n", every=0.05)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sent < len(pad)


def test_the_body_deadline_is_a_total_and_a_trickled_body_is_not_handled() -> None:
    route = Route()
    limits = Limits(body_timeout=1.0)
    body = b"x" * 200
    head = f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n"
    with NotificationServer(route, host="127.0.0.1", port=0, limits=limits) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: c\r\n{head}\r\n".encode())
            _, sent = trickle(sock, body, every=0.05)
        assert sent < len(body)
        ok = httpx.post(
            f"http://127.0.0.1:{server.port}{PATH}",
            content=HEARTBEAT,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert ok.status_code == 200
    assert route.bodies == [HEARTBEAT]


def test_a_failing_route_is_a_500_and_one_log_line_without_the_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    route = Route(fail=True)
    with (
        caplog.at_level(logging.DEBUG),
        NotificationServer(route, host="127.0.0.1", port=0) as server,
    ):
        response = httpx.post(
            f"http://127.0.0.1:{server.port}{PATH}",
            content=SECRET.encode(),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 500 and SECRET not in response.text
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [getattr(r, "error", None) for r in failures] == ["ValueError"]
    assert all(r.exc_info is None for r in caplog.records)
    assert not any(SECRET in r.getMessage() or SECRET in str(r.__dict__) for r in caplog.records)


def test_a_closed_listener_frees_its_port_and_closing_again_is_harmless() -> None:
    first = HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0)
    with first:
        port = first.port
        slow = slow_client(port)  # an open connection does not keep the port
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    first.close()
    slow.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz")
    with HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=port) as h:
        assert httpx.get(f"http://127.0.0.1:{h.port}/healthz").status_code == 200
