"""The time entries the worklist counts (billing.charge_entries), read off the patient's
ChargeItems: program, month, role, minutes and whether they were billable."""

from __future__ import annotations

from typing import Any

from test_billing_records import time_entry

from carecoord.caremodel import terminology as t
from carecoord.handlers.billing.handler import (
    ENTRY_EXTENSION,
    PROGRAM_EXTENSION,
    LoggedTime,
    charge_entries,
)
from carecoord.handlers.care.model import build

P = "Patient/p1"


def item(**fields: Any) -> Any:
    return build(
        "ChargeItem", {k: v for k, v in time_entry(**fields).items() if k != "resourceType"}
    )


def ext(name: str, **value: Any) -> dict[str, Any]:
    return {"url": ENTRY_EXTENSION + name, **value}


CCM = {"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS["CCM"].json()}
PCM = {"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS["PCM"].json()}


def test_each_entry_with_its_program_month_role_minutes_and_billing() -> None:
    found = [
        build("Patient", {"id": "p1"}),  # not a ChargeItem
        item(key="other", subject={"reference": "Patient/p2"}),
        item(key="e0", status="entered-in-error"),  # skipped, not the end of the list
        item(key="a"),
        item(key="b", extension=[PCM, ext("role", valueCode="practitioner")],
             occurrenceDateTime="2025-02-28T23:00:00+00:00", quantity={"value": 12.5}),
        item(key="c", extension=[CCM, ext("not-billed", valueBoolean=True)]),
        item(key="d", extension=[CCM, ext("role", valueCode="clinical-staff")]),
        item(key="e", status="entered-in-error"),
        item(key="f", extension=[]),  # no program
        item(key="g", quantity=None),
        item(key="h", occurrenceDateTime="2025-03"),  # a partial date: no day
    ]  # fmt: skip
    assert charge_entries(found, P) == [
        LoggedTime("CCM", "2025-03", "clinical-staff", 30.0, True),
        LoggedTime("PCM", "2025-02", "practitioner", 12.5, True),
        LoggedTime("CCM", "2025-03", "clinical-staff", 30.0, False),
        LoggedTime("CCM", "2025-03", "clinical-staff", 30.0, True),
    ]


def test_a_threshold_charge_item_is_no_time_entry() -> None:
    threshold = build("ChargeItem", {
        "status": "billable", "subject": {"reference": P},
        "code": {"coding": [{"system": t.CPT, "code": "99490"}]},
    })  # fmt: skip
    assert charge_entries([threshold], P) == []
