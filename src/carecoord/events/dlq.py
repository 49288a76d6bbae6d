"""Dead letters: how they are written, listed and replayed.

A dead letter is the original record (key, value bytes, headers) re-produced to the dead-letter
topic with `carecoord.dlq.*` headers saying why (error type and a PHI-free message), where from
(topic/partition/offset), how many attempts, and when it first and last failed. A value the broker
refuses for its size is truncated, with headers giving the original size and SHA-256, never dropped.

Listing and replaying work on any record, whatever its bytes (not JSON, invalid UTF-8, huge,
nested, a null value, no headers): selection uses only the headers, and the payload is looked at
only for the event id and catalog type of the letters shown, never parsed deeper than the
envelope's nesting limit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TypedDict, Unpack

from carecoord.core.catalog import known_type
from carecoord.core.envelope import nested_too_deep
from carecoord.events.broker import Broker, Headers, Message, MessageTooLarge, Producer, Record

log = logging.getLogger(__name__)

PREFIX = "carecoord.dlq."
H_ERROR_TYPE = PREFIX + "error.type"
H_ERROR_MESSAGE = PREFIX + "error.message"
H_TOPIC = PREFIX + "source.topic"
H_PARTITION = PREFIX + "source.partition"
H_OFFSET = PREFIX + "source.offset"
H_ATTEMPTS = PREFIX + "attempts"
H_FIRST_FAILURE = PREFIX + "first.failure"
H_LAST_FAILURE = PREFIX + "last.failure"
H_TRUNCATED = PREFIX + "truncated.original.size"
H_SHA256 = PREFIX + "original.sha256"
H_REPLAY = "carecoord.replay.of"

MAX_MESSAGE_CHARS = 1000
# What a truncated dead letter keeps of the value: under the usual 1 MB broker limit.
TRUNCATED_VALUE_BYTES = 256 * 1024


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class FailureRecord(TypedDict):
    """Why and when a record failed: what a dead letter's headers record."""

    error_type: str
    message: str
    attempts: int
    first_failure: float
    last_failure: float


def dead_letter_message(
    record: Record, topic: str, *, truncate_to: int | None = None, **failure: Unpack[FailureRecord]
) -> Message:
    """The dead letter for `record`: original key, value and headers plus ours."""
    value = record.value
    extra: list[tuple[str, bytes]] = []
    if truncate_to is not None and value is not None and len(value) > truncate_to:
        extra.append((H_TRUNCATED, str(len(value)).encode()))
        extra.append((H_SHA256, hashlib.sha256(value).hexdigest().encode()))
        value = value[:truncate_to]
    original = tuple((k, v) for k, v in record.headers if not k.startswith(PREFIX))
    ours: Headers = (
        (H_ERROR_TYPE, failure["error_type"].encode()),
        (H_ERROR_MESSAGE, failure["message"][:MAX_MESSAGE_CHARS].encode("utf-8", "replace")),
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_ATTEMPTS, str(failure["attempts"]).encode()),
        (H_FIRST_FAILURE, _iso(failure["first_failure"]).encode()),
        (H_LAST_FAILURE, _iso(failure["last_failure"]).encode()),
        *extra,
    )
    return Message(topic=topic, key=record.key, value=value, headers=original + ours)


def write_dead_letter(
    producer: Producer,
    record: Record,
    topic: str,
    *,
    timeout: float = 30.0,
    **failure: Unpack[FailureRecord],
) -> bool:
    """Produce the dead letter and wait for the ack; return True if the value had to be truncated.

    Raises BrokerError when the broker cannot take it at all (the caller retries: never drop).
    """

    def build(truncate_to: int | None) -> Message:
        return dead_letter_message(record, topic, truncate_to=truncate_to, **failure)

    try:
        producer.send_all([build(None)], timeout)
        return False
    except MessageTooLarge:
        log.warning("dead letter too large for the broker; truncating")  # ids: the log context
    for limit in (TRUNCATED_VALUE_BYTES, 0):
        try:
            producer.send_all([build(limit)], timeout)
            return True
        except MessageTooLarge:
            continue
    raise MessageTooLarge("dead letter refused even with an empty value", offset=record.offset)


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as listed by `carecoord dlq list` (no payload data, ids only).

    Everything but `event_id` and `event_type` comes from the headers; those two are read from
    the payload on first use only (after selection).
    """

    partition: int
    offset: int
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    error_type: str | None
    error_message: str | None
    attempts: int | None
    first_failure: str | None
    last_failure: str | None
    truncated: bool
    record: Record = field(repr=False, compare=False)

    @cached_property
    def _payload_ids(self) -> tuple[str | None, str | None]:
        return _ids(self.record.value)

    @property
    def event_id(self) -> str | None:
        return self._payload_ids[0]

    @property
    def event_type(self) -> str | None:
        """The event's type if it is a catalog type: anything else may be free text (PHI)."""
        return self._payload_ids[1]

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            k: v for k, v in self.__dict__.items() if k != "record" and not k.startswith("_")
        }
        out["event_id"], out["event_type"] = self.event_id, self.event_type
        return out


