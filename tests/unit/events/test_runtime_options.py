"""Runtime options: Kafka secrets never show up in reprs or logs, but reach kafka-python."""

from __future__ import annotations

from carecoord.events.broker import KafkaConnection
from carecoord.events.runtime import RuntimeOptions


def test_secrets_are_hidden_but_passed_through() -> None:
    opts = RuntimeOptions(
        kafka=KafkaConnection(
            bootstrap="b1:9093, b2:9093",
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            sasl_plain_username="svc",
            sasl_plain_password="s3cret-pw",  # type: ignore[arg-type]
            extra={"sasl_oauth_client_secret": "extra-s3cret"},
        )
    )
    assert "s3cret-pw" not in repr(opts)
    assert "extra-s3cret" not in repr(opts)
    cfg = opts.kafka.common()
    assert cfg["sasl_plain_password"] == "s3cret-pw"
    assert cfg["sasl_oauth_client_secret"] == "extra-s3cret"
    assert cfg["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert cfg["security_protocol"] == "SASL_SSL"


def test_defaults_are_the_ones_the_readme_documents() -> None:
    opts = RuntimeOptions()
    assert (opts.topic_in, opts.topic_out, opts.topic_dlq, opts.group_id) == (
        "carecoord.events",
        "carecoord.outbound",
        "carecoord.dlq",
        "carecoord",
    )
    assert opts.kafka == KafkaConnection()
    assert opts.kafka.session_timeout_ms == 45_000
    assert opts.retry_budget_seconds * 1000 < opts.kafka.max_poll_interval_ms / 2
