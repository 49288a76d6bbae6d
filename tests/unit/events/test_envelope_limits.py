"""The envelope parser's limits: nesting depth is bounded before any recursive parse."""

from __future__ import annotations

import json

import pytest

from carecoord.core.envelope import MAX_JSON_DEPTH, CloudEvent
from carecoord.errors import MalformedEvent
from carecoord.events import dlq
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from support.runtime import Observed, Recorder, event_bytes, headers_of, options, produce


def envelope_with_data_depth(depth: int, *, leaf: str = "1") -> bytes:
    """A valid CloudEvent whose JSON nests `depth` containers in all (the envelope is one)."""
    inner = '{"a":' * (depth - 2) + leaf + "}" * (depth - 2)
    head = '{"specversion":"1.0","id":"e1","source":"s","type":"t","subject":"Patient/p1"'
    return f'{head},"data":{{"x":{inner}}}}}'.encode() if depth > 2 else f"{head}}}".encode()


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000, b"{" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000],
    ids=["open-arrays", "open-objects", "open-members", "balanced-arrays"],
)
def test_deeply_nested_input_is_malformed_not_a_recursion_error(raw: bytes) -> None:
    with pytest.raises(MalformedEvent, match="nested deeper than 64"):
        CloudEvent.from_json_bytes(raw)


def test_nesting_limit_applies_to_valid_events_too() -> None:
    at_limit = envelope_with_data_depth(MAX_JSON_DEPTH)
    assert json.loads(at_limit)["id"] == "e1"
    assert CloudEvent.from_json_bytes(at_limit).id == "e1"
    with pytest.raises(MalformedEvent, match="nested deeper than 64") as err:
        CloudEvent.from_json_bytes(envelope_with_data_depth(MAX_JSON_DEPTH + 1))
    assert err.value.context == {}  # no partial parse to take an id from


def test_brackets_inside_strings_do_not_count() -> None:
    text = '[{\\"' * 500 + "]" * 100  # escaped quotes must not end the string early
    raw = envelope_with_data_depth(3, leaf=json.dumps(text))
    event = CloudEvent.from_json_bytes(raw)
    assert event.data["x"]["a"] == text


def test_deep_message_is_dead_lettered_at_once_as_malformed() -> None:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p1", b"[" * 100_000)
    produce(broker, "in", "p1", event_bytes("p1", 1))
    obs = Observed()
    rec = Recorder()
    runtime = EventRuntime(rec, options(retry_budget_seconds=5.0), broker=broker, observer=obs)
    assert runtime.run_until_idle(timeout=10.0)

    assert rec.per_patient() == {"p1": [1]}
    [letter] = broker.records("dlq")
    h = headers_of(letter)
    assert h[dlq.H_ERROR_TYPE] == "MalformedEvent"
    assert h[dlq.H_ATTEMPTS] == "1"  # permanent: not retried as if transient
    assert obs.retries == 0
    assert letter.value == b"[" * 100_000
