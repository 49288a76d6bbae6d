"""The contract suites run every test against the in-memory and the real implementation: the
broker (InMemoryBroker / Kafka) and FHIR (carecoord.testing.InMemoryFhir / a FHIR server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from carecoord.events.broker import Broker, KafkaBroker, KafkaConnection
from carecoord.events.memory import InMemoryBroker
from carecoord.fhir.client import FhirClient
from carecoord.testing import InMemoryFhir


def kafka_connection(bootstrap: str) -> KafkaConnection:
    # tansu completes a group join in about session_timeout_ms / 2.
    return KafkaConnection(
        bootstrap=bootstrap,
        client_id="carecoord-contract",
        session_timeout_ms=4000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=30000,
    )


@pytest.fixture(
    params=["memory", pytest.param("kafka", marks=pytest.mark.integration)],
)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "memory":
        yield InMemoryBroker(default_partitions=1)
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        yield KafkaBroker(kafka_connection(bootstrap))


@pytest.fixture(
    params=["memory", pytest.param("server", marks=pytest.mark.integration)],
)
def fhir(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A FhirReader with `apply(writes)`: InMemoryFhir, or a FhirClient on the real server."""
    if request.param == "memory":
        yield InMemoryFhir()
    else:
        with FhirClient(request.getfixturevalue("fhir_base_url")) as client:
            yield client
