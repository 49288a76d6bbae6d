"""The blocking FHIR REST client (httpx). `AsyncFhirClient` (async_client.py) has the same methods.

    with FhirClient("https://fhir.example.org/fhir", auth=BearerToken(token)) as fhir:
        task = fhir.read("Task", "123")
        open_tasks = fhir.search("Task", {"patient": "Patient/1", "status": "requested"})
        result = fhir.apply(effects.writes)   # ONE transaction Bundle

Every method raises a `carecoord.fhir.errors.FhirError` subclass on failure; transient failures
are retried inside `retry_budget` seconds first (see transport.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, cast

import httpx
from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import FhirWrite
from carecoord.core.handler import FhirReader
from carecoord.fhir import operations as ops
from carecoord.fhir.bundles import BatchResult, TransactionResult, identifier_blind_types
from carecoord.fhir.errors import FhirError
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion, parse_resource
from carecoord.fhir.operations import Known, Mutate, Op, SearchParams
from carecoord.fhir.transport import (
    FHIR_JSON,
    Backoff,
    Call,
    Reply,
    RetryPolicy,
    build_request,
    error_for,
    interpret,
    label_of,
    request_span,
    transport_error,
)

T = TypeVar("T")


def default_headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"Accept": FHIR_JSON, "User-Agent": "carecoord"}
    headers.update(extra or {})
    return headers


class HttpOptions(TypedDict):
    """The httpx client's options, the same for both flavours."""

    base_url: str
    auth: httpx.Auth | None
    timeout: float
    headers: dict[str, str]


TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)
SleepT = TypeVar("SleepT", bound=Callable[[float], object])


class ClientBase(Generic[TransportT, SleepT]):
    """What both clients share: the constructor, configuration and the pure steps around I/O.

    A subclass opens its httpx client, sleep and lock (sync or async) in `_open`."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 10.0,
        retry_budget: float = 30.0,
        fhir_version: FhirVersion = DEFAULT_VERSION,
        transport: TransportT | None = None,
        headers: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        sleep: SleepT | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.fhir_version: FhirVersion = fhir_version
        self.retry = RetryPolicy(budget=retry_budget, backoff=backoff or Backoff())
        # The CapabilityStatement, fetched once per client and shared by every caller.
        self._statement: dict[str, Any] | None = None
        # Types whose creates go out as PUT with a stable id (learned on the first apply).
        self._put_types: frozenset[str] | None = None
        http = HttpOptions(
            base_url=self.base_url, auth=auth, timeout=timeout, headers=default_headers(headers)
        )
        self._open(transport, sleep, http)

    def _open(self, transport: TransportT | None, sleep: SleepT | None, http: HttpOptions) -> None:
        """Set `_http` (an httpx client made with the `http` options), `_sleep` and the lock."""
        raise NotImplementedError

    @staticmethod
    def put_types_of(statement: Mapping[str, Any] | FhirError) -> frozenset[str]:
        """Identifier-blind types from the statement, or from the error fetching it: a server
        that has none (404, not FHIR) gets the spec's behaviour; one that is down raises."""
        if isinstance(statement, FhirError):
            if statement.unavailable:
                raise statement
            return frozenset()
        return identifier_blind_types(statement)

    @staticmethod
    def answer(op: Op[T], reply: Reply | FhirError) -> Call:
        """Hand an operation the reply to its call, or the error it met: the next call it yields
        (StopIteration carries its result)."""
        return op.throw(reply) if isinstance(reply, FhirError) else op.send(reply)

    @staticmethod
    def check_ping(response: httpx.Response, label: str) -> None:
        """Any answer is "up" except 5xx and 429 (an auth error still proves the server is up)."""
        if response.status_code >= 500 or response.status_code == 429:
            raise error_for(response.status_code, label)

    def __repr__(self) -> str:  # no headers: they may carry credentials
        return f"{type(self).__name__}({self.base_url!r}, fhir_version={self.fhir_version!r})"


