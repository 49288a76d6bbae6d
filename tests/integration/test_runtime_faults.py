"""Fault tests: the runtime against the real broker (tansu) and the real FHIR server (sekmet)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from carecoord.core.envelope import new_event
from carecoord.events import dlq
from carecoord.events.broker import KafkaBroker, Message
from carecoord.events.runtime import EventRuntime
from carecoord.fhir.client import FhirClient
from support.fhir_proxy import FhirProxy
from support.runtime_faults import (
    EVENT_TYPE,
    BasicWriter,
    committed_total,
    connection,
    produce_events,
    runtime_options,
    written,
)
from support.waiting import wait_for

pytestmark = pytest.mark.integration

WORKER = Path(__file__).resolve().parents[1] / "support" / "runtime_worker.py"


def start_worker(bootstrap: str, fhir_url: str, tag: str, delay: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), bootstrap, fhir_url, tag, str(delay)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def no_duplicates(ids: list[str]) -> None:
    dupes = [k for k, n in collections.Counter(ids).items() if n > 1]
    assert dupes == [], f"duplicate FHIR resources for {dupes}"


def test_sigkill_mid_stream_then_restart_processes_everything_once(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    opts = runtime_options(kafka_bootstrap, unique)
    KafkaBroker(connection(kafka_bootstrap)).ensure_topics({opts.topic_in: 2})
    ids = produce_events(kafka_bootstrap, opts.topic_in, [f"p{i}" for i in range(6)], 10)

    worker = start_worker(kafka_bootstrap, fhir_base_url, unique, delay=0.1)
    try:
        wait_for(lambda: len(written(fhir_base_url, unique)) >= 10, 40, "some progress")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        assert len(set(written(fhir_base_url, unique))) < len(ids)  # really mid-stream

        worker = start_worker(kafka_bootstrap, fhir_base_url, unique, delay=0.0)
        wait_for(lambda: set(written(fhir_base_url, unique)) == set(ids), 40, "all events")
        wait_for(
            lambda: committed_total(kafka_bootstrap, opts.group_id, opts.topic_in, 2) == len(ids),
            20,
            "commits",
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0  # graceful exit
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    no_duplicates(written(fhir_base_url, unique))
    assert (
        list(dlq.list_dead_letters(KafkaBroker(connection(kafka_bootstrap)), opts.topic_dlq)) == []
    )


def test_fhir_server_503_and_429_for_a_while_loses_and_dead_letters_nothing(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    opts = runtime_options(kafka_bootstrap, unique)
    KafkaBroker(connection(kafka_bootstrap)).ensure_topics({opts.topic_in: 1})
    ids = produce_events(kafka_bootstrap, opts.topic_in, [f"p{i}" for i in range(4)], 5)
    proxy = FhirProxy(fhir_base_url)
    proxy.failing = True
    stop = threading.Event()
    with FhirClient(proxy.base_url, retry_budget=0) as fhir:
        runtime = EventRuntime(BasicWriter(fhir, unique), opts)
        thread = threading.Thread(target=runtime.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: proxy.refused >= 8, 30, "the outage to bite")
            proxy.failing = False
            wait_for(lambda: set(written(fhir_base_url, unique)) == set(ids), 40, "all events")
        finally:
            stop.set()
            thread.join(30)
            proxy.close()
    assert not thread.is_alive()
    no_duplicates(written(fhir_base_url, unique))
    assert (
        list(dlq.list_dead_letters(KafkaBroker(connection(kafka_bootstrap)), opts.topic_dlq)) == []
    )
    assert committed_total(kafka_bootstrap, opts.group_id, opts.topic_in, 1) == len(ids)


def test_second_consumer_joining_and_leaving_mid_stream_loses_nothing(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    opts = runtime_options(kafka_bootstrap, unique)
    KafkaBroker(connection(kafka_bootstrap)).ensure_topics({opts.topic_in: 4})
    patients = [f"p{i}" for i in range(8)]
    ids = produce_events(kafka_bootstrap, opts.topic_in, patients, 4)
    stop_a = threading.Event()
    with FhirClient(fhir_base_url) as fhir_a, FhirClient(fhir_base_url) as fhir_b:
        a = EventRuntime(BasicWriter(fhir_a, unique, delay=0.05), opts)
        b = EventRuntime(BasicWriter(fhir_b, unique, delay=0.05), opts)
        ta = threading.Thread(target=a.run, args=(stop_a,))
        tb = threading.Thread(target=b.run)
        ta.start()
        try:
            wait_for(lambda: len(written(fhir_base_url, unique)) >= 5, 30, "first member")
            tb.start()
            ids += produce_events(kafka_bootstrap, opts.topic_in, patients, 4, start=4)
            wait_for(lambda: b.ready and len(b._windows) > 0, 30, "second member assigned")
            ids += produce_events(kafka_bootstrap, opts.topic_in, patients, 4, start=8)
            b.request_stop()
            tb.join(30)
            assert not tb.is_alive()
            wait_for(lambda: set(written(fhir_base_url, unique)) == set(ids), 40, "all events")
            wait_for(
                lambda: (
                    committed_total(kafka_bootstrap, opts.group_id, opts.topic_in, 4) == len(ids)
                ),
                20,
                "commits",
            )
        finally:
            b.request_stop()
            stop_a.set()
            ta.join(30)
            if tb.is_alive():
                tb.join(30)
    no_duplicates(written(fhir_base_url, unique))


def test_every_poison_kind_is_dead_lettered_with_original_bytes_and_stream_goes_on(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    opts = runtime_options(kafka_bootstrap, unique)
    good = [new_event(EVENT_TYPE, "p1", {"n": n}, id=f"{unique}-good-{n}") for n in range(6)]
    huge = new_event(EVENT_TYPE, "p1", {"n": "x" * (5 * 1024 * 1024)}, id=f"{unique}-huge")
    poison = [
        b"\x00\x01 not json",
        b'{"not": "a cloudevent"}',
        new_event("carecoord.unknown", "p1", {"n": 1}, id=f"{unique}-unknown").to_json_bytes(),
        new_event(EVENT_TYPE, "p1", {"n": "one"}, id=f"{unique}-invalid").to_json_bytes(),
        huge.to_json_bytes(),
    ]
    messages = []
    for i, value in enumerate(poison):
        messages.append(Message(opts.topic_in, b"p1", good[i].to_json_bytes()))
        messages.append(Message(opts.topic_in, b"p1", value, (("origin", f"{i}".encode()),)))
    messages.append(Message(opts.topic_in, b"p1", good[5].to_json_bytes()))
    broker = KafkaBroker(connection(kafka_bootstrap))
    broker.ensure_topics({opts.topic_in: 1})
    producer = broker.producer()
    try:
        producer.send_all(messages, 60)
    finally:
        producer.close()

    stop = threading.Event()
    with FhirClient(fhir_base_url) as fhir:
        runtime = EventRuntime(BasicWriter(fhir, unique), opts)
        thread = threading.Thread(target=runtime.run, args=(stop,))
        thread.start()
        try:
            wait_for(
                lambda: (
                    committed_total(kafka_bootstrap, opts.group_id, opts.topic_in, 1)
                    == len(messages)
                ),
                40,
                "everything committed",
            )
        finally:
            stop.set()
            thread.join(30)
    assert set(written(fhir_base_url, unique)) == {e.id for e in good}
    letters = list(dlq.list_dead_letters(broker, opts.topic_dlq, timeout=30))
    assert [dl.record.value for dl in letters] == poison
    assert [dl.record.header("origin") for dl in letters] == [b"0", b"1", b"2", b"3", b"4"]
    assert all(dl.record.key == b"p1" and dl.error_type == "MalformedEvent" for dl in letters)
    assert [dl.source_offset for dl in letters] == [1, 3, 5, 7, 9]
    assert not any(dl.truncated for dl in letters)
