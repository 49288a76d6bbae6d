"""kafka-python 3 logs an ERROR when a short-lived client closes during its metadata refresh
(`read_topic`, the DLQ commands, the poller's cursors): carecoord's Kafka broker drops exactly
that line, and no other error of kafka-python's."""

from __future__ import annotations

import logging

import pytest
from kafka.errors import Cancelled, KafkaConnectionError

from carecoord.events.broker import KafkaBroker, KafkaConnection


def test_a_refresh_cancelled_by_close_is_not_an_error_but_a_real_failure_still_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    KafkaBroker(KafkaConnection(bootstrap="127.0.0.1:9"))  # nothing connects until a client is made
    kafka = logging.getLogger("kafka.cluster")
    with caplog.at_level(logging.ERROR, logger="kafka.cluster"):
        kafka.error("Metadata refresh: failed %s", Cancelled())
        kafka.error("Metadata refresh: failed %s", KafkaConnectionError("broker gone"))
        kafka.error("something else %s", Cancelled())
    assert [r.getMessage() for r in caplog.records] == [
        "Metadata refresh: failed KafkaConnectionError: broker gone",
        "something else Cancelled",
    ]
