"""The channel of an outreach request (handlers/programs/outreach.py `_channel_of`): the same
from a lean request's JSON as from the validated resource; JSON that is not FHIR fails typed."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.fhir.errors import FhirResponseInvalid
from carecoord.fhir.lazy import lean
from carecoord.fhir.models import parse_resource
from carecoord.handlers.programs.outreach import _channel_of


def request(medium: Any) -> dict[str, Any]:
    return {
        "resourceType": "CommunicationRequest",
        "id": "cr1",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medium": medium,
    }


def coded(code: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": t.MODE_PHONE.system, "code": code}]}
    return {**concept, "text": text} if text else concept


@pytest.mark.parametrize(
    ("medium", "channel"),
    [
        ([coded(t.MODE_PHONE.code, "phone")], "phone"),
        ([coded(t.MODE_VIDEO.code)], "video"),  # no text: the ParticipationMode code
        ([coded("UNKNOWN", "carrier pigeon")], None),
    ],
)
def test_lean_and_validated_requests_have_the_same_channel(
    medium: list[dict[str, Any]], channel: str | None
) -> None:
    validated = parse_resource(request(medium))
    with lean():
        lean_request = parse_resource(request(medium))
        assert _channel_of(lean_request) == channel
    assert _channel_of(validated) == channel


def test_a_medium_that_is_not_fhir_fails_naming_the_resource() -> None:
    with lean():
        broken = parse_resource(request(["phone"]))
        with pytest.raises(FhirResponseInvalid, match="CommunicationRequest"):
            _channel_of(broken)
