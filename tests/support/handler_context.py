"""Helpers for the referral, clinical-routing and billing handler tests on
`carecoord.testing.InMemoryFhir`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from carecoord.core.envelope import CloudEvent
from carecoord.core.handler import HandlerContext
from carecoord.fhir.models import to_json
from carecoord.testing import InMemoryFhir

NOW = datetime(2025, 3, 10, 15, 0, tzinfo=UTC)


class FakeFhir(InMemoryFhir):
    """The public test kit's in-memory FHIR server; `all` returns parsed resources here."""

    def all(self, resource_type: str) -> list[Any]:
        return self.resources(resource_type)


def ctx(fhir: FakeFhir, config: Mapping[str, Any] | None = None) -> HandlerContext:
    return HandlerContext(fhir=fhir, config=dict(config or {}), clock=lambda: NOW)


def event(type_: str, patient: str, data: dict[str, Any], id_: str | None = None) -> CloudEvent:
    return CloudEvent(
        id=id_ or uuid.uuid4().hex,
        source="urn:test",
        type=type_,
        time=NOW,
        subject=f"Patient/{patient}",
        data=data,
    )


def care_team(fhir: FakeFhir, patient: str, care_manager: str, provider: str) -> None:
    from carecoord.caremodel.builders import care_team as build

    team = build(
        patient=f"Patient/{patient}",
        program="CCM",
        start=NOW.date(),
        care_manager=care_manager,
        provider=provider,
    )
    fhir.put(to_json(team))
