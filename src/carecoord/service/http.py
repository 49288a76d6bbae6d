"""HTTP/1.1 listeners that clients without a token cannot exhaust: asyncio over h11.

Why h11 on asyncio, not `http.server` (a thread per connection, lenient parsing) nor uvicorn (no
header or body deadline, and its `limit_concurrency` answers 503 to everyone once slow clients
hold the slots): h11 parses strictly to RFC 9112 (see docs/listeners.md), and one event loop on
a thread of its own holds hundreds of idle or slow connections for a few KB each, so they never
delay a probe or a notification. Here

- each connection has a total deadline for its headers and one for its body (not per read, so
  trickling a byte at a time does not keep a connection), and a cap on header bytes (431);
- at most `max_connections` are open: a new one past the cap closes the oldest still sending
  its headers (a slow client, never a request being answered), or gets 503 when none is;
- framing h11 leaves to the server is refused here with 400: obs-fold, Transfer-Encoding with
  Content-Length, more than one Authorization;
- the handler's `head()` runs on the loop and answers before any body is read (404, 401, 413);
  `respond()` runs on a small thread pool, so a slow FHIR read never blocks the loop;
- no `Server:` banner; handler and connection errors are one log line (the error's type, never
  request text), never a traceback on stderr.

One request per connection (`Connection: close`), which is what probes and FHIR rest-hooks send.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol, Self

import h11

from carecoord.errors import StartupError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Limits:
    """Per-listener bounds (seconds, counts, bytes). `backlog` is the kernel's accept queue;
    `handler_threads` run `respond()` (the rest of the answered requests wait for one)."""

    max_connections: int = 512
    backlog: int = 128
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    write_timeout: float = 10.0
    max_header_bytes: int = 64 * 1024
    handler_threads: int = 4


@dataclass(frozen=True)
class Request:
    """A request's head: method, target, and its header fields in order (names lower-case)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def header_map(self) -> dict[str, str]:
        """Name -> value; `Listener` has refused a request that repeats a field this matters
        for (Host, Content-Length by h11; Authorization here)."""
        return dict(self.headers)

    @property
    def has_body(self) -> bool:
        return any(k == "transfer-encoding" for k, _ in self.headers) or any(
            int(v) != 0
            for v in self.values("content-length")  # h11 checked: 1*DIGIT
        )


class RequestHandler(Protocol):
    def head(self, request: Request) -> HttpResponse | int:
        """On the event loop, before any body is read (keep it cheap, never blocking): the
        answer now (the body is left unread), or the most body bytes to read for `respond`."""
        ...

    def respond(self, request: Request, body: bytes) -> HttpResponse:
        """On a handler thread: the answer to a request whose body was read."""
        ...


# Errors that are the client's doing: normal on a public port, logged at debug only.
_CLIENT_ERRORS = (ConnectionError, TimeoutError, h11.ProtocolError)
# A header line that starts with SP or HTAB continues the previous one (obs-fold).
_OBS_FOLD = re.compile(rb"\n[ \t]")
_HEAD_END = re.compile(rb"\n\r?\n")  # h11 accepts bare LF too (RFC 9112 §2.2 allows it)
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 64 * 1024


def framing_problem(head: bytes, request: Request) -> str | None:
    """What RFC 9112 lets a server refuse and h11 accepts. h11 itself refuses, as RFC 9112
    requires of a server (all 400): an invalid Content-Length (`+161`, `1_61`: RFC 9110 §8.6
    is 1*DIGIT) or differing ones (RFC 9112 §6.3 (5)), whitespace between a field name and its
    colon (§5.1), a missing or repeated Host in HTTP/1.1 (§3.2)."""
    end = _HEAD_END.search(head)
    if _OBS_FOLD.search(head, 0, end.start() + 1 if end else len(head)):
        # RFC 9112 §5.2: a server receiving obs-fold MUST either reject it with 400 or unfold it
        return "obsolete line folding is not accepted"
    names = [k for k, _ in request.headers]
    if "transfer-encoding" in names and "content-length" in names:
        # RFC 9112 §6.3 (3): such a message may be an attempt at request smuggling; a server
        # MAY reject it, and must close the connection after it
        return "Transfer-Encoding and Content-Length together"
    if names.count("authorization") > 1:
        # RFC 9110 §5.3: a field may be repeated only when it is a comma list; Authorization
        # is not, and "the last one wins" would let a proxy and us see different credentials
        return "more than one Authorization header"
    return None


