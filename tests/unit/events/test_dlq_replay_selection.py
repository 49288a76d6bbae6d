"""Dead letters: a value too large for the broker is truncated (never dropped), and replay
re-produces exactly the selected letters' original bytes to their source topic."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from carecoord.events import dlq
from carecoord.events.broker import Message, MessageTooLarge, Record
from carecoord.events.memory import InMemoryBroker, MemoryProducer

SOURCE = Record("carecoord.events", 2, 41, b"p1", b"x" * 1000, (("traceparent", b"00-ab"),))


class Producer:
    """Takes a message only up to `limit` value bytes; records what it was sent."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.tried: list[int] = []
        self.sent: list[Message] = []
        self.timeouts: list[float] = []

    def send_all(self, messages: Sequence[Message], timeout: float) -> None:
        self.timeouts.append(timeout)
        for m in messages:
            self.tried.append(len(m.value or b""))
            if self.limit is not None and len(m.value or b"") > self.limit:
                raise MessageTooLarge("too large")
        self.sent.extend(messages)


def write(producer: Producer, record: Record = SOURCE) -> bool:
    return dlq.write_dead_letter(
        producer,
        record,
        "carecoord.dlq",
        error_type="FhirInvalid",
        message="why",
        attempts=3,
        first_failure=0.0,
        last_failure=60.0,
        timeout=1.0,
    )


def test_a_dead_letter_the_broker_takes_is_written_whole() -> None:
    producer = Producer()
    assert write(producer) is False
    [message] = producer.sent
    assert (message.topic, message.key, message.value) == ("carecoord.dlq", b"p1", SOURCE.value)
    letter = dlq.parse_dead_letter(
        Record("carecoord.dlq", 0, 0, message.key, message.value, message.headers)
    )
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "carecoord.events",
        2,
        41,
    )
    assert (letter.error_type, letter.attempts, letter.truncated) == ("FhirInvalid", 3, False)
    assert letter.last_failure == "1970-01-01T00:01:00+00:00"


def test_a_value_too_large_is_truncated_to_the_limit_then_to_nothing() -> None:
    big = Record("carecoord.events", 0, 1, b"p1", b"y" * (dlq.TRUNCATED_VALUE_BYTES + 10))
    producer = Producer(limit=dlq.TRUNCATED_VALUE_BYTES)
    assert write(producer, big) is True
    assert producer.tried == [dlq.TRUNCATED_VALUE_BYTES + 10, dlq.TRUNCATED_VALUE_BYTES]
    [message] = producer.sent
    assert message.value == big.value[: dlq.TRUNCATED_VALUE_BYTES]  # type: ignore[index]
    headers = dict(message.headers)
    assert headers[dlq.H_TRUNCATED] == str(dlq.TRUNCATED_VALUE_BYTES + 10).encode()
    assert producer.timeouts == [1.0, 1.0]
    tiny = Producer(limit=0)
    assert write(tiny, big) is True
    assert tiny.tried == [dlq.TRUNCATED_VALUE_BYTES + 10, dlq.TRUNCATED_VALUE_BYTES, 0]
    assert tiny.sent[0].value == b""


def test_a_dead_letter_refused_even_empty_raises() -> None:
    class Refusing(Producer):
        def send_all(self, messages: Sequence[Message], timeout: float) -> None:
            self.tried.append(len(messages[0].value or b""))
            raise MessageTooLarge("headers alone are too large")

    producer = Refusing()
    with pytest.raises(MessageTooLarge) as raised:
        write(producer)
    assert producer.tried == [1000, 1000, 0]  # the value is under the truncation size already
    assert raised.value.message == "dead letter refused even with an empty value"
    assert raised.value.context == {"offset": 41}


def test_the_broker_is_given_30_seconds_by_default() -> None:
    producer = Producer()
    dlq.write_dead_letter(
        producer,
        SOURCE,
        "carecoord.dlq",
        error_type="E",
        message="m",
        attempts=1,
        first_failure=0.0,
        last_failure=0.0,
    )
    assert producer.timeouts == [30.0]


def letters(broker: InMemoryBroker) -> list[dlq.DeadLetter]:
    return list(dlq.list_dead_letters(broker, "carecoord.dlq"))


def dead_letter(
    n: int, error: str, *, topic: str = "carecoord.events", truncate_to: int | None = None
) -> Message:
    record = Record(
        topic,
        0,
        100 + n,
        f"p{n}".encode(),
        f"value-{n}".encode(),
        (("traceparent", b"t"), (dlq.H_REPLAY, b"old")),
    )
    return dlq.dead_letter_message(
        record,
        "carecoord.dlq",
        error_type=error,
        message="why",
        attempts=1,
        first_failure=0.0,
        last_failure=0.0,
        truncate_to=truncate_to,
    )


