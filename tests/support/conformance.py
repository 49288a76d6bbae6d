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

from carecoord.caremodel.profiles import RULES, SDOHCC_COMMIT, check, claimed
from carecoord.caremodel.terminology import IDENTIFIER_SYSTEM_BASE
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json

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