@dataclass(eq=False)
class _Client:
    """One open connection: when it started, and whether it is still sending its headers."""

    started: float
    task: asyncio.Task[None] | None
    in_head: bool = True


class Listener:
    """A bound socket served by an asyncio loop on a daemon thread (`start`, `close`, `port`)."""

    def __init__(
        self, sock: socket.socket, handler: RequestHandler, *, name: str, limits: Limits
    ) -> None:
        self.name = name
        self.limits = limits
        self._sock = sock
        self._handler = handler
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        started = threading.Event()
        self._executor = ThreadPoolExecutor(
            self.limits.handler_threads, thread_name_prefix=f"carecoord-{self.name}-handler"
        )
        self._thread = threading.Thread(
            target=self._run, args=(started,), name=f"carecoord-{self.name}", daemon=True
        )
        self._thread.start()
        started.wait(5)

    def close(self) -> None:
        """Stop serving (open connections are dropped) and release the port; idempotent."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        self._loop = self._stopped = self._thread = None
        if loop is not None and stopped is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopped.set)
            thread.join(5)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._sock.close()

    def _run(self, started: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_error)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(started))
        finally:
            loop.close()

    async def _serve(self, started: threading.Event) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._sock, backlog=self.limits.backlog
        )
        started.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for client in list(self._clients):
                if client.task is not None:
                    client.task.cancel()
            tasks = [c.task for c in self._clients if c.task is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=2)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's errors outside a connection (e.g. accept() out of file descriptors: it
        pauses accepting for a second) as one line, never its traceback."""
        exc = context.get("exception")
        serious = isinstance(exc, OSError) and not isinstance(exc, ConnectionError)
        log.log(
            logging.WARNING if serious else logging.DEBUG,
            "HTTP listener loop error",
            extra={"listener": self.name, "error": type(exc).__name__ if exc else "none"},
        )

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        if len(self._clients) >= self.limits.max_connections and not self._evict_slowest():
            await self._send_raw(writer, HttpResponse(503, b"too many connections\n"))
            writer.close()
            return
        client = _Client(loop.time(), asyncio.current_task())
        self._clients.add(client)
        try:
            await self._exchange(client, reader, writer)
        except _CLIENT_ERRORS as exc:
            log.debug(
                "HTTP connection ended with an error",
                extra={"listener": self.name, "error": type(exc).__name__},
            )
        except Exception as exc:  # no traceback: its text may carry request values
            log.warning(
                "HTTP connection ended with an error",
                extra={"listener": self.name, "error": type(exc).__name__},
            )
        finally:
            self._clients.discard(client)
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()  # the client does not read: do not wait for it
            else:
                writer.close()

    def _evict_slowest(self) -> bool:
        """Close the oldest connection still sending its headers; False when there is none."""
        waiting = [c for c in self._clients if c.in_head and c.task is not None]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: c.started)
        self._clients.discard(victim)
        if victim.task is not None:
            victim.task.cancel()
        return True

    async def _exchange(
        self, client: _Client, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        head = bytearray()
        try:
            async with asyncio.timeout_at(client.started + limits.header_timeout):
                event = await _next_event(conn, reader, head)
        except TimeoutError:
            await self._send(conn, reader, writer, None, HttpResponse(408, b"request timeout\n"))
            return
        except h11.RemoteProtocolError as exc:
            if conn.their_state is not h11.ERROR or reader.at_eof():
                return  # the client left mid-request: nobody to answer
            why = b"request header fields too large\n" if exc.error_status_hint == 431 else None
            reply = HttpResponse(exc.error_status_hint, why or b"bad request framing\n")
            await self._send(conn, reader, writer, None, reply, body_unread=True)
            return
        if not isinstance(event, h11.Request):
            return  # closed before a request
        client.in_head = False
        request = Request(
            event.method.decode("ascii"),
            event.target.decode("ascii", "replace"),
            tuple((k.decode("ascii"), v.decode("latin-1")) for k, v in event.headers),
        )
        end = _HEAD_END.search(head)
        if end is None or end.start() > limits.max_header_bytes:
            # h11 counts only while the head is incomplete; one read may finish a larger one
            reply = HttpResponse(431, b"request header fields too large\n")
            await self._send(conn, reader, writer, request, reply, body_unread=True)
            return
        problem = framing_problem(bytes(head), request)
        answer: HttpResponse | int = (
            HttpResponse(400, f"{problem}\n".encode()) if problem else self._handler.head(request)
        )
        if isinstance(answer, HttpResponse):
            await self._send(conn, reader, writer, request, answer, body_unread=request.has_body)
            return
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        try:
            async with asyncio.timeout(limits.body_timeout):
                body = await _read_body(conn, reader, answer)
        except TimeoutError:
            return  # a client that stops mid-body: not worth an answer
        if body is None:
            reply = HttpResponse(413, b"body too large\n")
            await self._send(conn, reader, writer, request, reply, body_unread=True)
            return
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(self._executor, self._respond, request, body)
        await self._send(conn, reader, writer, request, response)

    def _respond(self, request: Request, body: bytes) -> HttpResponse:
        try:
            return self._handler.respond(request, body)
        except Exception as exc:  # no traceback: messages may carry payload values
            log.error(
                "HTTP handler failed", extra={"listener": self.name, "error": type(exc).__name__}
            )
            return HttpResponse(500, b"internal error\n")

    async def _send(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: Request | None,
        response: HttpResponse,
        *,
        body_unread: bool = False,
    ) -> None:
        """Write the answer (no `Server:` banner), then close; with the request body unread,
        half-close and discard a little of it first, so the client reads the answer (closing
        with unread data sends a reset that can destroy it, RFC 9112 §9.6)."""
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            # RFC 9110 §6.6.1: an origin server with a clock MUST send Date
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            *response.headers,
        ]
        data = _head_bytes(conn, response.status, headers)
        if data is None:
            await self._send_raw(writer, response)
            return
        if request is None or request.method != "HEAD":
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()
            if body_unread:
                await _linger(reader, writer)

    async def _send_raw(self, writer: asyncio.StreamWriter, response: HttpResponse) -> None:
        """An answer outside any request (the connection cap)."""
        phrase = HTTPStatus(response.status).phrase
        writer.write(
            f"HTTP/1.1 {response.status} {phrase}\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\nConnection: close\r\n\r\n".encode()
            + response.body
        )
        try:
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            return


