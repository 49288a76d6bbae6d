"""The patient's consent to share SDOH information with the organisations of a referral, as an
SDOHCC Consent (HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/profiles/SDOHCCConsent.fsh; the values
follow its example input/fsh/instances/SDOHCC-ConsentInformationDisclosureExample.fsh).

The profile requires: status (active when exchanged with a CBO), scope patient-privacy,
category IDSCL (v3-ActCode "information disclosure", 1..1), patient, dateTime, organization
(1..1, the US Core Organization managing the consent: the practice) and source[x] (the consent
form: an Attachment or a Reference to a DocumentReference, QuestionnaireResponse, Consent or
Contract). The referral's ServiceRequest points at it from supportingInfo
(SDOHCCServiceRequest.fsh: `supportingInfo[SupportedSupportingInfo] only
Reference(SDOHCCConsent)`).

Identifier: sdoh-consent | patient : domain : key (the need event's id, like the referral's
ServiceRequest), so a replay finds the Consent it wrote and creates no second one.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fhir.resources.R4B.consent import Consent

from carecoord.caremodel import profiles as p
from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import concept, finish, identifiers, ref
from carecoord.caremodel._build import ref_id as _rid
from carecoord.fhir.models import DEFAULT_VERSION

# source[x] only Attachment or Reference(Consent or Contract or USCoreDocumentReferenceProfile or
# QuestionnaireResponse)
SOURCE_TYPES = ("DocumentReference", "QuestionnaireResponse", "Consent", "Contract")


def sdoh_consent(
    *,
    key: str,
    patient: str,
    domain: str,
    organization: str,
    day: date,
    method: Literal["verbal", "written"],
    recorded_by: str,
    document: str | None = None,
) -> Consent:
    """SDOHCC Consent: the patient permits disclosing their SDOH information (policy HIPAA
    authorization, provision permit + disclose from `day`). `document` is the signed form when
    there is one (source Reference); a verbal consent has no document, so the source is an
    Attachment naming how and by whom it was recorded (title and date only: no content to
    attach). The method and who recorded it are also in carecoord's consent extensions."""
    source: dict[str, Any]
    if document:
        source = {"sourceReference": ref(document, expect=SOURCE_TYPES)}
    else:
        source = {
            "sourceAttachment": {
                "title": f"{method.capitalize()} consent to share SDOH information, "
                f"recorded by {recorded_by}",
                "creation": day.isoformat(),
            }
        }
    data: dict[str, Any] = {
        "resourceType": "Consent",
        "meta": p.meta_profile(p.SDOHCC_CONSENT),
        "identifier": identifiers("sdoh-consent", _rid(patient), domain, key),
        "status": "active",
        "scope": concept(t.CONSENT_SCOPE_PRIVACY),
        "category": [concept(t.CONSENT_CATEGORY_IDSCL)],
        "patient": ref(patient, expect="Patient"),
        "dateTime": day.isoformat(),
        "performer": [ref(patient, expect="Patient")],
        "organization": [ref(organization, expect="Organization")],
        **source,
        "policyRule": concept(t.CONSENT_POLICY_HIPAA_AUTH),
        "provision": {
            "type": "permit",
            "period": {"start": day.isoformat()},
            "action": [concept(t.CONSENT_ACTION_DISCLOSE)],
        },
        "extension": [
            {"url": t.CONSENT_METHOD_EXTENSION, "valueCode": method},
            {
                "url": t.CONSENT_RECORDED_BY_EXTENSION,
                "valueReference": ref(recorded_by, expect=("Practitioner", "PractitionerRole")),
            },
        ],
    }
    return finish(Consent, data, DEFAULT_VERSION)
