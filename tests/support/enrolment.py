"""Enrolment data for tests that are not about consent.

Under the program rules a `carecoord.patient.enrolled` for a program that requires consent (CCM,
PCM, BHI, APCM, RPM by default) without a `consent` object enrols the patient as pending (CarePlan
draft + an "obtain consent" Task). Tests that need an active plan give the consent here:

    body = consented({"program": "CCM", "provider": "Practitioner/doc", "start": "2024-05-03"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def consent_for(body: Mapping[str, Any], method: str = "verbal") -> dict[str, str]:
    """The patient's consent given on the enrolment's start day, recorded by the care manager
    (else the provider)."""
    return {
        "date": str(body["start"]),
        "method": method,
        "recorded_by": str(body.get("care_manager") or body["provider"]),
    }


def consented(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` (enrolment data) with the patient's consent, unless it already has one."""
    out = dict(body)
    out.setdefault("consent", consent_for(body))
    return out
