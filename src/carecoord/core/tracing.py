"""Optional OpenTelemetry tracing: the one module that imports `opentelemetry`.

With the `otel` extra (opentelemetry-api) installed, `span()` starts real spans on the global
tracer provider (or the one given to `use_tracer_provider`); without it every function here is a
no-op, except that an inbound W3C trace context is still forwarded to the events an event causes
and its trace id still reaches the log lines (`log_ids`).

Trace context travels in and out as the CloudEvents distributed-tracing extension's `traceparent`
and `tracestate` attributes (CloudEvents 1.0, extensions/distributed-tracing.md), whose values are
W3C Trace Context headers (https://www.w3.org/TR/trace-context/). Span attributes follow the
OpenTelemetry semantic conventions (messaging, HTTP, CloudEvents) where they name the thing; none
carries PHI: ids, types, topics, offsets, status codes, templated paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Literal

try:
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _trace
    from opentelemetry.context import Context as _Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: TraceContextTextMapPropagator | None = TraceContextTextMapPropagator()
except ImportError:  # the `otel` extra is not installed: tracing is a no-op
    _PROPAGATOR = None

ENABLED = _PROPAGATOR is not None
"""True when opentelemetry-api is importable (spans are recorded once an SDK is configured)."""

Kind = Literal["internal", "consumer", "producer", "client"]
AttributeValue = str | bool | int | float | Sequence[str]

# W3C Trace Context §3.2 (traceparent): version "-" trace-id "-" parent-id "-" trace-flags, in
# lowercase hex; version ff is invalid, version 00 has nothing after the flags, a later version
# may add fields after a "-"; an all-zero trace-id or parent-id is invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?")
_ZERO_TRACE, _ZERO_PARENT = "0" * 32, "0" * 16
# Longest value kept: version 00 is 55 characters; W3C asks to propagate at least 512 of tracestate.
MAX_TRACEPARENT = 256
MAX_TRACESTATE = 512

# The trace context of the event being handled as it came in (traceparent, tracestate): what is
# forwarded, and logged, when no OpenTelemetry span of ours is current.
_INBOUND: ContextVar[tuple[str, str | None] | None] = ContextVar("carecoord_inbound", default=None)

_tracer: Any = _trace.get_tracer("carecoord") if ENABLED else None
_own_provider = False  # use_tracer_provider was given one


def valid_traceparent(value: object) -> bool:
    """True if `value` is a W3C traceparent this implementation may parse."""
    if not isinstance(value, str) or len(value) > MAX_TRACEPARENT:
        return False
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        return False
    version, trace_id, parent_id, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return False
    return trace_id != _ZERO_TRACE and parent_id != _ZERO_PARENT


def use_tracer_provider(provider: Any | None) -> None:
    """Record carecoord's spans with `provider` (an SDK TracerProvider) instead of the global one;
    None goes back to the global provider. A no-op without opentelemetry."""
    global _tracer, _own_provider
    if ENABLED:
        _own_provider = provider is not None
        _tracer = (provider or _trace).get_tracer("carecoord")


class Span:
    """What the code may do with the span it started: add attributes, record a failure."""

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, key: str, value: AttributeValue | None) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def fail(self, error_type: str) -> None:
        """Mark the span failed with the error's type name only (messages may hold payload)."""
        if self._span is not None:
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, error_type))


_NO_SPAN = Span()
_KINDS: dict[str, Any] = (
    {
        "internal": _trace.SpanKind.INTERNAL,
        "consumer": _trace.SpanKind.CONSUMER,
        "producer": _trace.SpanKind.PRODUCER,
        "client": _trace.SpanKind.CLIENT,
    }
    if ENABLED
    else {}
)
_NO_SDK: tuple[type, ...] = (
    (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider) if ENABLED else ()
)


def recording() -> bool:
    """Whether spans are recorded: opentelemetry is installed and a tracer provider (an SDK) is
    configured. Without one the API's spans would record nothing and cost time per event."""
    return ENABLED and (_own_provider or not isinstance(_trace.get_tracer_provider(), _NO_SDK))