def _text(record: Record, name: str) -> str | None:
    raw = record.header(name)
    return raw.decode("utf-8", "replace") if raw is not None else None


def _int(record: Record, name: str) -> int | None:
    text = _text(record, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _ids(value: bytes | None) -> tuple[str | None, str | None]:
    """The event id and catalog type in a payload, or None: never raises, whatever the bytes."""
    if not value or nested_too_deep(value):
        return None, None
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):  # not JSON or not UTF-8 (a ValueError); a backstop
        return None, None
    if not isinstance(obj, dict):
        return None, None
    eid, etype = obj.get("id"), obj.get("type")
    return (
        eid[:128] if isinstance(eid, str) else None,
        known_type(etype) if isinstance(etype, str) else None,
    )


def parse_dead_letter(record: Record) -> DeadLetter:
    """The dead letter's headers; the payload is not read here."""
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        source_topic=_text(record, H_TOPIC),
        source_partition=_int(record, H_PARTITION),
        source_offset=_int(record, H_OFFSET),
        error_type=_text(record, H_ERROR_TYPE),
        error_message=_text(record, H_ERROR_MESSAGE),
        attempts=_int(record, H_ATTEMPTS),
        first_failure=_text(record, H_FIRST_FAILURE),
        last_failure=_text(record, H_LAST_FAILURE),
        truncated=record.header(H_TRUNCATED) is not None,
        record=record,
    )


def list_dead_letters(
    broker: Broker, topic: str = "carecoord.dlq", *, timeout: float = 10.0
) -> Iterator[DeadLetter]:
    """Every dead letter in the topic, from the beginning."""
    for record in broker.read_topic(topic, timeout=timeout):
        yield parse_dead_letter(record)


@dataclass(frozen=True)
class ReplayResult:
    replayed: list[DeadLetter]
    skipped_truncated: list[DeadLetter]
    # No source-topic header (not written by carecoord) and no `target_topic` given.
    skipped_no_source: list[DeadLetter] = field(default_factory=list)


def select(
    letters: Sequence[DeadLetter] | Iterator[DeadLetter],
    *,
    start_offset: int | None = None,
    end_offset: int | None = None,
    error_type: str | None = None,
    partition: int | None = None,
) -> list[DeadLetter]:
    """Filter dead letters by DLQ offset range (inclusive), error type and DLQ partition."""
    out = []
    for dl in letters:
        if start_offset is not None and dl.offset < start_offset:
            continue
        if end_offset is not None and dl.offset > end_offset:
            continue
        if error_type is not None and dl.error_type != error_type:
            continue
        if partition is not None and dl.partition != partition:
            continue
        out.append(dl)
    return out


def replay(
    broker: Broker,
    *,
    dlq_topic: str = "carecoord.dlq",
    target_topic: str | None = None,
    start_offset: int | None = None,
    end_offset: int | None = None,
    error_type: str | None = None,
    partition: int | None = None,
    dry_run: bool = False,
    timeout: float = 30.0,
) -> ReplayResult:
    """Re-produce the selected dead letters' original key, bytes and headers to their source topic
    (or `target_topic`), with a `carecoord.replay.of` header naming the dead letter.

    Truncated dead letters are skipped (their original bytes are gone) and reported, as are those
    without a source topic when no `target_topic` is given. Selection reads headers only.
    """
    chosen = select(
        list_dead_letters(broker, dlq_topic, timeout=timeout),
        start_offset=start_offset,
        end_offset=end_offset,
        error_type=error_type,
        partition=partition,
    )
    replayed: list[DeadLetter] = []
    skipped: list[DeadLetter] = []
    no_source: list[DeadLetter] = []
    messages = []
    for dl in chosen:
        topic = target_topic or dl.source_topic
        if dl.truncated:
            skipped.append(dl)
            continue
        if not topic:
            no_source.append(dl)
            continue
        replayed.append(dl)
        headers = tuple(
            (k, v) for k, v in dl.record.headers if not k.startswith(PREFIX) and k != H_REPLAY
        )
        marker = f"{dlq_topic}/{dl.partition}/{dl.offset}".encode()
        messages.append(
            Message(topic, dl.record.key, dl.record.value, (*headers, (H_REPLAY, marker)))
        )
    if messages and not dry_run:
        producer = broker.producer()
        try:
            producer.send_all(messages, timeout)
        finally:
            producer.close()
    log.info("dead letters replayed", extra={"count": len(messages), "dry_run": dry_run})
    return ReplayResult(replayed=replayed, skipped_truncated=skipped, skipped_no_source=no_source)
