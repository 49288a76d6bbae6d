"""What the sync and async clients share below the FHIR operations: a `Call` (one REST request,
described as data), building it into an httpx request, reading the response into a `Reply` or a
typed `FhirError`, and the retry policy (tenacity) around sending it.

Retries: connect errors, timeouts, 429 (Retry-After honoured), 502/503/504, with exponential
backoff and jitter inside a total budget. A request that is not safe to repeat (a plain POST
create) is retried only when it certainly never reached the server, or on 429 (the server says it
refused to process it). Logs carry the method, the path (ids only, never the query string, which
may hold PHI) and the status. Each request sent (each retry too) is an OpenTelemetry client span
(`request_span`) whose path keeps only resource types and keywords: ids become {id}.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from carecoord.core import json_codec, tracing
from carecoord.fhir.errors import (
    BY_STATUS,
    FhirError,
    FhirInvalid,
    FhirRateLimited,
    FhirResponseInvalid,
    FhirServerError,
    FhirTransportError,
    Issue,
)

log = logging.getLogger("carecoord.fhir")

FHIR_JSON = "application/fhir+json"
R = TypeVar("R")
TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Call:
    """One REST request. `url` is relative to the FHIR base ("Patient/1", "metadata"), "" for the
    base itself (transactions), or absolute (a paging link already rebased onto the base)."""

    method: str
    url: str
    params: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    retry_safe: bool = True  # may be repeated even if it reached the server


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: dict[str, Any] | None  # the JSON resource, None when the server sent no body
    request: str  # "METHOD /path" for messages

    @property
    def location(self) -> str | None:
        value = self.headers.get("location") or self.headers.get("content-location")
        return str(value) if value else None


def label_of(request: httpx.Request) -> str:
    """How errors and logs name a request: method and path, never the query string."""
    return f"{request.method} {request.url.path}"


def build_request(
    client: httpx.Client | httpx.AsyncClient, base_url: str, call: Call
) -> httpx.Request:
    headers = dict(call.headers)
    content: bytes | None = None
    if call.body is not None:
        headers.setdefault("Content-Type", FHIR_JSON)
        content = json_codec.dumps(call.body)
    url = call.url if call.url else base_url
    return client.build_request(
        call.method,
        url,
        params=list(call.params) if call.params else None,
        headers=headers,
        content=content,
    )


def rebase_link(link: str, base_url: str) -> str:
    """A paging link made absolute on our base URL.

    Links may be relative, or absolute with a host the server misreports (behind a proxy, or
    sekmet's http://localhost:8090); following them as given could send our credentials
    elsewhere. Links under the base path are rebased onto it; others must share its origin.
    """
    base = urlsplit(base_url)
    base_path = base.path.rstrip("/")
    target = urlsplit(link.strip())
    if not target.scheme and not target.netloc and not target.path.startswith("/"):
        if not target.path:  # "?query" on the base itself
            return urlunsplit((base.scheme, base.netloc, base_path, target.query, ""))
        return urlunsplit(
            (base.scheme, base.netloc, f"{base_path}/{target.path}", target.query, "")
        )
    path = target.path
    if path == base_path or path.startswith(base_path + "/"):
        return urlunsplit((base.scheme, base.netloc, path, target.query, ""))
    if not target.netloc or (target.scheme, target.netloc) == (base.scheme, base.netloc):
        return urlunsplit((base.scheme, base.netloc, path, target.query, ""))
    raise FhirResponseInvalid("paging link points outside the FHIR server's base URL")


# --- spans -----------------------------------------------------------------------------------

_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{0,63}")


def path_template(path: str, base_path: str) -> str:
    """`path` relative to the FHIR base with every id replaced: "Patient/{id}/_history/{vid}",
    "Basic", "metadata", "" (the base: transactions, batches). Resource types, `_history`,
    `_search`, `$operation` names and `metadata` are kept; any other segment becomes {id}."""
    base = base_path.rstrip("/")
    if path == base or path.startswith(base + "/"):
        path = path[len(base) :]
    out: list[str] = []
    for segment in (s for s in path.split("/") if s):
        if segment.startswith(("_", "$")) or segment == "metadata":
            out.append(segment)
        elif out and out[-1] == "_history":
            out.append("{vid}")
        elif _RESOURCE_TYPE.fullmatch(segment) and (not out or out[-1] == "{id}"):
            out.append(segment)
        else:
            out.append("{id}")
    return "/".join(out)


def _no_status(code: int) -> None:
    pass


@contextmanager
def request_span(request: httpx.Request, base_url: str) -> Iterator[Callable[[int], None]]:
    """A client span around sending `request`; call the yielded function with the status code.

    Attributes (OpenTelemetry HTTP semantic conventions): http.request.method, server.address,
    server.port, url.scheme, url.template (the templated absolute path; never the query string:
    search parameters hold identifiers) and http.response.status_code, plus
    carecoord.fhir.resource_type; a status >= 400 or a transport error marks it failed
    (error.type: the status code or the exception's type).
    """
    if not tracing.recording():  # the template costs a little on every request
        yield _no_status
        return
    url = request.url
    base_path = urlsplit(base_url).path.rstrip("/")
    relative = path_template(url.path, base_path)
    template = f"{base_path}/{relative}" if relative else base_path or "/"
    first = relative.split("/", 1)[0]
    attributes: dict[str, tracing.AttributeValue | None] = {
        "http.request.method": request.method,
        "server.address": url.host,
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "url.scheme": url.scheme,
        "url.template": template,
        "carecoord.fhir.resource_type": first if _RESOURCE_TYPE.fullmatch(first) else None,
    }
    with tracing.span(f"{request.method} {template}", "client", attributes) as span:

        def status(code: int) -> None:
            span.set("http.response.status_code", code)
            if code >= 400:
                span.fail(str(code))

        yield status


# --- responses -------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: Callable[[], datetime] | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def issues_of(outcome: Any) -> tuple[Issue, ...]:
    """OperationOutcome.issue as `Issue`s (tolerant of missing parts)."""
    if not isinstance(outcome, Mapping) or outcome.get("resourceType") != "OperationOutcome":
        return ()
    found: list[Issue] = []
    for raw in outcome.get("issue") or []:
        if not isinstance(raw, Mapping):
            continue
        expression = raw.get("expression") or raw.get("location") or []
        diagnostics = raw.get("diagnostics")
        if not diagnostics and isinstance(raw.get("details"), Mapping):
            diagnostics = raw["details"].get("text")
        found.append(
            Issue(
                severity=str(raw.get("severity", "error")),
                code=str(raw.get("code", "unknown")),
                diagnostics=str(diagnostics) if diagnostics else None,
                expression=tuple(str(e) for e in expression if isinstance(e, str)),
            )
        )
    return tuple(found)


def error_for(
    status: int,
    request: str,
    issues: tuple[Issue, ...] = (),
    *,
    retry_after: float | None = None,
    note: str = "",
) -> FhirError:
    """The typed error for an HTTP error status."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    message = f"FHIR server answered {status} {phrase}{note}"
    kwargs: dict[str, Any] = {"status": status, "request": request, "issues": issues}
    if status == 429:
        return FhirRateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        transient = status in TRANSIENT_STATUSES
        return FhirServerError(
            message, transient=transient, retry_after=retry_after if transient else None, **kwargs
        )
    # 400, 422 and any other refusal of the request as sent are FhirInvalid
    return BY_STATUS.get(status, FhirInvalid)(message, **kwargs)


def _json_body(response: httpx.Response) -> Any:
    try:
        return json_codec.loads(response.content)  # httpx's .json() is the standard library's
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def interpret(response: httpx.Response, request: str) -> Reply:
    """A Reply for a 2xx/3xx, or the typed FhirError the status and OperationOutcome call for."""
    status = response.status_code
    ctype = response.headers.get("content-type", "").split(";", 1)[0].strip() or "no content type"
    if status >= 400:
        body = _json_body(response)
        issues = issues_of(body)
        note = "" if issues or isinstance(body, Mapping) else f" (non-FHIR {ctype} body)"
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise error_for(status, request, issues, retry_after=retry_after, note=note)
    if not response.content.strip():
        return Reply(status, response.headers, None, request)
    body = _json_body(response)
    if body is None:
        raise FhirResponseInvalid(
            f"FHIR server answered {status} with a body that is not JSON ({ctype})",
            status=status,
            request=request,
        )
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise FhirResponseInvalid(
            f"FHIR server answered {status} with JSON that is not a FHIR resource",
            status=status,
            request=request,
        )
    return Reply(status, response.headers, body, request)


def transport_error(exc: httpx.TransportError, request: str) -> FhirTransportError:
    """The exception's class says what happened; its text (which may quote URLs) is left out."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    broken_setup = isinstance(exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError)
    return FhirTransportError(
        f"{type(exc).__name__} talking to the FHIR server",
        request=request,
        reached_server=not never_sent,
        transient=not broken_setup,
    )


# --- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits a random time in [d/2, d], where
    d = min(maximum, initial * multiplier**(n-1)). Tests make these tiny."""

    initial: float = 0.25
    maximum: float = 5.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        exponent = max(0, attempt - 1)
        try:
            ceiling = min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:  # e.g. 2.0 ** 1024, after many quick attempts within a budget
            ceiling = self.maximum
        return random.uniform(ceiling / 2, ceiling)


def should_retry(exc: BaseException, call: Call) -> bool:
    if not isinstance(exc, FhirError) or not exc.transient:
        return False
    if call.retry_safe:
        return True
    if isinstance(exc, FhirTransportError):
        return not exc.reached_server
    # 429 means the server refused to process the request, so repeating cannot duplicate it.
    return isinstance(exc, FhirRateLimited)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry transient failures within `budget` seconds in total (waits included)."""

    budget: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, float | int):
            return float(retry_after)  # the server's word; `_stop` gives up if it won't fit
        remaining = self.budget - (state.seconds_since_start or 0.0)
        return max(0.0, min(self.backoff.delay(state.attempt_number), remaining))

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        elapsed = state.seconds_since_start or 0.0
        return elapsed + (state.upcoming_sleep or 0.0) > self.budget

    def _kwargs(self, call: Call, label: str) -> dict[str, Any]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            why = getattr(exc, "status", None) or type(exc).__name__
            log.warning(
                "retrying %s after %s (attempt %d failed, waiting %.2fs)",
                label,
                why,
                state.attempt_number,
                state.upcoming_sleep,
            )

        return {
            "retry": tenacity.retry_if_exception(lambda e: should_retry(e, call)),
            "wait": self._wait,
            "stop": self._stop,
            "reraise": True,
            "before_sleep": before_sleep,
        }

    def retrying(
        self, call: Call, label: str, sleep: Callable[[float], None] | None = None
    ) -> tenacity.Retrying:
        return tenacity.Retrying(sleep=sleep or time.sleep, **self._kwargs(call, label))

    def run(
        self,
        attempt: Callable[[], R],
        call: Call,
        label: str,
        sleep: Callable[[float], None] | None = None,
    ) -> R:
        """`attempt()` under this policy. The first try runs outside tenacity: nearly every
        request succeeds first time, and a `Retrying` per request was ~3 % of a worker's CPU. A
        retryable failure hands over to tenacity as its attempt 1 (logged and waited on as
        before), with the budget less the time that try took."""
        started = time.monotonic()
        try:
            return attempt()
        except Exception as exc:
            if not should_retry(exc, call):
                raise
            failed: list[Exception] = [exc]

        def again() -> R:
            if failed:
                raise failed.pop()
            return attempt()

        rest = replace(self, budget=self.budget - (time.monotonic() - started))
        return rest.retrying(call, label, sleep)(again)

    def async_retrying(
        self, call: Call, label: str, sleep: Callable[[float], Awaitable[None]] | None = None
    ) -> tenacity.AsyncRetrying:
        kwargs = self._kwargs(call, label)
        if sleep is not None:
            kwargs["sleep"] = sleep
        return tenacity.AsyncRetrying(**kwargs)
