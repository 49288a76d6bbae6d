"""Session-wide real servers: a Kafka-protocol broker (tansu) and a FHIR R4 server (sekmet).

Set CARECOORD_KAFKA_BOOTSTRAP / CARECOORD_FHIR_BASE_URL to run the integration tests against
external ones instead. Tests get unique topic names and group ids so they never share state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from carecoord.local import LocalFhir, LocalKafka, start_fhir, start_kafka

# `pipeline` / `pipeline_factory`: the runtime + built-in handlers on the real servers.
# `mutation_select`: under `make mutation` only, a mutant runs against its own module's tests.
pytest_plugins = ["support.pipeline", "support.mutation_select"]


@pytest.fixture(autouse=True)
def _lean_builds_checked() -> Iterator[None]:
    """Every resource a builder makes on the handlers' lean path (carecoord.fhir.lazy) is checked
    against the JSON fhir.resources makes of it; a difference fails the test that built it."""
    from carecoord.fhir import lazy

    lazy.check_builds(True)
    lazy.mismatches.clear()
    yield
    lazy.check_builds(False)
    found, lazy.mismatches[:] = list(lazy.mismatches), []
    assert not found, "lean builder JSON differs from fhir.resources':\n" + "\n".join(found[:5])


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("CARECOORD_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker: LocalKafka = start_kafka()
    try:
        yield broker.bootstrap
    finally:
        broker.close()


@pytest.fixture(scope="session")
def fhir_base_url() -> Iterator[str]:
    """The FHIR server of the session. When the session ends, every resource the tests left on
    it is checked against the profiles carecoord claims (carecoord.caremodel.profiles): a violation
    fails the run (an error at the teardown of the last test that used the server)."""
    external = os.environ.get("CARECOORD_FHIR_BASE_URL")
    if external:
        yield external.rstrip("/")
        _conformance_of_everything_on(external.rstrip("/"))
        return
    server: LocalFhir = start_fhir()
    try:
        yield server.base_url
        _conformance_of_everything_on(server.base_url)
    finally:
        server.close()


def _conformance_of_everything_on(base_url: str) -> None:
    from support.conformance import violations_on_server

    found = violations_on_server(base_url)
    if found:
        shown = "\n".join(found[:40])
        more = f"\n... and {len(found) - 40} more" if len(found) > 40 else ""
        pytest.fail(f"resources on the FHIR server violate their profiles:\n{shown}{more}")


@pytest.fixture
def unique() -> str:
    """A short unique token for topic names, group ids and business identifiers of one test."""
    return uuid.uuid4().hex[:10]
