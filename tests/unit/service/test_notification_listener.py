"""The notification listener under abuse, as an operator would notice it: clients without the
token cost no body read, oversized bodies are refused, slow clients neither starve a real FHIR
server nor grow threads, a burst of connections gets no resets, and nothing it writes to stderr
is anything but a JSON log line."""

from __future__ import annotations

import json
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from carecoord.service.health import HealthServer
from carecoord.service.http import Limits
from carecoord.service.logging import configure_logging
from carecoord.service.notification_endpoint import NotificationEndpoint
from carecoord.service.notification_server import NotificationServer
from carecoord.settings import Settings
from support.notifications import Publisher, Reader, backport_bundle

TOKEN = "listener-token"
PATH = "/fhir/notifications"
HEARTBEAT = json.dumps(backport_bundle(kind="heartbeat")).encode()
MAX_BODY = Settings.model_fields["notifications_max_body_bytes"].default


@contextmanager
def serve(publisher: Publisher, limits: Limits | None = None) -> Iterator[int]:
    route = NotificationEndpoint(publisher, Reader(), token=TOKEN)
    extra: dict[str, Any] = {"limits": limits} if limits else {}
    with NotificationServer(route, host="127.0.0.1", port=0, **extra) as server:
        yield server.port


def raw_post(port: int, headers: dict[str, str], sent: bytes) -> socket.socket:
    """A POST whose headers promise more body than is sent (the rest never comes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: carecoord\r\n{head}\r\n".encode() + sent)
    return sock


def status_of(sock: socket.socket, within: float = 5.0) -> int:
    sock.settimeout(within)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pytest.fail(f"no answer within {within} s: the server is waiting for the body")
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "auth", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}]
)
def test_a_large_body_without_the_token_is_refused_401_before_it_is_read(
    auth: dict[str, str],
) -> None:
    publisher = Publisher()
    with serve(publisher) as port:
        # 5 MB announced, 16 KB sent: an answer now means the body was not waited for
        headers = {"Content-Type": "application/fhir+json", "Content-Length": "5000000", **auth}
        started = time.monotonic()
        assert status_of(raw_post(port, headers, b"x" * 16384)) == 401
        assert time.monotonic() - started < 3.0
    assert publisher.published == []


def test_a_body_over_the_limit_is_refused_413_even_with_the_token() -> None:
    assert MAX_BODY == 1024 * 1024  # the documented default: a notification is a few KB
    with serve(Publisher()) as port:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(MAX_BODY + 1)}
        assert status_of(raw_post(port, headers, b"x" * 16384)) == 413
        # a real notification of a few KB is still welcome
        response = httpx.post(
            f"http://127.0.0.1:{port}{PATH}",
            content=HEARTBEAT,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 200


def test_slow_clients_neither_starve_a_real_request_nor_grow_threads() -> None:
    limits = Limits(max_connections=8, header_timeout=1.0, body_timeout=1.0, handler_threads=2)
    slow: list[socket.socket] = []
    peak = 0
    with serve(Publisher(), limits) as port:
        baseline = threading.active_count()
        for _ in range(50):  # each sends part of a request and hangs
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: carecoord\r\n".encode())
            slow.append(sock)
        done = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, threading.active_count())
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}{PATH}",
                content=HEARTBEAT,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=20,
            )
        finally:
            done.set()
            watcher.join()
            for sock in slow:
                sock.close()
    assert response.status_code == 200
    # no thread per connection: at most the handler threads (started on demand) + the watcher
    assert peak - baseline <= limits.handler_threads + 1


def test_200_concurrent_requests_get_answers_not_connection_resets() -> None:
    n = 200
    barrier = threading.Barrier(n)

    def one(port: int) -> int | str:
        barrier.wait()
        try:
            response = httpx.post(
                f"http://127.0.0.1:{port}{PATH}",
                content=HEARTBEAT,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=60,
            )
            return response.status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with serve(Publisher()) as port, ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, [port] * n))
    failures = [r for r in results if r != 200]
    assert failures == [], f"{len(failures)} of {n} failed: {sorted(set(map(str, failures)))}"


def reset_mid_request(port: int, request: bytes) -> None:
    """Send part of a request, then vanish with a TCP reset (what a killed client does)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request)
    time.sleep(0.1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_disconnect_mid_request_leave_only_json_lines_on_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", "json", stream=sys.stderr)
    try:
        with (
            serve(Publisher()) as port,
            HealthServer(ready=lambda: True, metrics=lambda: b"", host="127.0.0.1", port=0) as h,
        ):
            auth = f"Authorization: Bearer {TOKEN}\r\nContent-Length: 5000\r\n"
            for _ in range(3):
                reset_mid_request(port, f"POST {PATH} HTTP/1.1\r\nHost: c\r\n{auth}\r\n{{".encode())
                reset_mid_request(h.port, b"GET /metrics HTTP/1.1\r\nHost: c\r\n")
            time.sleep(0.5)
            assert httpx.get(f"http://127.0.0.1:{h.port}/healthz").status_code == 200
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    for line in lines:
        json.loads(line)  # a traceback line would fail here
    logged = [json.loads(line) for line in lines]
    assert any(r.get("error") == "ConnectionResetError" for r in logged)
