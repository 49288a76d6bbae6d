"""The small broker abstraction the runtime is written against, and its kafka-python implementation.

The runtime needs very little from Kafka: a group consumer (subscribe with a rebalance listener,
poll, pause/resume, commit explicit offsets), a producer that blocks until a batch is acknowledged,
and a way to read a whole topic (the dead-letter listing). `carecoord.events.memory` implements the
same protocols in memory for fast unit tests; tests/contract runs one suite against both.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import SecretStr

from carecoord.errors import CarecoordError, ConfigError

log = logging.getLogger(__name__)

Headers = tuple[tuple[str, bytes], ...]


class TP(NamedTuple):
    """A topic partition (compares equal to kafka-python's TopicPartition)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True)
class Record:
    """One consumed record. Value and headers stay bytes: dead letters carry them as-is."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    leader_epoch: int = -1
    timestamp_ms: int = -1

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


@dataclass(frozen=True)
class Message:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True)
class Commit:
    """The next offset to read (last done + 1) and the leader epoch of the last done record."""

    offset: int
    leader_epoch: int = -1


class BrokerError(CarecoordError):
    """The broker failed a request. `transient` ones are worth retrying, and mean the broker is
    unavailable (the runtime pauses and probes it instead of dead-lettering)."""

    transient = True
    dependency = "kafka"

    @property
    def unavailable(self) -> bool:
        return self.transient


class MessageTooLarge(BrokerError):
    """The broker (or the client's max_request_size) refused a record for its size."""

    transient = False


class RebalanceListener(Protocol):
    """Told about assignment changes, on the client's IO thread: record, never block."""

    def on_assigned(self, partitions: set[TP]) -> None: ...

    def on_revoked(self, partitions: set[TP]) -> None: ...

    def on_lost(self, partitions: set[TP]) -> None: ...


class Consumer(Protocol):
    """A group consumer with auto-commit off. Used from one thread (the poll loop) only."""

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None: ...

    def poll(self, timeout: float, max_records: int) -> list[Record]: ...

    def commit(self, offsets: Mapping[TP, Commit]) -> None:
        """Commit synchronously; raise BrokerError when the group refuses (e.g. rebalance)."""
        ...

    def committed(self, tp: TP) -> int | None: ...

    def pause(self, partitions: Sequence[TP]) -> None: ...

    def resume(self, partitions: Sequence[TP]) -> None: ...

    def assignment(self) -> set[TP]: ...

    def highwater(self, tp: TP) -> int | None:
        """The partition's end offset as last seen by a fetch (no request), if known."""
        ...

    def rebalance_pending(self) -> bool:
        """Best effort: the group asked this member to rejoin, so its partitions will be revoked
        at the next poll. The runtime commits what is done before that poll."""
        ...

    def close(self) -> None: ...


class Producer(Protocol):
    def send_all(self, messages: Sequence[Message], timeout: float) -> None:
        """Produce the messages and block until all are acknowledged (acks=all).

        Raises MessageTooLarge for a record the broker or client refuses for its size, BrokerError
        for anything else.
        """
        ...

    def close(self) -> None: ...


class Broker(Protocol):
    def consumer(self, group_id: str) -> Consumer: ...

    def producer(self) -> Producer: ...

    def ensure_topics(self, topics: Mapping[str, int]) -> None:
        """Create the topics (name -> partition count) that do not exist yet."""
        ...

    def read_topic(self, topic: str, timeout: float = 10.0) -> Iterator[Record]:
        """Every record currently in the topic, from the beginning (in order within a partition)."""
        ...


# ---------------------------------------------------------------------------------------------
# kafka-python


KafkaClient = Literal["consumer", "producer", "admin"]


def cancelled_refresh(record: logging.LogRecord) -> bool:
    """kafka-python 3 logs ERROR "Metadata refresh: failed Cancelled()" when a client closes while
    its metadata refresh is in flight: every short-lived consumer does (`read_topic`, the DLQ
    commands, the poller's cursors each hour). A client closing, not a broker fault."""
    from kafka.errors import Cancelled

    return (
        isinstance(record.msg, str)
        and record.msg.startswith("Metadata refresh: failed")
        and any(isinstance(a, Cancelled) for a in record.args or ())
    )


@functools.cache
def _quiet_cancelled_refreshes() -> None:
    logging.getLogger("kafka.cluster").addFilter(lambda r: not cancelled_refresh(r))


@functools.cache
def _client_options() -> dict[str, frozenset[str]]:
    """The option names each kafka-python client accepts (it refuses any other)."""
    from kafka.admin.client import KafkaAdminClient
    from kafka.consumer.group import KafkaConsumer
    from kafka.producer.kafka import KafkaProducer

    return {
        "consumer": frozenset(KafkaConsumer.DEFAULT_CONFIG),
        "producer": frozenset(KafkaProducer.DEFAULT_CONFIG),
        "admin": frozenset(KafkaAdminClient.DEFAULT_CONFIG),
    }


@dataclass(frozen=True)
class KafkaConnection:
    """Every Kafka client setting carecoord uses, in one place: the runtime, the CLI and the
    service build their consumers, producers and admin clients from it (`consumer_config`,
    `producer_config`, `common`). Field names are kafka-python's, except `bootstrap`.

    Secrets are SecretStr (a str given is wrapped): never in a repr or a log. `extra` is passed
    to kafka-python as is and may hold credentials, so it stays out of the repr too.
    """

    bootstrap: str = "localhost:9092"
    client_id: str = "carecoord"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    session_timeout_ms: int = 45_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    request_timeout_ms: int = 30_000
    # Dead letters carry the original value; a 5 MB event must fit (the broker's own
    # message.max.bytes may still refuse it: then the runtime truncates, with a header).
    max_request_size: int = 8 * 1024 * 1024
    fetch_max_bytes: int = 64 * 1024 * 1024
    max_partition_fetch_bytes: int = 8 * 1024 * 1024
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("sasl_plain_password", "ssl_password"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, SecretStr(value))

    def consumer_config(self) -> dict[str, Any]:
        """kafka-python KafkaConsumer options: group membership and fetch sizes, then `common`."""
        return {
            "session_timeout_ms": self.session_timeout_ms,
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            **self.fetch_config(),
            **self.common("consumer"),
        }

    def fetch_config(self) -> dict[str, Any]:
        """Fetch sizes, for any consumer (a group member or the dead-letter reader)."""
        return {
            "fetch_max_bytes": self.fetch_max_bytes,
            "max_partition_fetch_bytes": self.max_partition_fetch_bytes,
        }

    def producer_config(self) -> dict[str, Any]:
        """kafka-python KafkaProducer options (the adapter adds acks=all: never overridden)."""
        return {"max_request_size": self.max_request_size, **self.common("producer")}

    def common(self, client: KafkaClient | None = None) -> dict[str, Any]:
        """Options every kafka-python client takes (connection, security), then `extra`, so an
        option given there wins. For a `client`, only the `extra` options it takes: a consumer
        option (fetch_min_bytes) would make the producer refuse to start, and vice versa; an
        option no client takes is a ConfigError naming it (never its value)."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap.split(",") if s.strip()],
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_plain_username is not None:
            cfg["sasl_plain_username"] = self.sasl_plain_username
        if self.sasl_plain_password is not None:
            cfg["sasl_plain_password"] = self.sasl_plain_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name):
                cfg[name] = getattr(self, name)
        if self.ssl_password is not None:
            cfg["ssl_password"] = self.ssl_password.get_secret_value()
        if client is None:
            cfg.update(self.extra)
            return cfg
        known = _client_options()
        unknown = sorted(n for n in self.extra if not any(n in o for o in known.values()))
        if unknown:
            raise ConfigError(
                f"kafka-python has no option {', '.join(map(repr, unknown))}: "
                "check the names in CARECOORD_KAFKA_OPTIONS"
            )
        cfg.update((k, v) for k, v in self.extra.items() if k in known[client])
        return cfg


def _kafka_error(exc: BaseException, what: str) -> BrokerError:
    from kafka import errors as kerr

    if isinstance(exc, kerr.MessageSizeTooLargeError | kerr.RecordListTooLargeError):
        return MessageTooLarge(f"{what}: record too large ({type(exc).__name__})")
    err = BrokerError(f"{what}: {type(exc).__name__}: {exc}")
    return err


@contextlib.contextmanager
def _connecting() -> Iterator[None]:
    """kafka-python clients connect in their constructors: an unreachable broker is a transient
    BrokerError (the runtime retries it with backoff); options kafka-python refuses are a
    ConfigError (retrying would not help)."""
    from kafka import errors as kerr

    try:
        yield
    except kerr.KafkaConfigurationError as exc:
        raise ConfigError(f"kafka-python refused the connection settings: {exc}") from exc
    except AssertionError as exc:  # kafka-python asserts on unknown option names
        raise ConfigError(
            f"kafka-python refused an option: check the names in CARECOORD_KAFKA_OPTIONS ({exc})"
        ) from exc
    except ValueError as exc:  # the producer's refusal echoes the values: they may be secrets
        raise ConfigError(
            "kafka-python refused an option value: check CARECOORD_KAFKA_OPTIONS"
        ) from exc
    except kerr.KafkaError as exc:
        raise BrokerError(f"the broker is unreachable ({type(exc).__name__})") from exc


def _record(r: Any) -> Record:
    """Our Record from a kafka-python ConsumerRecord."""
    headers = r.headers  # usually empty: skip the generator (this runs once per record)
    epoch = r.leader_epoch
    return Record(
        r.topic,
        r.partition,
        r.offset,
        r.key,
        r.value,
        tuple((k, v if v is not None else b"") for k, v in headers) if headers else (),
        epoch if epoch is not None else -1,
        r.timestamp,
    )


class _KafkaListener:
    """Adapts our RebalanceListener to kafka-python's (sync: we only record, never block)."""

    def __init__(self, listener: RebalanceListener) -> None:
        from kafka import ConsumerRebalanceListener

        outer = listener

        class _L(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                outer.on_revoked({TP(tp.topic, tp.partition) for tp in revoked})

            def on_partitions_assigned(self, assigned: Any) -> None:
                outer.on_assigned({TP(tp.topic, tp.partition) for tp in assigned})

            def on_partitions_lost(self, lost: Any) -> None:
                outer.on_lost({TP(tp.topic, tp.partition) for tp in lost})

        self.kafka_listener = _L()


class KafkaConsumerAdapter:
    def __init__(self, conn: KafkaConnection, group_id: str) -> None:
        from kafka import KafkaConsumer

        # A commit must not hold the poll loop for long: it is retried at the next interval.
        self._commit_timeout_ms = min(conn.request_timeout_ms, 10_000)
        # Offsets are committed by the runtime only (delivery), so auto-commit stays off.
        self._consumer = KafkaConsumer(
            **{
                "auto_offset_reset": "earliest",
                **conn.consumer_config(),
                "group_id": group_id,
                "enable_auto_commit": False,
            }
        )

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._consumer.subscribe(list(topics), listener=_KafkaListener(listener).kafka_listener)

    def poll(self, timeout: float, max_records: int) -> list[Record]:
        self._unpark_resumed_records()
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        except Exception as exc:
            raise _kafka_error(exc, "poll failed") from exc
        return [_record(r) for records in batches.values() for r in records]

    def commit(self, offsets: Mapping[TP, Commit]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        if not offsets:
            return
        payload = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(c.offset, "", c.leader_epoch)
            for tp, c in offsets.items()
        }
        try:
            self._consumer.commit(payload, timeout_ms=self._commit_timeout_ms)
        except Exception as exc:
            raise _kafka_error(exc, "commit failed") from exc

    def committed(self, tp: TP) -> int | None:
        from kafka.structs import TopicPartition

        try:
            value = self._consumer.committed(TopicPartition(tp.topic, tp.partition))
        except Exception as exc:
            raise _kafka_error(exc, "fetching committed offset failed") from exc
        return int(value) if value is not None else None

    def pause(self, partitions: Sequence[TP]) -> None:
        from kafka.structs import TopicPartition

        owned = self._consumer.assignment()
        tps = [TopicPartition(*tp) for tp in partitions if TopicPartition(*tp) in owned]
        if tps:
            self._consumer.pause(*tps)

    def resume(self, partitions: Sequence[TP]) -> None:
        from kafka.structs import TopicPartition

        owned = self._consumer.assignment()
        tps = [TopicPartition(*tp) for tp in partitions if TopicPartition(*tp) in owned]
        if tps:
            self._consumer.resume(*tps)

    def assignment(self) -> set[TP]:
        return {TP(tp.topic, tp.partition) for tp in self._consumer.assignment()}

    def highwater(self, tp: TP) -> int | None:
        from kafka.structs import TopicPartition

        try:
            value = self._consumer.highwater(TopicPartition(tp.topic, tp.partition))
        except Exception:
            return None
        return int(value) if value is not None else None

    def _unpark_resumed_records(self) -> None:
        # kafka-python 3.0 parks a paused partition's already-fetched records and gives them back
        # after resume() only once its in-line slot is None; but a drained batch of another
        # partition stays in that slot (empty, not None), and a partition with parked records is
        # never fetched again: a resumed partition would stall for good. An empty batch holds
        # nothing, so clearing the slot only lets the parked records back in line.
        fetcher = getattr(self._consumer, "_fetcher", None)
        if fetcher is None or not getattr(fetcher, "_paused_partition_records", None):
            return
        current = getattr(fetcher, "_next_partition_records", None)
        if current is not None and not current:
            fetcher._next_partition_records = None

    def rebalance_pending(self) -> bool:
        # kafka-python 3 has no public API for "the heartbeat saw REBALANCE_IN_PROGRESS"; the
        # coordinator's rejoin flag is it. Best effort: without it we still commit every interval.
        coordinator = getattr(self._consumer, "_coordinator", None)
        return bool(getattr(coordinator, "rejoin_needed", False))

    def close(self) -> None:
        try:
            self._consumer.close(autocommit=False)
        except Exception:
            log.warning("kafka consumer close failed", exc_info=True)


class KafkaProducerAdapter:
    def __init__(self, conn: KafkaConnection) -> None:
        from kafka import KafkaProducer

        # acks=all is the delivery guarantee (an offset is done once its emits are acknowledged).
        self._producer = KafkaProducer(**{"linger_ms": 5, **conn.producer_config(), "acks": "all"})

    def send_all(self, messages: Sequence[Message], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        futures = []
        try:
            for m in messages:
                futures.append(
                    self._producer.send(m.topic, key=m.key, value=m.value, headers=list(m.headers))
                )
            self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))
            for f in futures:
                f.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            raise _kafka_error(exc, "produce failed") from exc

    def close(self) -> None:
        try:
            self._producer.close(timeout=10)
        except Exception:
            log.warning("kafka producer close failed", exc_info=True)


class KafkaBroker:
    """The real broker, through kafka-python."""

    def __init__(self, connection: KafkaConnection) -> None:
        self.connection = connection
        _quiet_cancelled_refreshes()

    def consumer(self, group_id: str) -> Consumer:
        with _connecting():
            return KafkaConsumerAdapter(self.connection, group_id)

    def producer(self) -> Producer:
        with _connecting():
            return KafkaProducerAdapter(self.connection)

    def ensure_topics(self, topics: Mapping[str, int]) -> None:
        from kafka.admin import KafkaAdminClient, NewTopic

        with _connecting():
            admin = KafkaAdminClient(**self.connection.common("admin"))
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(name, partitions, 1) for name, partitions in topics.items()
                if name not in existing
            ]  # fmt: skip
            if new:
                try:
                    admin.create_topics(new, raise_errors=False)
                except Exception as exc:
                    raise _kafka_error(exc, "creating topics failed") from exc
        finally:
            admin.close()

    def read_topic(self, topic: str, timeout: float = 10.0) -> Iterator[Record]:
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition

        consumer = KafkaConsumer(
            enable_auto_commit=False,
            **{**self.connection.fetch_config(), **self.connection.common("consumer")},
        )
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not tps:
                return
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            # Read until every partition reached its end offset AND a poll came back empty: some
            # Kafka-protocol brokers (tansu) under-report end offsets for multi-record batches.
            while time.monotonic() < deadline:
                batches = consumer.poll(timeout_ms=300)
                for records in batches.values():
                    for r in records:
                        yield _record(r)
                if not batches and all(consumer.position(tp) >= ends.get(tp, 0) for tp in tps):
                    return
        finally:
            consumer.close(autocommit=False)
