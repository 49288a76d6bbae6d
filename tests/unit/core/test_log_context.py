"""Log lines written while the runtime handles an event carry the event's ids (event id and type,
handler, patient id, topic/partition/offset) without the call site passing them; lines written
outside processing carry none of them."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime
from carecoord.handlers.processing import HandlerProcessor
from carecoord.service.logging import configure_logging
from carecoord.testing import InMemoryFhir
from support.runtime import options, produce

CONTEXT_FIELDS = {"event_id", "event_type", "handler", "patient_id", "topic", "partition", "offset"}
log = logging.getLogger("carecoord.handlers.test_logged")


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The service's JSON logging into a buffer, undone afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def lines(stream: io.StringIO, msg: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in parsed if line["msg"] == msg]


def logging_handler(event: CloudEvent, ctx: HandlerContext) -> Effects:
    log.info("handler says hello", extra={"n": event.data["n"]})
    return Effects()


def run_one(value: bytes, key: str) -> InMemoryBroker:
    broker = InMemoryBroker(default_partitions=1)
    produce(broker, "in", "p0", new_event("test.other", "p0", {"n": 0}, id="e0").to_json_bytes())
    produce(broker, "in", key, value)
    spec = HandlerSpec("greeter", ("test.logged", "test.other"), logging_handler)
    # One worker: the second record is handled on the thread that handled the first.
    processor = HandlerProcessor([spec], InMemoryFhir())
    runtime = EventRuntime(processor, options(max_in_flight=1), broker=broker)
    assert runtime.run_until_idle(timeout=10.0)
    return broker


def test_a_handler_log_line_carries_the_event_context(log_lines: io.StringIO) -> None:
    event = new_event("test.logged", "p-17", {"n": 1}, id="evt-1")
    run_one(event.to_json_bytes(), "p-17")

    (line,) = [line for line in lines(log_lines, "handler says hello") if line["n"] == 1]
    assert {k: line[k] for k in CONTEXT_FIELDS} == {
        "event_id": "evt-1",
        "event_type": "test.logged",
        "handler": "greeter",
        "patient_id": "p-17",
        "topic": "in",
        "partition": 0,
        "offset": 1,
    }
    log.info("after processing")
    (after,) = lines(log_lines, "after processing")
    assert not CONTEXT_FIELDS & after.keys()
    (started,) = lines(log_lines, "event runtime started")  # the poll loop's own lines: none
    assert not {"event_id", "handler", "offset", "patient_id"} & started.keys()


def test_runtime_lines_about_an_event_carry_its_record_and_ids(log_lines: io.StringIO) -> None:
    # Not a CloudEvent: dead-lettered, with the record's position (there is no event id).
    run_one(b'{"not": "an event"}', "p-2")
    (dead,) = lines(log_lines, "dead-lettered")
    position = {k: dead[k] for k in ("topic", "partition", "offset", "patient_id")}
    assert position == {"topic": "in", "partition": 0, "offset": 1, "patient_id": "p-2"}
    # Nothing is left over from the event the same thread handled before (e0, patient p0).
    assert "event_id" not in dead and "handler" not in dead


def test_a_key_that_is_not_a_fhir_id_is_not_logged(log_lines: io.StringIO) -> None:
    # The key equals the subject's patient "id", but free text is no FHIR id: it may be a name.
    event = new_event("test.logged", "Jane Doe", {"n": 1}, id="evt-2")
    run_one(event.to_json_bytes(), "Jane Doe")
    (line,) = [line for line in lines(log_lines, "handler says hello") if line["n"] == 1]
    assert line["event_id"] == "evt-2" and "patient_id" not in line
    assert "Jane" not in log_lines.getvalue()


def test_an_event_type_no_handler_takes_is_not_logged(log_lines: io.StringIO) -> None:
    # An unknown type may be free text: the dead-letter line names the event, not the type.
    run_one(new_event("Jane Doe called", "p-3", {}, id="evt-3").to_json_bytes(), "p-3")
    (dead,) = lines(log_lines, "dead-lettered")
    assert dead["event_id"] == "evt-3" and "event_type" not in dead
    assert "Jane" not in log_lines.getvalue()
