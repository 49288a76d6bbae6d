"""Kafka settings from the environment reach the kafka-python clients the runtime builds.

kafka-python's KafkaConsumer and KafkaProducer are replaced by recorders (they connect in their
constructors); the options they would get are checked against the ones kafka-python accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kafka
import kafka.admin
import pytest

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.runtime import EventRuntime
from carecoord.service.app import kafka_connection, runtime_options
from carecoord.settings import load_settings


class _Recorder:
    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    def __call__(self, **configs: Any) -> object:
        self.calls.append(configs)
        return object()


class _NoProcessor:
    def process(self, event: CloudEvent) -> Sequence[Emit]:
        return ()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", "k1:9093,k2:9093")
    return monkeypatch


class _Admin:
    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    def __call__(self, **configs: Any) -> _Admin:
        self.calls.append(configs)
        return self

    def list_topics(self) -> list[str]:
        return ["carecoord.events"]

    def close(self) -> None:
        pass


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """The options each kafka-python client was constructed with, by client."""
    calls: dict[str, list[dict[str, Any]]] = {"consumer": [], "producer": [], "admin": []}
    monkeypatch.setattr(kafka, "KafkaConsumer", _Recorder(calls["consumer"]))
    monkeypatch.setattr(kafka, "KafkaProducer", _Recorder(calls["producer"]))
    monkeypatch.setattr(kafka.admin, "KafkaAdminClient", _Admin(calls["admin"]))
    return calls


def test_settings_that_only_the_connection_had_reach_the_runtimes_clients(
    env: pytest.MonkeyPatch, built: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    options = {
        "request_timeout_ms": 12_000,
        "fetch_max_bytes": 32 * 1024 * 1024,
        "max_partition_fetch_bytes": 2 * 1024 * 1024,
        "session_timeout_ms": 6000,
        "max_request_size": 4 * 1024 * 1024,
        "max_poll_records": 50,  # a runtime option, not a kafka-python one
    }
    env.setenv("CARECOORD_KAFKA_OPTIONS", json.dumps(options))
    env.setenv("CARECOORD_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    env.setenv("CARECOORD_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    env.setenv("CARECOORD_KAFKA_SASL_USERNAME", "svc")
    env.setenv("CARECOORD_KAFKA_SASL_PASSWORD", "env-sasl-pw")
    env.setenv("CARECOORD_KAFKA_SSL_CAFILE", str(ca))

    runtime_opts = runtime_options(load_settings(need_fhir=False))
    runtime = EventRuntime(_NoProcessor(), runtime_opts)  # builds its broker from options.kafka
    runtime.broker.consumer(runtime_opts.group_id)
    runtime.broker.producer()

    [consumer], [producer] = built["consumer"], built["producer"]
    assert runtime_opts.max_poll_records == 50
    for cfg in (consumer, producer):
        assert cfg["request_timeout_ms"] == 12_000
        assert cfg["bootstrap_servers"] == ["k1:9093", "k2:9093"]
        assert cfg["security_protocol"] == "SASL_SSL"
        assert cfg["sasl_mechanism"] == "SCRAM-SHA-512"
        assert (cfg["sasl_plain_username"], cfg["sasl_plain_password"]) == ("svc", "env-sasl-pw")
        assert cfg["ssl_cafile"] == str(ca)
    assert consumer["fetch_max_bytes"] == 32 * 1024 * 1024
    assert consumer["max_partition_fetch_bytes"] == 2 * 1024 * 1024
    assert consumer["session_timeout_ms"] == 6000
    assert consumer["group_id"] == "carecoord"
    assert producer["max_request_size"] == 4 * 1024 * 1024
    # Each client gets only options it accepts (kafka-python refuses unknown ones).
    assert set(consumer) <= set(kafka.consumer.group.KafkaConsumer.DEFAULT_CONFIG)
    assert set(producer) <= set(kafka.producer.kafka.KafkaProducer.DEFAULT_CONFIG)
    assert "env-sasl-pw" not in repr(runtime_opts)


def test_a_kafka_python_option_reaches_only_the_clients_that_take_it(
    env: pytest.MonkeyPatch, built: dict[str, list[dict[str, Any]]]
) -> None:
    options = {"fetch_min_bytes": 10, "linger_ms": 20, "connections_max_idle_ms": 60_000}
    env.setenv("CARECOORD_KAFKA_OPTIONS", json.dumps(options))
    broker = EventRuntime(_NoProcessor(), runtime_options(load_settings(need_fhir=False))).broker
    broker.consumer("g")
    broker.producer()
    broker.ensure_topics({"carecoord.events": 1})

    [consumer], [producer], [admin] = built["consumer"], built["producer"], built["admin"]
    assert consumer["fetch_min_bytes"] == 10 and "linger_ms" not in consumer
    assert producer["linger_ms"] == 20 and "fetch_min_bytes" not in producer
    assert admin["connections_max_idle_ms"] == 60_000
    assert {"fetch_min_bytes", "linger_ms"}.isdisjoint(admin)
    for cfg in (consumer, producer, admin):
        assert cfg["connections_max_idle_ms"] == 60_000


def test_what_the_delivery_guarantee_needs_cannot_be_overridden(
    env: pytest.MonkeyPatch, built: dict[str, list[dict[str, Any]]]
) -> None:
    options = {"acks": 1, "enable_auto_commit": True, "group_id": "other"}
    env.setenv("CARECOORD_KAFKA_OPTIONS", json.dumps(options))
    broker = EventRuntime(_NoProcessor(), runtime_options(load_settings(need_fhir=False))).broker
    broker.consumer("carecoord")
    broker.producer()
    [consumer], [producer] = built["consumer"], built["producer"]
    assert (consumer["enable_auto_commit"], consumer["group_id"]) == (False, "carecoord")
    assert producer["acks"] == "all"


@pytest.mark.parametrize("client", ["consumer", "producer"])
def test_an_option_no_kafka_client_takes_is_a_config_error_naming_it_not_its_value(
    client: str,
) -> None:
    connection = KafkaConnection(bootstrap="127.0.0.1:9", extra={"sasl_plain_pasword": "pw-77"})
    broker = KafkaBroker(connection)
    with pytest.raises(ConfigError, match=r"'sasl_plain_pasword'.*CARECOORD_KAFKA_OPTIONS") as err:
        broker.consumer("g") if client == "consumer" else broker.producer()
    assert "pw-77" not in str(err.value)


def test_the_cli_broker_uses_the_same_connection_as_the_runtime(env: pytest.MonkeyPatch) -> None:
    env.setenv("CARECOORD_KAFKA_OPTIONS", '{"request_timeout_ms": 7000, "linger_ms": 20}')
    settings = load_settings(need_fhir=False)
    connection = kafka_connection(settings)
    assert runtime_options(settings).kafka == connection
    assert connection.request_timeout_ms == 7000
    assert dict(connection.extra) == {"linger_ms": 20}


def test_a_secret_given_in_kafka_options_stays_secret(env: pytest.MonkeyPatch) -> None:
    env.setenv("CARECOORD_KAFKA_OPTIONS", '{"ssl_password": "opt-ssl-pw"}')
    connection = kafka_connection(load_settings(need_fhir=False))
    assert "opt-ssl-pw" not in repr(connection)
    assert connection.common()["ssl_password"] == "opt-ssl-pw"


@pytest.mark.parametrize("value", ['"soon"', "true", "1.5"])
def test_a_kafka_number_of_the_wrong_type_is_a_config_error(
    env: pytest.MonkeyPatch, value: str
) -> None:
    env.setenv("CARECOORD_KAFKA_OPTIONS", f'{{"request_timeout_ms": {value}}}')
    with pytest.raises(ConfigError, match=r"request_timeout_ms .*whole number") as caught:
        runtime_options(load_settings(need_fhir=False))
    assert "soon" not in str(caught.value)
