"""The patient's consent to share, on a referral (Gravity SDOH: an SDOHCC Consent the
ServiceRequest's supportingInfo points at; carecoord.handlers.referrals.sdoh_consent builds it).

The IG treats exchanging the consent as "a convenience, not a requirement"
(HL7/fhir-sdoh-clinicalcare @6604b7a input/pagecontent/privacy_and_security.md, "Patient Privacy and
Consent"): the disclosing party keeps the record. So a need event without `consent_to_share`
refers as before (gated by `consent_to_contact` only) and no Consent is invented; with it, the
Consent is written in the referral's transaction, conditional on its business identifier.
"""

from __future__ import annotations

from carecoord.caremodel.identifiers import add_create
from carecoord.core.catalog import SdohNeedIdentified
from carecoord.core.effects import Effects
from carecoord.errors import HandlerError
from carecoord.handlers.referrals.sdoh_consent import sdoh_consent


def consent_organization(*candidates: str | None) -> str | None:
    """The first Organization reference among the practice / requester settings: who manages
    the consent (SDOHCCConsent.fsh: `organization 1..1`, a US Core Organization)."""
    return next((c for c in candidates if c and c.startswith("Organization/")), None)


def referral_consents(
    fx: Effects,
    data: SdohNeedIdentified,
    *,
    key: str,
    patient_id: str,
    domain: str,
    organization: str | None,
) -> list[str]:
    """References (urn:uuid of the conditional create) of the referral's SDOHCC Consent, or []
    when the event gives none; HandlerError when there is no Organization to manage it."""
    given = data.consent_to_share
    if given is None:
        return []
    if organization is None:
        raise HandlerError(
            "the patient's consent to share needs the Organization that manages it (SDOHCC "
            "Consent.organization): configure the referrals handler's 'organization' (the "
            "practice) or an Organization 'requester'",
            event_id=key,
            patient=patient_id,
        )
    consent = sdoh_consent(
        key=key,
        patient=f"Patient/{patient_id}",
        domain=domain,
        organization=organization,
        day=given.date,
        method=given.method,
        recorded_by=given.recorded_by,
        document=given.document,
    )
    return [add_create(fx, consent)]
