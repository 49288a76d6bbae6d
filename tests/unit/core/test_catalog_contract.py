"""The v1 event catalog is a typed contract in both directions, published as AsyncAPI 3.0.

Recorded v1 events (tests/fixtures/catalog: what carecoord consumed and emitted before the
models existed, captured from the handlers' own tests) still decode and encode byte for byte;
docs/asyncapi.yaml is what `carecoord catalog asyncapi` prints, a valid AsyncAPI 3.0 document,
and every recorded event validates against its message there.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.core.catalog import (
    INBOUND,
    OUTBOUND,
    ClinicalRouted,
    EventData,
    SdohNeedIdentified,
    wire_data,
)
from carecoord.core.effects import Effects
from carecoord.core.envelope import CloudEvent
from carecoord.core.router import Handlers
from carecoord.events.asyncapi import asyncapi_document
from support.paths import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
RECORDED_IN: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "catalog" / "v1-inbound.json").read_text()
)
RECORDED_OUT: dict[str, list[dict[str, Any]]] = json.loads(
    (FIXTURES / "catalog" / "v1-outbound.json").read_text()
)
DOCUMENT = asyncapi_document()


def test_every_type_has_recorded_v1_events() -> None:
    assert set(RECORDED_IN) == set(INBOUND)
    assert set(RECORDED_OUT) == set(OUTBOUND)


@pytest.mark.parametrize("event_type", sorted(RECORDED_IN))
def test_recorded_inbound_events_decode(event_type: str) -> None:
    for raw in RECORDED_IN[event_type]:
        event = CloudEvent.from_json_bytes(json.dumps(raw).encode())
        model = INBOUND[event.type]
        assert model.event_type == event_type
        model.model_validate(event.data)


@pytest.mark.parametrize("event_type", sorted(RECORDED_OUT))
def test_outbound_models_encode_the_recorded_v1_output(event_type: str) -> None:
    for recorded in RECORDED_OUT[event_type]:
        model = OUTBOUND[event_type].model_validate(recorded["data"])
        assert not model.model_extra, f"fields the model does not declare: {model.model_extra}"
        effects = Effects()
        effects.emit(model, recorded["subject"], id=recorded["id"])
        (emit,) = effects.emits
        assert (emit.type, emit.subject, emit.id) == (
            event_type,
            recorded["subject"],
            recorded["id"],
        )
        assert json.loads(json.dumps(emit.data)) == recorded["data"]


def test_a_handler_routes_on_a_model_and_emits_one() -> None:
    handlers = Handlers("typed")

    @handlers.on(SdohNeedIdentified)
    def need(event: CloudEvent, data: SdohNeedIdentified, ctx: Any, config: Any) -> Effects:
        fx = Effects()
        routed = ClinicalRouted(
            task_identifier="s|v", provider="Practitioner/p", priority="routine",
            urgency="routine", due="2026-01-02T10:00:00+00:00",
        )  # fmt: skip
        fx.emit(routed, event.subject or "", id=f"x:{event.id}")
        return fx

    assert handlers.spec.event_types == ("carecoord.sdoh.need-identified",)
    with pytest.raises(ValueError, match="catalog model"):
        handlers.on(EventData)
    with pytest.raises(ValueError, match="catalog model, without data"):
        Effects().emit(
            ClinicalRouted.model_validate(RECORDED_OUT["carecoord.clinical.routed"][0]["data"]),
            "Patient/p",
            {},
            "i",
        )  # type: ignore[call-overload]


def test_the_committed_document_is_current() -> None:
    committed = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert committed == DOCUMENT, "stale: run `carecoord catalog asyncapi > docs/asyncapi.yaml`"


def test_the_command_prints_the_document() -> None:
    result = CliRunner().invoke(app, ["catalog", "asyncapi", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == DOCUMENT
    renamed = CliRunner().invoke(app, ["catalog", "asyncapi", "--topic-in", "acme.in"])
    assert yaml.safe_load(renamed.output)["channels"]["events"]["address"] == "acme.in"


def test_the_document_is_valid_asyncapi_3() -> None:
    schema = json.loads((FIXTURES / "asyncapi" / "asyncapi-3.0.0.schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(DOCUMENT)
    broken = {**DOCUMENT, "channels": {"events": {"address": 7}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(broken)


def _payload_validator(event_type: str) -> jsonschema.Draft202012Validator:
    name = event_type.removeprefix("carecoord.")
    root = {"$ref": f"#/components/messages/{name}/payload", "components": DOCUMENT["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("event_type", sorted({*RECORDED_IN, *RECORDED_OUT}))
def test_recorded_events_validate_against_their_message(event_type: str) -> None:
    validator = _payload_validator(event_type)
    samples = RECORDED_IN.get(event_type) or [
        {"specversion": "1.0", "source": "urn:carecoord", "type": event_type, **e}
        for e in RECORDED_OUT[event_type]
    ]
    for sample in samples:
        validator.validate(sample)
    sample = samples[0]
    assert not validator.is_valid({**sample, "type": "carecoord.other"})
    assert not validator.is_valid({**sample, "data": {}})  # every type has a required field


def test_wire_data_keeps_what_was_set_and_nothing_else() -> None:
    recorded = RECORDED_OUT["carecoord.outreach.escalated"][0]["data"]
    model = OUTBOUND["carecoord.outreach.escalated"].model_validate(recorded)
    assert wire_data(model) == recorded
