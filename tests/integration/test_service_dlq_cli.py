"""`carecoord dlq list` and `carecoord dlq replay` against the real broker."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.core.envelope import new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection, Record
from carecoord.events.dlq import dead_letter_message

pytestmark = pytest.mark.integration


def test_list_and_replay_dead_letters(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    source, dlq = f"dlqcli-in-{unique}", f"dlqcli-dlq-{unique}"
    monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CARECOORD_TOPIC_IN", source)
    monkeypatch.setenv("CARECOORD_TOPIC_DLQ", dlq)  # no FHIR URL: the dlq commands need none

    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    broker.ensure_topics({source: 1, dlq: 1})
    letters = []
    for i, error in enumerate(["MalformedEvent", "FhirInvalid", "MalformedEvent"]):
        event = new_event("carecoord.time.logged", f"p{i}", {}, id=f"{unique}-{i}")
        record = Record(source, 0, 10 + i, event.key, event.to_json_bytes())
        letters.append(
            dead_letter_message(
                record,
                dlq,
                error_type=error,
                message="bad",
                attempts=1,
                first_failure=0.0,
                last_failure=0.0,
            )
        )
    producer = broker.producer()
    producer.send_all(letters, 30)
    producer.close()

    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(r["event_id"], r["error_type"], r["source_offset"]) for r in rows] == [
        (f"{unique}-0", "MalformedEvent", 10),
        (f"{unique}-1", "FhirInvalid", 11),
        (f"{unique}-2", "MalformedEvent", 12),
    ]

    table = runner.invoke(app, ["dlq", "list", "--limit", "1"])
    assert table.exit_code == 0, table.output
    assert f"{unique}-0" in table.output and f"{unique}-1" not in table.output
    assert "2 more not shown" in table.output

    replayed = runner.invoke(app, ["dlq", "replay", "--error-type", "MalformedEvent"])
    assert replayed.exit_code == 0, replayed.output
    assert "replayed 2 dead letter(s)" in replayed.output
    back = list(broker.read_topic(source))
    ids = [json.loads(r.value or b"")["id"] for r in back]
    assert ids == [f"{unique}-0", f"{unique}-2"]
    assert all(r.header("carecoord.replay.of") for r in back)


def test_dlq_without_bootstrap_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["dlq", "list"])
    assert result.exit_code == 2
    assert "CARECOORD_KAFKA_BOOTSTRAP is not set" in result.output
    assert "FHIR" not in result.output
