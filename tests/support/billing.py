"""Seed a FakeFhir with what billing needs to know about an enrolment: the CarePlan (its
conditions and provider), and the program consent."""

from __future__ import annotations

from datetime import date

from carecoord.caremodel import builders as care
from carecoord.fhir.models import to_json
from carecoord.handlers.programs.consent import consent_resource
from support.handler_context import FakeFhir


def enrol(
    fhir: FakeFhir,
    patient: str = "p1",
    program: str = "CCM",
    *,
    start: date = date(2025, 1, 1),
    consent: date | None = date(2025, 1, 1),
    conditions: int = 2,
    end: date | None = None,
    provider: str = "Practitioner/dr-1",
) -> str:
    refs = []
    for n in range(conditions):
        refs.append(
            fhir.put(
                {
                    "resourceType": "Condition",
                    "id": f"{patient[:60]}-c{n}",  # a FHIR id has at most 64 characters
                    "subject": {"reference": f"Patient/{patient}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                         "code": f"E11.{n}"}]},
                }
            )
        )  # fmt: skip
    plan = to_json(
        care.care_plan(
            patient=f"Patient/{patient}",
            program=program,  # type: ignore[arg-type]
            start=start,
            end=end,
            addresses=refs,
            status="revoked" if end else "active",
        )
    )
    plan["contained"] = [
        {
            **to_json(
                care.care_team(
                    patient=f"Patient/{patient}",
                    program=program,  # type: ignore[arg-type]
                    start=start,
                    care_manager="Practitioner/cm-1",
                    provider=provider,
                )
            ),
            "id": "care-team",
        }
    ]
    plan_ref = fhir.put(plan)
    if consent is not None:
        fhir.put(
            to_json(
                consent_resource(
                    patient_id=patient,
                    program=program,
                    day=consent,
                    method="verbal",
                    recorded_by="Practitioner/cm-1",
                )
            )
        )
    return plan_ref
