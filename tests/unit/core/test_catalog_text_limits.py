"""Free text in catalog events is bounded and holds no control characters (FHIR R4 string)."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.core import catalog
from carecoord.errors import MalformedEvent
from carecoord.events.runtime import classify
from carecoord.handlers.clinical.routing import HANDLERS
from support.handler_context import FakeFhir, care_team, ctx, event

handle = HANDLERS[0].handle
SECRET = "metoprolol"


@pytest.fixture
def fhir() -> FakeFhir:
    fake = FakeFhir()
    care_team(fake, "p1", "Practitioner/cm-1", "Practitioner/dr-1")
    return fake


def ask(question: str) -> Any:
    data = {"question": question, "urgency": "routine", "raised_by": "Practitioner/cm-1"}
    return event("carecoord.clinical.question", "p1", data, "q-1")


@pytest.mark.parametrize(
    "question",
    [f"Double the {SECRET}? " + "x" * 5_000_000, f"Double the {SECRET}?\x00", f"{SECRET}\x07 now"],
    ids=["5MB", "NUL", "BEL"],
)
def test_oversized_or_control_character_question_is_dead_lettered(
    fhir: FakeFhir, question: str
) -> None:
    with pytest.raises(MalformedEvent) as err:
        handle(ask(question), ctx(fhir))
    failure = classify(err.value)
    assert (failure.error_type, failure.permanent) == ("MalformedEvent", True)
    assert "question" in failure.message and "q-1" in failure.message
    assert SECRET not in failure.message and len(failure.message) < 500
    assert fhir.all("Task") == []


def test_multiline_non_ascii_question_is_accepted(fhir: FakeFhir) -> None:
    question = "Schmerzen seit gestern —\r\n\tça va? 痛みが続く\nDouble the dose?"
    fx = handle(ask(question), ctx(fhir))
    fhir.apply(fx)
    (task,) = fhir.all("Task")
    assert task.input[0].valueString == question


AT = "2026-01-05T10:00:00Z"
VALID: dict[type[catalog.EventData], dict[str, Any]] = {
    catalog.PatientEnrolled: {
        "program": "CCM",
        "provider": "Practitioner/d",
        "start": "2026-01-05",
    },
    catalog.OutreachAttempted: {"channel": "phone", "outcome": "answered", "attempted_at": AT},
    catalog.SdohNeedIdentified: {"domain": "d", "postal_code": "1", "consent_to_contact": True},
    catalog.ReferralStatusChanged: {"task": "Task/t1", "status": "rejected"},
    catalog.ClinicalQuestion: {"question": "q", "urgency": "routine", "raised_by": "r"},
    catalog.TimeLogged: {"program": "CCM", "minutes": 5, "activity": "a", "performed_at": AT},
    catalog.TaskOverdue: {"task": "Task/t1"},
}
# Every free-text field of the inbound catalog.
FIELDS: list[tuple[type[catalog.EventData], str]] = [
    (catalog.PatientEnrolled, "conditions"),
    (catalog.OutreachAttempted, "by"),
    (catalog.SdohNeedIdentified, "domain"),
    (catalog.SdohNeedIdentified, "evidence"),
    (catalog.SdohNeedIdentified, "postal_code"),
    (catalog.SdohNeedIdentified, "language"),
    (catalog.ReferralStatusChanged, "reason"),
    (catalog.ReferralStatusChanged, "task_version"),
    (catalog.ClinicalQuestion, "raised_by"),
    (catalog.TimeLogged, "activity"),
    (catalog.TimeLogged, "by"),
    (catalog.TaskOverdue, "task"),
]


@pytest.mark.parametrize(("model", "name"), FIELDS, ids=[f"{m.__name__}.{n}" for m, n in FIELDS])
@pytest.mark.parametrize("bad", ["x" * 1_000_000, "ok\x00", "ok\x1b[2J", "ok\x85"])
def test_every_free_text_field_is_bounded_and_control_free(
    model: type[catalog.EventData], name: str, bad: str
) -> None:
    data = {"by": "Practitioner/c", **VALID[model]}
    value: object = [bad] if name == "conditions" else bad
    ok: object = ["Condition/c1"] if name == "conditions" else "Ok\ttext"
    assert model.model_validate({**data, name: ok})
    ev = event("carecoord.time.logged", "p1", {**data, name: value}, "e-1")
    with pytest.raises(MalformedEvent, match=name) as err:
        catalog.parse_data(ev, model)
    assert "x" * 100 not in str(err.value) and "ok" not in str(err.value)


def test_lists_of_free_text_are_bounded_too() -> None:
    data = {"program": "CCM", "provider": "Practitioner/d", "start": "2026-01-05"}
    many = [f"Condition/c{i}" for i in range(catalog.MAX_LIST_ITEMS + 1)]
    assert catalog.PatientEnrolled.model_validate({**data, "conditions": many[:-1]})
    with pytest.raises(MalformedEvent, match="conditions"):
        catalog.parse_data(
            event("t", "p1", {**data, "conditions": many}, "e-2"), catalog.PatientEnrolled
        )
