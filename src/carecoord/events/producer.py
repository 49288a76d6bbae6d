"""Turn handler `Emit`s into outbound CloudEvents and produce them (keyed by patient id)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from carecoord.core import tracing
from carecoord.core.effects import Emit
from carecoord.core.envelope import DEFAULT_SOURCE, CloudEvent
from carecoord.events.broker import Message, Producer


def emit_to_event(emit: Emit, *, source: str = DEFAULT_SOURCE) -> CloudEvent:
    """The CloudEvent for an Emit: its id is the Emit's deterministic id (downstream dedup)."""
    return CloudEvent(
        id=emit.id,
        source=source,
        type=emit.type,
        time=datetime.now(UTC),
        subject=emit.subject,
        data=dict(emit.data),
    )


def event_message(event: CloudEvent, topic: str) -> Message:
    """Structured-mode CloudEvent; key = the subject's patient id, so per-patient order holds."""
    return Message(
        topic=topic,
        key=event.key,
        value=event.to_json_bytes(),
        headers=(("content-type", b"application/cloudevents+json"),),
    )


def with_trace_context(event: CloudEvent) -> CloudEvent:
    """`event` carrying the current trace context (the CloudEvents distributed-tracing extension),
    unless it already carries its own."""
    if event.traceparent is not None:
        return event
    context = tracing.outgoing()
    return event.model_copy(update=context) if context else event


class EventProducer:
    """Produces CloudEvents to one topic and waits until the broker acknowledged all of them."""

    def __init__(self, producer: Producer, topic: str, *, source: str = DEFAULT_SOURCE) -> None:
        self._producer = producer
        self.topic = topic
        self.source = source

    def publish(self, events: Sequence[CloudEvent], timeout: float = 30.0) -> None:
        """One producer span ("send <topic>") per call; each event carries its trace context."""
        if not events:
            return
        single = events[0] if len(events) == 1 else None
        attributes: dict[str, tracing.AttributeValue | None] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            "messaging.destination.name": self.topic,
            "messaging.batch.message_count": len(events) if single is None else None,
            "messaging.message.id": single.id if single is not None else None,
        }
        with tracing.span(f"send {self.topic}", "producer", attributes):
            messages = [event_message(with_trace_context(e), self.topic) for e in events]
            self._producer.send_all(messages, timeout)

    def publish_emits(self, emits: Sequence[Emit], timeout: float = 30.0) -> None:
        self.publish([emit_to_event(e, source=self.source) for e in emits], timeout)