@pytest.fixture
def broker() -> InMemoryBroker:
    broker = InMemoryBroker(default_partitions=1)
    broker.producer().send_all(
        [
            dead_letter(0, "MalformedEvent"),
            dead_letter(1, "FhirInvalid"),
            dead_letter(2, "FhirInvalid", truncate_to=3),
            Message("carecoord.dlq", b"p3", b"value-3", (("traceparent", b"t"),)),  # no source
            dead_letter(4, "FhirInvalid", topic="other.events"),
        ],
        5,
    )
    return broker


def test_select_by_offsets_error_type_and_partition(broker: InMemoryBroker) -> None:
    all_ = letters(broker)

    def offsets(**kw: object) -> list[int]:
        return [dl.offset for dl in dlq.select(all_, **kw)]  # type: ignore[arg-type]

    assert offsets() == [0, 1, 2, 3, 4]
    assert offsets(start_offset=1, end_offset=3) == [1, 2, 3]
    assert offsets(start_offset=4) == [4] and offsets(end_offset=0) == [0]
    assert offsets(error_type="FhirInvalid") == [1, 2, 4]
    assert offsets(partition=0) == [0, 1, 2, 3, 4] and offsets(partition=1) == []


def test_replay_reproduces_the_original_bytes_to_the_source_topic(broker: InMemoryBroker) -> None:
    result = dlq.replay(broker, error_type="FhirInvalid", start_offset=1)
    assert [dl.offset for dl in result.replayed] == [1, 4]
    assert [dl.offset for dl in result.skipped_truncated] == [2]
    assert result.skipped_no_source == []
    [again] = broker.records("carecoord.events")
    assert (again.key, again.value) == (b"p1", b"value-1")
    assert again.headers == (("traceparent", b"t"), (dlq.H_REPLAY, b"carecoord.dlq/0/1"))
    [other] = broker.records("other.events")
    assert other.value == b"value-4"


def test_a_letter_without_a_source_needs_a_target_topic(broker: InMemoryBroker) -> None:
    result = dlq.replay(broker, start_offset=3, end_offset=3)
    assert [dl.offset for dl in result.skipped_no_source] == [3] and result.replayed == []
    result = dlq.replay(broker, start_offset=3, target_topic="retry")
    assert [dl.offset for dl in result.replayed] == [3, 4]
    assert [r.value for r in broker.records("retry")] == [b"value-3", b"value-4"]


def test_a_dry_run_produces_nothing(broker: InMemoryBroker) -> None:
    result = dlq.replay(broker, dry_run=True)
    assert [dl.offset for dl in result.replayed] == [0, 1, 4]
    assert broker.records("carecoord.events") == [] and broker.records("other.events") == []


class Recording(InMemoryBroker):
    """Records the timeouts the replay passes on."""

    def __init__(self) -> None:
        super().__init__(default_partitions=2)
        self.timeouts: list[tuple[str, float]] = []

    def read_topic(self, topic: str, timeout: float = 10.0) -> Iterator[Record]:
        self.timeouts.append(("read", timeout))
        return super().read_topic(topic, timeout)

    def producer(self) -> MemoryProducer:
        broker = self

        class Producer(MemoryProducer):
            def send_all(self, messages: Sequence[Message], timeout: float) -> None:
                broker.timeouts.append(("send", timeout))
                super().send_all(messages, timeout)

        return Producer(self)


def test_letters_of_several_partitions_and_another_dlq_topic() -> None:
    broker = Recording()
    letters_ = [dead_letter(n, "FhirInvalid" if n % 2 else "MalformedEvent") for n in range(8)]
    broker.producer().send_all([Message("ops.dlq", m.key, m.value, m.headers) for m in letters_], 5)
    all_ = list(dlq.list_dead_letters(broker, "ops.dlq"))
    assert sorted({dl.partition for dl in all_}) == [0, 1]  # keys spread over both
    assert [(dl.partition, dl.offset) for dl in dlq.select(all_, end_offset=0)] == [
        (p, 0) for p in sorted({dl.partition for dl in all_})
    ]
    in_1 = [dl for dl in all_ if dl.partition == 1]
    assert dlq.select(all_, partition=1) == in_1
    broker.timeouts.clear()
    result = dlq.replay(broker, dlq_topic="ops.dlq", partition=1, timeout=7.0)
    assert result.replayed == in_1
    assert broker.timeouts == [("read", 7.0), ("send", 7.0)]
    assert sorted(r.value for r in broker.records("carecoord.events")) == sorted(
        dl.record.value
        for dl in in_1  # type: ignore[misc]
    )
    assert broker.records("carecoord.events")[0].header(dlq.H_REPLAY).startswith(b"ops.dlq/1/")  # type: ignore[union-attr]
    broker.timeouts.clear()
    dlq.replay(broker, dlq_topic="ops.dlq")  # the defaults: 30 s for each
    assert broker.timeouts == [("read", 30.0), ("send", 30.0)]


def test_header_numbers_that_are_not_numbers_read_as_unknown() -> None:
    record = Record("carecoord.dlq", 0, 0, None, b"{}", ((dlq.H_ATTEMPTS, b"three"),))
    letter = dlq.parse_dead_letter(record)
    assert letter.attempts is None and letter.source_offset is None