def _head_bytes(conn: h11.Connection, status: int, headers: list[tuple[str, str]]) -> bytes | None:
    try:
        reason = HTTPStatus(status).phrase.encode()
        return conn.send(h11.Response(status_code=status, headers=headers, reason=reason)) or b""
    except h11.LocalProtocolError:
        return None  # h11 cannot answer in this state


async def _next_event(
    conn: h11.Connection, reader: asyncio.StreamReader, head: bytearray | None = None
) -> Any:
    """The next h11 event, reading as needed; the bytes read are appended to `head`."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await reader.read(16 * 1024)
        if head is not None:
            head += data
        conn.receive_data(data)  # b"" = the client closed


async def _read_body(conn: h11.Connection, reader: asyncio.StreamReader, most: int) -> bytes | None:
    """The body by h11's framing (Content-Length or chunked, RFC 9112 §6); None above `most`
    bytes. A client that leaves mid-body raises h11.RemoteProtocolError."""
    body = bytearray()
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > most:
                return None
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        else:
            raise h11.RemoteProtocolError("connection closed mid-body")


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(_LINGER_SECONDS):
            left = _LINGER_BYTES
            while left > 0:
                chunk = await reader.read(min(left, 16 * 1024))
                if not chunk:
                    return
                left -= len(chunk)
    except (TimeoutError, OSError):
        return  # the client is gone or slow: nothing more to say to it


def listen(
    host: str,
    port: int,
    handler: RequestHandler,
    *,
    name: str,
    limits: Limits,
    setting: str,
) -> Listener:
    """Bind a listener; a port in use (or an address not of this machine) is a StartupError
    naming the `<setting>_HOST` / `<setting>_PORT` variables to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=limits.backlog)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{setting}_PORT {port} is already in use on {host}: stop the process that "
                f"holds it or set {setting}_PORT to a free port (0 picks one)",
                listener=name,
            ) from exc
        why = exc.strerror or type(exc).__name__
        raise StartupError(
            f"{setting}_HOST / {setting}_PORT cannot be bound ({why}): use an address of this "
            "machine (e.g. 127.0.0.1 or 0.0.0.0) and a port above 1023",
            listener=name,
        ) from exc
    return Listener(sock, handler, name=name, limits=limits)


class BackgroundServer:
    """A bound listener served from a daemon thread: `start()`, `close()`, `.port` (the real one
    when bound to port 0), usable as a context manager."""

    def __init__(self, server: Listener) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> Self:
        self._server.start()
        return self

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "BackgroundServer",
    "HttpResponse",
    "Limits",
    "Listener",
    "Request",
    "RequestHandler",
    "framing_problem",
    "listen",
]
