"""RPM device supply end to end (CY 2026 PFS final rule, CMS-1832-F, 90 FR 49266: 99445 for 2-15
days of data in 30 days, 99454 for 16-30, not both; 99453 once per episode of care): readings
through the real broker, the runtime running every built-in handler, the charges on the real
FHIR server."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from carecoord.core.envelope import CloudEvent, new_event
from support.enrolment import consented
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration


def reading(patient: str, day: date, n: int = 0) -> CloudEvent:
    return new_event(
        "carecoord.rpm.reading",
        patient,
        {"device": "Device/cuff-e2e", "observed_at": f"{day.isoformat()}T07:30:00-05:00"},
        id=f"{patient}-reading-{day.isoformat()}-{n}",
    )


def test_readings_bill_99445_then_99454_and_99453_once(pipeline: Pipeline, unique: str) -> None:
    patient = f"rpm-{unique}"
    start = date(2026, 3, 2)
    pipeline.publish(
        new_event(
            "carecoord.patient.enrolled",
            patient,
            consented({"program": "RPM", "provider": "Practitioner/dr-1",
                       "care_manager": "Practitioner/cm-1", "start": start.isoformat()}),
        )
    )  # fmt: skip
    pipeline.wait_idle()
    first, second = reading(patient, start), reading(patient, start + timedelta(days=1))
    pipeline.publish(first, first, reading(patient, start, 1), second, second)  # redeliveries
    pipeline.wait_idle()

    def charges() -> dict[str, str]:
        found = pipeline.fhir.search("ChargeItem", {"subject": f"Patient/{patient}"})
        return {
            i.code.coding[0].code: i.status for i in found if i.get_resource_type() == "ChargeItem"
        }

    assert charges() == {"99445": "billable", "99453": "billable"}  # 2 days: the 2026 code
    observations = [
        o
        for o in pipeline.fhir.search("Observation", {"subject": f"Patient/{patient}"})
        if o.get_resource_type() == "Observation"
    ]
    assert len(observations) == 3  # three readings, the redeliveries stored once
    announced = {
        e.id: e.data
        for e in pipeline.outbound()
        if e.type == "carecoord.billing.threshold-reached" and e.subject == f"Patient/{patient}"
    }
    assert sorted(d["cpt"] for d in announced.values()) == ["99445", "99453"]
    assert {d["days"] for d in announced.values()} == {2}

    pipeline.publish(*(reading(patient, start + timedelta(days=i)) for i in range(2, 16)))
    pipeline.wait_idle()
    assert charges() == {"99445": "not-billable", "99453": "billable", "99454": "billable"}
    cpts = sorted(
        e.data["cpt"]
        for e in {
            e.id: e for e in pipeline.outbound() if e.subject == f"Patient/{patient}"
        }.values()
        if e.type == "carecoord.billing.threshold-reached"
    )
    assert cpts == ["99445", "99453", "99454"]  # 99453 once for the episode
    assert pipeline.dead_letters() == []