class span:  # lower case: used like a function, `with span("send topic") as s:`
    """A span, current inside the block; an exception leaving the block marks it failed (its type).

    `inbound` (traceparent, tracestate) makes the span the start of handling one event: its parent
    is that context (a new trace when traceparent is None or invalid), never the thread's current
    span, and the context is remembered for `outgoing` and `log_ids` even when no span is recorded.
    A class rather than a generator context manager: it runs on the per-event hot path.
    """

    __slots__ = (
        "_attributes",
        "_inbound",
        "_inbound_token",
        "_kind",
        "_name",
        "_record",
        "_span",
        "_token",
    )

    def __init__(
        self,
        name: str,
        kind: Kind = "internal",
        attributes: Mapping[str, AttributeValue | None] | None = None,
        *,
        inbound: tuple[str | None, str | None] | None = None,
        record: bool | None = None,
    ) -> None:
        """`record`: the caller's `recording()` answer, when it asked once for many spans (the
        event runtime asks once per batch); None asks here."""
        self._name = name
        self._record = record
        self._kind = kind
        self._attributes = attributes
        self._inbound = inbound
        self._inbound_token: Any = None
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Span:
        traceparent = tracestate = None
        if self._inbound is not None:
            traceparent, tracestate = self._inbound
            if not valid_traceparent(traceparent):
                traceparent = tracestate = None
            remembered = (traceparent, tracestate) if traceparent is not None else None
            if remembered is not None or _INBOUND.get() is not None:  # else nothing to change
                self._inbound_token = _INBOUND.set(remembered)
        if not (recording() if self._record is None else self._record):
            return _NO_SPAN
        parent = None if self._inbound is None else _parent_context(traceparent, tracestate)
        attributes = {k: v for k, v in (self._attributes or {}).items() if v is not None}
        self._span = _tracer.start_span(
            self._name,
            context=parent,
            kind=_KINDS[self._kind],
            attributes=attributes,
            record_exception=False,  # an exception's text may quote payload values
            set_status_on_exception=False,
        )
        self._token = _otel_context.attach(_trace.set_span_in_context(self._span))
        return Span(self._span)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._span is not None:
            if exc_type is not None:
                Span(self._span).fail(exc_type.__name__)
            _otel_context.detach(self._token)
            self._span.end()
        if self._inbound_token is not None:
            _INBOUND.reset(self._inbound_token)


def _parent_context(traceparent: str | None, tracestate: str | None) -> Any:
    assert _PROPAGATOR is not None
    if traceparent is None:
        return _Context()  # a root span: not a child of whatever the thread had current
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def set_attribute(key: str, value: AttributeValue) -> None:
    """Set an attribute on the current span (if a recording one is current)."""
    if ENABLED:
        _trace.get_current_span().set_attribute(key, value)


def outgoing() -> dict[str, str]:
    """The trace context for an event produced now: `traceparent` (and `tracestate`) of the
    current span, or the inbound event's as it came when no span of ours is current; {} if none."""
    if ENABLED:
        assert _PROPAGATOR is not None
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        if carrier:
            return carrier
    inbound = _INBOUND.get()
    if inbound is None:
        return {}
    traceparent, tracestate = inbound
    return (
        {"traceparent": traceparent, "tracestate": tracestate}
        if tracestate
        else {"traceparent": traceparent}
    )


def log_ids() -> dict[str, str]:
    """`trace_id` of the current trace and `span_id` of the current span of ours (recording), as
    lowercase hex, for log lines; {} outside any trace."""
    if ENABLED:
        current = _trace.get_current_span()
        ctx = current.get_span_context()
        if ctx.is_valid:
            ids = {"trace_id": _trace.format_trace_id(ctx.trace_id)}
            if current.is_recording():
                ids["span_id"] = _trace.format_span_id(ctx.span_id)
            return ids
    inbound = _INBOUND.get()
    return {"trace_id": inbound[0][3:35]} if inbound is not None else {}
