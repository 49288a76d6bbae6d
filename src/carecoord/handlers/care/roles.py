"""The care manager's PractitionerRole at the practice Organization (SDOHCC PractitionerRole).

A Gravity referral Task's requester must be an SDOHCC PractitionerRole or a US Core Organization
(HL7/fhir-sdoh-clinicalcare input/fsh/profiles/SDOHCCTaskForReferralManagement.fsh), so a care
manager known as `Practitioner/<id>` requests through this role. SDOHCC PractitionerRole
(input/fsh/profiles/SDOHCCPractitionerRole.fsh): practitioner 1.., organization 1.., code from
CareTeamMemberFunction (extensible; SNOMED 768820003 care coordinator is a SNOMED care-team
member function); its parent US Core PractitionerRole (HL7/US-Core input/resources-yaml/
StructureDefinition-us-core-practitionerrole.yml) adds pd-1: telecom or endpoint. Identifier:
practitioner-role | practitioner id : organization id, so the conditional create finds the one
role and never duplicates it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.practitionerrole import PractitionerRole

from carecoord.caremodel import profiles
from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import concept, finish, identifiers, ref, ref_id
from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion


def care_manager_role(
    *,
    practitioner: str,
    organization: str,
    telecom: Sequence[Mapping[str, Any]],
    version: FhirVersion = DEFAULT_VERSION,
) -> PractitionerRole:
    """PractitionerRole (active, code care coordinator) of `practitioner` at `organization`,
    reachable at `telecom` (ContactPoints; US Core pd-1 needs one, ValueError without)."""
    if not telecom:
        raise ValueError("a US Core PractitionerRole needs telecom or an endpoint (pd-1)")
    data: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "meta": profiles.meta_profile(profiles.SDOHCC_PRACTITIONER_ROLE),
        "identifier": identifiers("practitioner-role", ref_id(practitioner), ref_id(organization)),
        "active": True,
        "practitioner": ref(practitioner, expect="Practitioner"),
        "organization": ref(organization, expect="Organization"),
        "code": [concept(t.ROLE_CARE_COORDINATOR)],
        "telecom": [dict(c) for c in telecom],
    }
    return finish(PractitionerRole, data, version)
