"""`carecoord dlq list` and `replay` handle any dead-letter record, whatever its bytes."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.cli import service_commands as commands
from carecoord.core.envelope import new_event
from carecoord.events import dlq
from carecoord.events.broker import Message, Record
from carecoord.events.memory import InMemoryBroker

GOOD = new_event("carecoord.time.logged", "p0", {}, id="ev-good").to_json_bytes()
BIG = json.dumps({"id": "ev-big", "type": "carecoord.time.logged", "x": "a" * 3_000_000}).encode()
# (value, error type header or None for a record without any header)
RECORDS: list[tuple[bytes | None, str | None]] = [
    (GOOD, "MalformedEvent"),  # 0
    (b"[" * 100_000, "MalformedEvent"),  # 1
    (b'{"id":"ev-deep","x":' + b"{" * 100_000, "HandlerError"),  # 2
    (b"\xff\xfe\x00 invalid utf-8", "MalformedEvent"),  # 3
    (b"not json at all", "MalformedEvent"),  # 4
    (None, "MalformedEvent"),  # 5: a tombstone
    (BIG, "FhirInvalid"),  # 6
    (b'["' + b"[" * 100_000 + b'"]', "MalformedEvent"),  # 7: brackets in a string only
    (b"\x00\x01\x02", None),  # 8: no headers at all
]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> InMemoryBroker:
    for name in list(os.environ):
        if name.startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # never contacted
    broker = InMemoryBroker(default_partitions=1)
    monkeypatch.setattr(commands, "_broker", lambda settings: broker)
    messages = []
    for i, (value, error) in enumerate(RECORDS):
        record = Record("carecoord.events", 0, 100 + i, f"p{i}".encode(), value, (("tr", b"x"),))
        if error is None:
            messages.append(Message("carecoord.dlq", record.key, value))
            continue
        messages.append(
            dlq.dead_letter_message(
                record,
                "carecoord.dlq",
                error_type=error,
                message="why",
                attempts=1,
                first_failure=0.0,
                last_failure=0.0,
            )
        )
    broker.producer().send_all(messages, 5)
    return broker


def test_list_shows_every_record(broker: InMemoryBroker) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["offset"] for r in rows] == list(range(len(RECORDS)))
    ids = {r["offset"]: r["event_id"] for r in rows if r["event_id"] is not None}
    assert ids == {0: "ev-good", 6: "ev-big"}
    assert [r["error_type"] for r in rows] == [e for _, e in RECORDS]
    assert rows[8]["source_topic"] is None and rows[8]["attempts"] is None

    table = runner.invoke(app, ["dlq", "list"])
    assert table.exit_code == 0, table.output
    assert len(table.output.splitlines()) == 1 + len(RECORDS)


def test_replay_selects_by_headers_and_republishes_the_original_bytes(
    broker: InMemoryBroker,
) -> None:
    runner = CliRunner()
    by_type = runner.invoke(app, ["dlq", "replay", "--error-type", "HandlerError"])
    assert by_type.exit_code == 0, by_type.output
    assert "replayed 1 dead letter(s)" in by_type.output
    [deep] = broker.records("carecoord.events")
    assert deep.value == RECORDS[2][0] and deep.key == b"p2"

    by_range = runner.invoke(app, ["dlq", "replay", "--from-offset", "1", "--to-offset", "8"])
    assert by_range.exit_code == 0, by_range.output
    assert "replayed 7 dead letter(s)" in by_range.output
    assert "1 dead letter(s) without a source topic" in by_range.output  # offset 8: no headers
    back = broker.records("carecoord.events")[1:]
    assert [r.value for r in back] == [v for v, _ in RECORDS[1:8]]
    assert all(r.header("tr") == b"x" for r in back)

    elsewhere = runner.invoke(app, ["dlq", "replay", "--from-offset", "8", "--to-topic", "t2"])
    assert elsewhere.exit_code == 0, elsewhere.output
    [headless] = broker.records("t2")
    assert headless.value == RECORDS[8][0]
    assert headless.header(dlq.H_REPLAY) == b"carecoord.dlq/0/8"
