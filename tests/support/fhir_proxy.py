"""An HTTP proxy in front of the FHIR server for fault tests.

- `delay`: latency added to every request. Loopback sekmet answers in milliseconds, so a whole
  test stream is processed in well under a second; with a real network's latency a test can kill
  the service while events are in flight.
- `failing`: while True, answer 503 and 429 (Retry-After: 1) in turn instead of forwarding, as an
  overloaded server would; `refused` counts those answers.
- counting: every forwarded request is recorded as (kind, label): kind "search" (GET Type?...),
  "read" (GET Type/id[...]), "transaction" (POST to the base), "batch" (POST to the base of a
  batch Bundle: one round trip of several searches), "metadata", "write" (any other);
  label is the method and path (no query string). `snapshot()` / `since(n)` read them.
- timing: `seconds[i]` is how long the server took to answer `requests[i]` (the upstream call
  only, the proxy's own work excluded); `mean_ms_since(n)` averages them by kind.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import httpx

_HOP_BY_HOP = {
    "host", "content-length", "connection", "keep-alive", "transfer-encoding", "content-encoding",
}  # fmt: skip


def classify(method: str, path: str, body: bytes = b"") -> tuple[str, str]:
    """(kind, label) of a FHIR request; `path` is relative to the base, query string included."""
    parts = urlsplit(path)
    segments = [s for s in parts.path.split("/") if s]
    label = f"{method} {'/'.join(segments[:1])}" + ("/{id}" if len(segments) > 1 else "")
    if segments[:1] == ["metadata"]:
        return "metadata", label
    if method == "POST" and not segments:
        return ("batch" if _bundle_type(body) == "batch" else "transaction"), label
    if method == "GET" and len(segments) == 1:
        return "search", label
    if method == "GET":
        return "read", label
    return "write", label


def _bundle_type(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get("type")) if isinstance(data, dict) else None


class FhirProxy:
    def __init__(self, upstream: str, *, delay: float = 0.0, keep_alive: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay = delay
        self.failing = False
        self.refused = 0
        self.requests: list[tuple[str, str]] = []
        self.seconds: list[float] = []
        self.captured: list[bytes] | None = None  # set to [] to keep transaction bodies
        # set to [] to keep every request as (method, path relative to the base, body)
        self.traced: list[tuple[str, str, bytes]] | None = None
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=30)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.1 keeps the client's connection open (bench: no reconnect per request)
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.failing:
                    proxy.refused += 1
                    status = 429 if proxy.refused % 2 else 503
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(proxy.delay)
                relative = self.path.removeprefix("/fhir")
                kind = classify(self.command, relative, body)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                began = time.perf_counter()
                r = proxy._client.request(
                    self.command,
                    proxy.upstream + relative,
                    headers=headers,
                    content=body,
                )
                took = time.perf_counter() - began
                with proxy._lock:
                    proxy.requests.append(kind)
                    proxy.seconds.append(took)
                    if proxy.captured is not None and kind[0] == "transaction":
                        proxy.captured.append(body)
                    if proxy.traced is not None:
                        proxy.traced.append((self.command, relative, body))
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/fhir"

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def since(self, start: int) -> Counter[str]:
        """Requests by kind since `count()` was `start`."""
        with self._lock:
            return Counter(kind for kind, _ in self.requests[start:])

    def mean_ms_since(self, start: int) -> dict[str, float]:
        """Mean server time per request, by kind, since `count()` was `start`."""
        with self._lock:
            pairs = list(zip(self.requests[start:], self.seconds[start:], strict=True))
        total: dict[str, list[float]] = {}
        for (kind, _), took in pairs:
            total.setdefault(kind, []).append(took)
        return {k: round(1000 * sum(v) / len(v), 1) for k, v in sorted(total.items())}

    def labels_since(self, start: int) -> list[str]:
        with self._lock:
            return [label for _, label in self.requests[start:]]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
