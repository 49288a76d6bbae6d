"""The event contract as an AsyncAPI 3.0 document, generated from the catalog's models.

One message per event type: the CloudEvents 1.0 structured-mode envelope (the v1 wire format)
whose `type` is fixed and whose `data` is the type's model as JSON Schema; the input, outbound
and dead-letter topics as channels, with the Kafka key (the patient id) and the dead-letter
headers. `carecoord catalog asyncapi` prints it; docs/asyncapi.yaml is a copy, tested to be
current. AsyncAPI 3.0.0: https://www.asyncapi.com/docs/reference/specification/v3.0.0; Kafka
bindings 0.5.0: https://github.com/asyncapi/bindings/tree/master/kafka
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from carecoord.core.catalog import FOLLOW_UPS, INBOUND, OUTBOUND, EventData
from carecoord.core.envelope import DEFAULT_SOURCE, SPEC_VERSION
from carecoord.core.references import FHIR_ID
from carecoord.events import dlq

KAFKA_BINDINGS = "0.5.0"
_SCHEMAS = "#/components/schemas/{model}"

# What each dead-letter header holds (events/dlq.py writes them).
DLQ_HEADERS = {
    dlq.H_ERROR_TYPE: "the error's class, e.g. MalformedEvent",
    dlq.H_ERROR_MESSAGE: "why, without PHI: ids, field names and catalog types only",
    dlq.H_TOPIC: "the topic the event was consumed from",
    dlq.H_PARTITION: "its partition",
    dlq.H_OFFSET: "its offset",
    dlq.H_ATTEMPTS: "how many times it was tried",
    dlq.H_FIRST_FAILURE: "ISO 8601 time of the first failure",
    dlq.H_LAST_FAILURE: "ISO 8601 time of the last failure",
    dlq.H_TRUNCATED: "the original value's size in bytes, when the value was truncated",
    dlq.H_SHA256: "the original value's SHA-256 (hex), when the value was truncated",
}


def _package_version() -> str:
    try:
        return version("carecoord")
    except PackageNotFoundError:  # pragma: no cover - running from a tree without metadata
        return "0"


def _summary(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) if model.__doc__ else None
    return " ".join(doc.split("\n\n")[0].split()) if doc else model.__name__


def _envelope(event_type: str, data_ref: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "subject", "data"],
        "properties": {
            "specversion": {"type": "string", "const": SPEC_VERSION},
            "id": {
                "type": "string",
                "minLength": 1,
                "description": "the idempotency key: a redelivery or replay has the same id",
            },
            "source": {"type": "string", "minLength": 1, "examples": [DEFAULT_SOURCE]},
            "type": {"type": "string", "const": event_type},
            "time": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "pattern": rf"^Patient/{FHIR_ID}$"},
            "datacontenttype": {"type": "string", "const": "application/json"},
            "dataschema": {"type": "string"},
            "traceparent": {
                "type": "string",
                "description": "W3C trace context (CloudEvents distributed-tracing extension)",
            },
            "tracestate": {"type": "string"},
            "data": {"$ref": data_ref},
        },
    }


def _kafka_key() -> dict[str, Any]:
    return {
        "kafka": {
            "key": {
                "type": "string",
                "pattern": f"^{FHIR_ID}$",
                "description": "the patient id of `subject`: one patient's events stay in order",
            },
            "bindingVersion": KAFKA_BINDINGS,
        }
    }


def asyncapi_document(
    *,
    topic_in: str = "carecoord.events",
    topic_out: str = "carecoord.outbound",
    topic_dlq: str = "carecoord.dlq",
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of carecoord's topics and catalog (plain JSON values)."""
    models: dict[str, type[EventData]] = {**INBOUND, **OUTBOUND}
    refs, definitions = models_json_schema(
        [(m, "validation") for m in models.values()], ref_template=_SCHEMAS
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    messages: dict[str, Any] = {}
    for event_type, model in models.items():
        data_ref = refs[(model, "validation")]["$ref"]
        messages[_name(event_type)] = {
            "name": event_type,
            "title": event_type,
            "summary": _summary(model),
            "contentType": "application/cloudevents+json",
            "payload": _envelope(event_type, data_ref),
            "bindings": _kafka_key(),
        }
    messages["dead-letter"] = {
        "name": "dead-letter",
        "summary": "The original record (key, value, headers) and why it could not be processed.",
        "description": "The value is the original bytes, whatever they are (not always JSON); "
        "a value too large for the broker is truncated, with its size and SHA-256 in headers.",
        "headers": {
            "type": "object",
            "properties": {h: {"type": "string", "description": d} for h, d in DLQ_HEADERS.items()},
            "required": [dlq.H_ERROR_TYPE, dlq.H_ERROR_MESSAGE, dlq.H_TOPIC, dlq.H_OFFSET],
        },
        "payload": {"description": "the original record's value"},
    }

    def channel(topic: str, names: list[str], description: str) -> dict[str, Any]:
        return {
            "address": topic,
            "description": description,
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDINGS}},
        }

    inbound = [_name(t) for t in INBOUND]
    outbound = [_name(t) for t in OUTBOUND]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "carecoord events",
            "version": _package_version(),
            "description": "The v1 event catalog of carecoord: CloudEvents 1.0, structured JSON, "
            "keyed by patient id. Fields may be added in later versions, never renamed or removed.",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {
            "events": channel(topic_in, inbound, "What carecoord consumes."),
            "outbound": channel(topic_out, outbound, "What carecoord emits."),
            "dead-letters": channel(topic_dlq, ["dead-letter"], "Events it could not process."),
        },
        "operations": {
            "consumeEvents": _operation("receive", "events", inbound),
            "emitEvents": _operation("send", "outbound", outbound),
            # follow-ups for another care domain, e.g. a scored assessment's clinical question
            "emitFollowUps": _operation("send", "events", [_name(t) for t in FOLLOW_UPS]),
            "deadLetter": _operation("send", "dead-letters", ["dead-letter"]),
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def _operation(action: str, channel: str, names: list[str]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names],
    }


def _name(event_type: str) -> str:
    """A message's key in the document: the type without the common prefix."""
    return event_type.removeprefix("carecoord.")
