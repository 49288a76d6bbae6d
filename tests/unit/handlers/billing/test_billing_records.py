"""Which ChargeItems already in the patient's record count toward billing: carecoord's own time
entries and thresholds, unless entered in error; anything foreign or incomplete is ignored."""

from __future__ import annotations

from typing import Any

from test_handlers_billing import billed, log_time

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import business_identifier_json
from carecoord.handlers.billing.handler import PROGRAM_EXTENSION
from support.billing import enrol
from support.handler_context import FakeFhir

MARCH = "2025-03-05T10:00:00+00:00"


def charge_item(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ChargeItem",
        "status": "billable",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": t.CPT, "code": "99490"}]},
        **fields,
    }


def time_entry(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ChargeItem",
        "identifier": [business_identifier_json("time-entry", fields.pop("key", "x"))],
        "status": "not-billable",
        "subject": {"reference": "Patient/p1"},
        "code": t.CARE_MANAGEMENT_TIME.concept_json(),
        "extension": [{"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS["CCM"].json()}],
        "occurrenceDateTime": MARCH,
        "quantity": {"value": 30, "unit": "min"},
        **fields,
    }


def entered_in_error(fhir: FakeFhir, status: str) -> None:
    for data in fhir.store.values():
        if data["resourceType"] == "ChargeItem" and data["status"] == status:
            data["status"] = "entered-in-error"


def test_time_entered_in_error_no_longer_counts() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    assert log_time(fhir, 15) == []
    entered_in_error(fhir, "not-billable")
    assert log_time(fhir, 10) == []  # 10 minutes, not 25
    assert billed(fhir) == {}


def test_a_threshold_entered_in_error_does_not_claim_the_month() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    assert [e["cpt"] for e in log_time(fhir, 20, "CCM")] == ["99490"]
    entered_in_error(fhir, "billable")  # the CCM claim was withdrawn
    enrol(fhir, program="PCM", conditions=1)
    assert [e["cpt"] for e in log_time(fhir, 30, "PCM")] == ["99426"]
    assert billed(fhir) == {"99426": 1}  # the withdrawn CCM claim is neither counted nor revived
    assert [c.status for c in fhir.all("ChargeItem") if c.code.coding[0].code == "99490"] == [
        "entered-in-error"
    ]


def test_foreign_and_incomplete_charge_items_are_ignored() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    period = {"occurrencePeriod": {"start": "2025-03-01", "end": "2025-03-31"}}
    threshold_id = {"identifier": [business_identifier_json("charge-item", "p1", "CCM", "t")]}
    for data in (
        charge_item(**period),  # the EHR's own CCM claim: no carecoord identifier
        charge_item(**threshold_id, **period, code={"text": "CCM (recoded by a biller)"}),
        charge_item(**threshold_id),  # no occurrence at all
        charge_item(**threshold_id, occurrencePeriod={"end": "2025-03-31"}),
        time_entry(key="no-quantity", quantity=None),
        time_entry(key="no-date", occurrenceDateTime=None),
        time_entry(key="no-program", extension=None),
    ):
        fhir.put({k: v for k, v in data.items() if v is not None})
    assert log_time(fhir, 19) == []  # none of the 30-minute entries above counted
    enrol(fhir, program="PCM", conditions=1)
    assert [e["cpt"] for e in log_time(fhir, 30, "PCM")] == ["99426"]  # no CCM claim counted


def test_a_time_entry_counts_toward_its_program_whatever_other_extensions_it_has() -> None:
    fhir = FakeFhir()
    enrol(fhir)
    program = {"url": PROGRAM_EXTENSION, "valueCoding": t.PROGRAMS["CCM"].json()}
    other = {"url": "https://example.org/fhir/StructureDefinition/site",
             "valueCoding": {"system": "https://example.org/sites", "code": "PCM"}}  # fmt: skip
    fhir.put(time_entry(key="tagged", extension=[other, program], quantity={"value": 15}))
    assert [e["cpt"] for e in log_time(fhir, 5)] == ["99490"]  # 15 + 5 CCM minutes