class FhirClient(ClientBase[httpx.BaseTransport, Callable[[float], None]]):
    """Blocking FHIR client; satisfies the handlers' `FhirReader` protocol."""

    def _open(
        self,
        transport: httpx.BaseTransport | None,
        sleep: Callable[[float], None] | None,
        http: HttpOptions,
    ) -> None:
        self._sleep = sleep or time.sleep
        self._statement_lock = threading.Lock()
        self._http = httpx.Client(transport=transport, **http)

    # --- plumbing ---

    def _send(self, call: Call) -> Reply:
        request = build_request(self._http, self.base_url, call)
        label = label_of(request)

        def attempt() -> Reply:
            try:
                with request_span(request, self.base_url) as status:
                    response = self._http.send(request)
                    status(response.status_code)
            except httpx.TransportError as exc:
                raise transport_error(exc, label) from exc
            return interpret(response, label)

        return self.retry.run(attempt, call, label, self._sleep)

    def _run(self, op: Op[T]) -> T:
        """Drive an operation: send each call it yields, hand back the reply or the error."""
        try:
            call = next(op)
            while True:
                try:
                    reply: Reply | FhirError = self._send(call)
                except FhirError as exc:
                    reply = exc
                call = self.answer(op, reply)
        except StopIteration as stop:
            return cast(T, stop.value)

    # --- reads ---

    def read(self, resource_type: str, resource_id: str) -> Resource:
        return self._run(ops.read(resource_type, resource_id, self.fhir_version))

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> Resource:
        return self._run(ops.vread(resource_type, resource_id, version_id, self.fhir_version))

    def search(self, resource_type: str, params: SearchParams) -> list[Resource]:
        """All matches, every page followed, `_include`d resources included (each once)."""
        return self._run(ops.search(resource_type, params, self.base_url, self.fhir_version))

    def search_pages(self, resource_type: str, params: SearchParams) -> Iterator[Resource]:
        """The searchset Bundles one page at a time, for results too big to hold at once."""
        call: Call | None = ops.search_call(resource_type, params)
        while call is not None:
            body, call = self._run(ops.fetch_page(call, self.base_url))
            yield parse_resource(body, self.fhir_version)

    def search_batch(
        self, searches: Sequence[tuple[str, Sequence[tuple[str, str]]]]
    ) -> list[list[Resource] | None]:
        """Several searches as ONE batch of GETs (see carecoord.fhir.batch_reads): each one's
        resources, or None where its entry failed or has more pages."""
        from carecoord.fhir.batch_reads import search_batch

        return self._run(search_batch(searches, self.fhir_version))

    def capability_statement(self) -> dict[str, Any]:
        """The server's CapabilityStatement as JSON, fetched once per client: concurrent first
        callers wait for one request instead of each sending their own. Asked many times per
        event (each capability a handler checks): once fetched, answered without the lock."""
        statement = self._statement
        if statement is not None:
            return statement
        with self._statement_lock:
            if self._statement is None:
                self._statement = self._run(ops.capability_statement())
            return self._statement

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """One REST request as JSON in and out, for resources the typed models cannot carry
        faithfully (e.g. a Subscription's primitive extensions, `_criteria`) and operations
        (`Subscription/<id>/$status`). Errors are the typed FhirErrors; None: no body."""
        call = Call(method, path, params=params, body=body, retry_safe=method in ("GET", "PUT"))
        return self._run(_one(call))

    def capabilities(self) -> Resource:
        return parse_resource(self.capability_statement(), self.fhir_version)

    def ping(self, timeout: float = 5.0) -> None:
        """One cheap request without retries, for health probes: returns if the server answers
        (see `check_ping`), raises an `unavailable` FhirError if it does not."""
        request = build_request(self._http, self.base_url, ops.ping_call())
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        label = label_of(request)
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, label) from exc
        self.check_ping(response, label)

    # --- writes ---

    def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource:
        """POST; with `if_none_exist` ("identifier=system|value") the existing match is returned."""
        return self._run(ops.create(resource, if_none_exist, self.fhir_version))

    def update(self, resource: Resource, *, if_match: str | None = None) -> Resource:
        """PUT; `if_match` is the version the change was based on (sent as W/"<vid>")."""
        return self._run(ops.update(resource, if_match, self.fhir_version))

    def update_with_retry(
        self, resource_type: str, resource_id: str, mutate: Mutate, attempts: int = 5
    ) -> Resource:
        """Read, mutate, update with If-Match; on 409/412 re-read and re-apply."""
        return self._run(
            ops.update_with_retry(resource_type, resource_id, mutate, attempts, self.fhir_version)
        )

    def delete(self, resource_type: str, resource_id: str) -> None:
        self._run(ops.delete(resource_type, resource_id))

    def transaction(self, bundle: Resource | Mapping[str, Any]) -> TransactionResult:
        """All-or-nothing; the result maps each entry (and urn:uuid fullUrl) to "Type/id"."""
        return self._run(ops.transaction(bundle, self.fhir_version))

    def batch(self, bundle: Resource | Mapping[str, Any]) -> BatchResult:
        """Entries succeed or fail independently; failed entries carry `error`."""
        return self._run(ops.batch(bundle, self.fhir_version))

    def apply(
        self, writes: Sequence[FhirWrite], *, known: Known | None = None
    ) -> TransactionResult:
        """A handler's effects (Create/Update) as ONE transaction; nothing is sent for none."""
        if self._put_types is None:
            try:
                statement: dict[str, Any] | FhirError = self.capability_statement()
            except FhirError as exc:
                statement = exc
            self._put_types = self.put_types_of(statement)
        return self._run(ops.apply(writes, self.fhir_version, self._put_types, known))

    # --- lifecycle ---

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


if TYPE_CHECKING:  # FhirClient must stay usable as the handlers' read-only context

    def _is_reader(client: FhirClient) -> FhirReader:
        return client


def _one(call: Call) -> Generator[Call, Reply, dict[str, Any] | None]:
    reply = yield call
    return reply.body
