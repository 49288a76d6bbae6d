"""The async FHIR REST client: `FhirClient`'s methods, awaitable (same operations, async I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx
from fhir.resources.R4B.resource import Resource

from carecoord.core.effects import FhirWrite
from carecoord.fhir import operations as ops
from carecoord.fhir.bundles import BatchResult, TransactionResult
from carecoord.fhir.client import ClientBase, HttpOptions
from carecoord.fhir.errors import FhirError
from carecoord.fhir.models import parse_resource
from carecoord.fhir.operations import Known, Mutate, Op, SearchParams
from carecoord.fhir.transport import (
    Call,
    Reply,
    build_request,
    interpret,
    label_of,
    request_span,
    transport_error,
)

T = TypeVar("T")


class AsyncFhirClient(ClientBase[httpx.AsyncBaseTransport, Callable[[float], Awaitable[None]]]):
    """Async FHIR client: `FhirClient`'s methods, awaitable."""

    def _open(
        self,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Callable[[float], Awaitable[None]] | None,
        http: HttpOptions,
    ) -> None:
        self._sleep = sleep or asyncio.sleep
        self._statement_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(transport=transport, **http)

    async def _send(self, call: Call) -> Reply:
        request = build_request(self._http, self.base_url, call)
        label = label_of(request)

        async def attempt() -> Reply:
            try:
                with request_span(request, self.base_url) as status:
                    response = await self._http.send(request)
                    status(response.status_code)
            except httpx.TransportError as exc:
                raise transport_error(exc, label) from exc
            return interpret(response, label)

        return cast(Reply, await self.retry.async_retrying(call, label, self._sleep)(attempt))

    async def _run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    reply: Reply | FhirError = await self._send(call)
                except FhirError as exc:
                    reply = exc
                call = self.answer(op, reply)
        except StopIteration as stop:
            return cast(T, stop.value)

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        return await self._run(ops.read(resource_type, resource_id, self.fhir_version))

    async def vread(self, resource_type: str, resource_id: str, version_id: str) -> Resource:
        return await self._run(ops.vread(resource_type, resource_id, version_id, self.fhir_version))

    async def search(self, resource_type: str, params: SearchParams) -> list[Resource]:
        return await self._run(ops.search(resource_type, params, self.base_url, self.fhir_version))

    async def search_pages(
        self, resource_type: str, params: SearchParams
    ) -> AsyncIterator[Resource]:
        call: Call | None = ops.search_call(resource_type, params)
        while call is not None:
            body, call = await self._run(ops.fetch_page(call, self.base_url))
            yield parse_resource(body, self.fhir_version)

    async def search_batch(
        self, searches: Sequence[tuple[str, Sequence[tuple[str, str]]]]
    ) -> list[list[Resource] | None]:
        """Several searches as ONE batch of GETs (see FhirClient.search_batch)."""
        from carecoord.fhir.batch_reads import search_batch

        return await self._run(search_batch(searches, self.fhir_version))

    async def capability_statement(self) -> dict[str, Any]:
        """The CapabilityStatement as JSON, fetched once per client (see FhirClient)."""
        async with self._statement_lock:
            if self._statement is None:
                self._statement = await self._run(ops.capability_statement())
            return self._statement

    async def capabilities(self) -> Resource:
        return parse_resource(await self.capability_statement(), self.fhir_version)

    async def ping(self, timeout: float = 5.0) -> None:
        """One cheap request without retries, for health probes (see FhirClient.ping)."""
        request = build_request(self._http, self.base_url, ops.ping_call())
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        label = label_of(request)
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise transport_error(exc, label) from exc
        self.check_ping(response, label)

    async def create(self, resource: Resource, *, if_none_exist: str | None = None) -> Resource:
        return await self._run(ops.create(resource, if_none_exist, self.fhir_version))

    async def update(self, resource: Resource, *, if_match: str | None = None) -> Resource:
        return await self._run(ops.update(resource, if_match, self.fhir_version))

    async def update_with_retry(
        self, resource_type: str, resource_id: str, mutate: Mutate, attempts: int = 5
    ) -> Resource:
        return await self._run(
            ops.update_with_retry(resource_type, resource_id, mutate, attempts, self.fhir_version)
        )

    async def delete(self, resource_type: str, resource_id: str) -> None:
        await self._run(ops.delete(resource_type, resource_id))

    async def transaction(self, bundle: Resource | Mapping[str, Any]) -> TransactionResult:
        return await self._run(ops.transaction(bundle, self.fhir_version))

    async def batch(self, bundle: Resource | Mapping[str, Any]) -> BatchResult:
        return await self._run(ops.batch(bundle, self.fhir_version))

    async def apply(
        self, writes: Sequence[FhirWrite], *, known: Known | None = None
    ) -> TransactionResult:
        if self._put_types is None:
            try:
                statement: dict[str, Any] | FhirError = await self.capability_statement()
            except FhirError as exc:
                statement = exc
            self._put_types = self.put_types_of(statement)
        return await self._run(ops.apply(writes, self.fhir_version, self._put_types, known))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFhirClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
