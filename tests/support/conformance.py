"""The conformance suite run on what the integration tests leave on the FHIR server: every
resource of the types the rules cover is read back (paged) and checked with
carecoord.caremodel.profiles.check, whether it claims a profile (meta.profile) or is one carecoord
wrote (a carecoord business identifier of a kind that must claim one).

The rules are SDOHCC STU 3's: HL7/fhir-sdoh-clinicalcare 3.0.0 at commit
6604b7ac13b9f0cd80603428f99e5be0672966aa (profiles.SDOHCC_COMMIT; each rule names its FSH
file), plus US Core 7.0.0. Besides the profiles carecoord claims, the STU 3 profiles of what a
CBO writes (profiles.READ_PROFILES: Program Enrollment Status Observation, HealthcareService for
Referral Management) are checked on the resources that claim them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from carecoord.caremodel.profiles import RULES, SDOHCC_COMMIT, check, claimed
from carecoord.caremodel.terminology import IDENTIFIER_SYSTEM_BASE
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals import builders as referral

TYPES = sorted({rtype for rtype, _ in RULES.values()})


def violations_on_server(base_url: str) -> list[str]:
    out: list[str] = []
    checked = 0
    with FhirClient(base_url) as fhir:
        for rtype in TYPES:
            for resource in fhir.search(rtype, {"_count": "200"}):
                if resource.get_resource_type() != rtype:
                    continue
                data = to_json(resource)
                ours = any(
                    str(i.get("system", "")).startswith(IDENTIFIER_SYSTEM_BASE)
                    for i in data.get("identifier") or []
                )
                if not ours and not claimed(data):
                    continue  # written by a test by hand, claiming nothing
                checked += 1
                out.extend(f"{rtype}/{resource.id}: {v}" for v in check(data))
    print(
        f"\nconformance (SDOHCC @{SDOHCC_COMMIT[:7]}): {checked} resource(s) on the FHIR server "
        f"checked, {len(out)} violation(s)"
    )
    return out


def referral_task_json(**over: Any) -> dict[str, Any]:
    """A referral Task as carecoord builds it (then `over` on top), to break one rule at a time."""
    data = to_json(
        referral.referral_task(
            key="k",
            patient="Patient/p1",
            domain="food-insecurity",
            service_request="ServiceRequest/sr1",
            owner="Organization/cbo",
            requester="PractitionerRole/cm-at-practice",
            authored_on=datetime(2026, 11, 2, 9, tzinfo=UTC),
        )
    )
    return {**data, **over}


def violated_paths(resource: dict[str, Any]) -> set[str]:
    """The element paths of the profile rules `resource` breaks."""
    return {v.path for v in check(resource)}
