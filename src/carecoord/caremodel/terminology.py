"""Every code and system URL carecoord writes, in one place.

Constants are `Code(system, code, display)`; `Code.coding(version)` / `Code.concept(version)` build
the fhir.resources Coding / CodeableConcept and `Code.json()` the plain dict, for builders that
assemble JSON first. Sources are named next to each group. carecoord's own code systems live under
`CARECOORD_BASE` (used where no published code system fits, e.g. the program of a CarePlan).

Shared file: anyone may ADD constants at the end; never rename or remove.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import BaseModel

from carecoord.fhir.models import DEFAULT_VERSION, FhirVersion

# ---------------------------------------------------------------------------------------------
# The Code type


@dataclass(frozen=True)
class Code:
    """One concept of a code system (system | code, display)."""

    system: str
    code: str
    display: str | None = None

    def json(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out

    def concept_json(self, text: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"coding": [self.json()]}
        if text:
            out["text"] = text
        return out

    def coding(self, version: FhirVersion = DEFAULT_VERSION) -> BaseModel:
        return _datatype("Coding", version).model_validate(self.json())

    def concept(self, text: str | None = None, version: FhirVersion = DEFAULT_VERSION) -> BaseModel:
        return _datatype("CodeableConcept", version).model_validate(self.concept_json(text))

    def matches(self, coding: Any) -> bool:
        """True if a Coding (object or dict) has this system and code."""
        if isinstance(coding, dict):
            return coding.get("system") == self.system and coding.get("code") == self.code
        return (
            getattr(coding, "system", None) == self.system
            and getattr(coding, "code", None) == self.code
        )


def _datatype(name: str, version: FhirVersion) -> type[BaseModel]:
    import fhir.resources as r5
    import fhir.resources.R4B as r4b

    module = r4b if version == "R4" else r5
    return cast(type[BaseModel], module.get_fhir_model_class(name))


def code_named(
    table: Mapping[str, Code], name: str, what: str, error: type[Exception] = ValueError
) -> Code:
    """`table[name]`; an unknown name raises `error` listing the names the table has."""
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}; expected one of {sorted(table)}") from None


def concept_has(concept: Any, code: Code) -> bool:
    """True if a CodeableConcept (object or dict) carries `code` among its codings."""
    if concept is None:
        return False
    codings = concept.get("coding") if isinstance(concept, dict) else concept.coding
    return any(code.matches(c) for c in codings or [])


# ---------------------------------------------------------------------------------------------
# Code system URLs

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"  # HCPCS Level II (G codes)
UCUM = "http://unitsofmeasure.org"
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
COMMUNICATION_NOT_DONE_REASON_SYSTEM = (
    "http://terminology.hl7.org/CodeSystem/communication-not-done-reason"
)
COMMUNICATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-category"
PARTICIPATION_MODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
CONDITION_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
# US Core condition-category holds health-concern (used by the Gravity IG's Condition examples).
US_CORE_CONDITION_CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
# US Core category code system (US Core 6+/7): "sdoh" for Conditions/Observations/ServiceRequests.
US_CORE_CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
US_CORE_CAREPLAN_CATEGORY_SYSTEM = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
SDOHCC_TEMPORARY_CODES = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
GOAL_ACHIEVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/goal-achievement"
CARE_TEAM_CATEGORY_SYSTEM = LOINC
CHARGEITEM_BILLINGCODES_SYSTEM = CPT
ORGANIZATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/organization-type"

# carecoord's own namespace. Identifier systems are IDENTIFIER_SYSTEM_BASE + kind (see
# carecoord.caremodel.identifiers); code systems CODESYSTEM_BASE + name.
CARECOORD_BASE = "https://carecoord.dev/fhir"
IDENTIFIER_SYSTEM_BASE = f"{CARECOORD_BASE}/identifier/"
CODESYSTEM_BASE = f"{CARECOORD_BASE}/CodeSystem/"
CARE_PROGRAM_SYSTEM = f"{CODESYSTEM_BASE}care-program"
TASK_TYPE_SYSTEM = f"{CODESYSTEM_BASE}task-type"
TASK_BUSINESS_STATUS_SYSTEM = f"{CODESYSTEM_BASE}task-business-status"
TASK_STATUS_REASON_SYSTEM = f"{CODESYSTEM_BASE}task-status-reason"
OUTREACH_OUTCOME_SYSTEM = f"{CODESYSTEM_BASE}outreach-outcome"

# ---------------------------------------------------------------------------------------------
# HL7 task-code (http://hl7.org/fhir/CodeSystem/task-code)

TASK_FULFILL = Code(TASK_CODE_SYSTEM, "fulfill", "Fulfill the focal request")
TASK_APPROVE = Code(TASK_CODE_SYSTEM, "approve", "Activate/approve the focal resource")
TASK_ABORT = Code(TASK_CODE_SYSTEM, "abort", "Mark the focal resource as no longer active")

# ---------------------------------------------------------------------------------------------
# Communication: not-done reasons, categories, media

NOT_DONE_UNKNOWN = Code(COMMUNICATION_NOT_DONE_REASON_SYSTEM, "unknown", "Unknown")
NOT_DONE_SYSTEM_ERROR = Code(COMMUNICATION_NOT_DONE_REASON_SYSTEM, "system-error", "System Error")
NOT_DONE_INVALID_PHONE = Code(
    COMMUNICATION_NOT_DONE_REASON_SYSTEM, "invalid-phone-number", "Invalid Phone Number"
)
NOT_DONE_RECIPIENT_UNAVAILABLE = Code(
    COMMUNICATION_NOT_DONE_REASON_SYSTEM, "recipient-unavailable", "Recipient Unavailable"
)
NOT_DONE_FAMILY_OBJECTION = Code(
    COMMUNICATION_NOT_DONE_REASON_SYSTEM, "family-objection", "Family Objection"
)
NOT_DONE_PATIENT_OBJECTION = Code(
    COMMUNICATION_NOT_DONE_REASON_SYSTEM, "patient-objection", "Patient Objection"
)

# Outreach outcome (catalog `outcome`) -> Communication status + statusReason.
# None = the outreach reached the patient (status completed).
OUTREACH_OUTCOME_NOT_DONE_REASON: dict[str, Code | None] = {
    "answered": None,
    "no-answer": NOT_DONE_RECIPIENT_UNAVAILABLE,
    "voicemail": NOT_DONE_RECIPIENT_UNAVAILABLE,
    "wrong-number": NOT_DONE_INVALID_PHONE,
    "declined": NOT_DONE_PATIENT_OBJECTION,
}

COMM_CATEGORY_ALERT = Code(COMMUNICATION_CATEGORY_SYSTEM, "alert", "Alert")
COMM_CATEGORY_NOTIFICATION = Code(COMMUNICATION_CATEGORY_SYSTEM, "notification", "Notification")
COMM_CATEGORY_REMINDER = Code(COMMUNICATION_CATEGORY_SYSTEM, "reminder", "Reminder")
COMM_CATEGORY_INSTRUCTION = Code(COMMUNICATION_CATEGORY_SYSTEM, "instruction", "Instruction")

# v3-ParticipationMode (the binding of Communication[Request].medium).
MODE_PHONE = Code(PARTICIPATION_MODE_SYSTEM, "PHONE", "telephone")
MODE_VIDEO = Code(PARTICIPATION_MODE_SYSTEM, "VIDEOCONF", "videoconferencing")
MODE_MAIL = Code(PARTICIPATION_MODE_SYSTEM, "MAILWRIT", "mail")
MODE_ONLINE = Code(PARTICIPATION_MODE_SYSTEM, "ONLINEWRIT", "online written")
MODE_WRITTEN = Code(PARTICIPATION_MODE_SYSTEM, "WRITTEN", "written")

# Outreach channel (catalog `channel`) -> medium. ParticipationMode has no SMS code: an SMS is
# written (WRITTEN); builders add the channel as CodeableConcept.text so it is not lost.
CHANNEL_MEDIUM: dict[str, Code] = {
    "phone": MODE_PHONE,
    "sms": MODE_WRITTEN,
    "video": MODE_VIDEO,
    "letter": MODE_MAIL,
    "portal": MODE_ONLINE,
}

# ---------------------------------------------------------------------------------------------
# Care programs (CarePlan.category). No published code system names these Medicare
# care-management programs, so carecoord defines CARE_PROGRAM_SYSTEM; every CarePlan also carries
# US Core's "assess-plan" category so US Core clients find it.

CAREPLAN_ASSESS_PLAN = Code(
    US_CORE_CAREPLAN_CATEGORY_SYSTEM, "assess-plan", "Assessment and Plan of Treatment"
)
PROGRAM_CCM = Code(CARE_PROGRAM_SYSTEM, "CCM", "Chronic Care Management")
PROGRAM_PCM = Code(CARE_PROGRAM_SYSTEM, "PCM", "Principal Care Management")
PROGRAM_RPM = Code(CARE_PROGRAM_SYSTEM, "RPM", "Remote Patient Monitoring")
PROGRAM_TCM = Code(CARE_PROGRAM_SYSTEM, "TCM", "Transitional Care Management")
PROGRAM_BHI = Code(CARE_PROGRAM_SYSTEM, "BHI", "Behavioral Health Integration")
PROGRAM_APCM = Code(CARE_PROGRAM_SYSTEM, "APCM", "Advanced Primary Care Management")
PROGRAMS: dict[str, Code] = {
    c.code: c
    for c in (PROGRAM_CCM, PROGRAM_PCM, PROGRAM_RPM, PROGRAM_TCM, PROGRAM_BHI, PROGRAM_APCM)
}

# ---------------------------------------------------------------------------------------------
# Roles and teams

ROLE_CARE_COORDINATOR = Code(SNOMED, "768820003", "Care coordinator")
ROLE_PRIMARY_CARE_PHYSICIAN = Code(SNOMED, "446050000", "Primary care physician")
# LOINC LA28865-6 is the longitudinal care-coordination focused care team; LA27976-2 (which
# carecoord wrote here before) is the encounter-focused care team.
CARE_TEAM_LONGITUDINAL = Code(
    LOINC, "LA28865-6", "Longitudinal care-coordination focused care team"
)

# ---------------------------------------------------------------------------------------------
# Conditions (Gravity SDOHCC Condition: category health-concern + the SDOH domain)

CONDITION_HEALTH_CONCERN = Code(
    US_CORE_CONDITION_CATEGORY_SYSTEM, "health-concern", "Health Concern"
)
CONDITION_SDOH = Code(US_CORE_CATEGORY_SYSTEM, "sdoh", "SDOH")
CONDITION_ACTIVE = Code(CONDITION_CLINICAL_SYSTEM, "active", "Active")
CONDITION_RESOLVED = Code(CONDITION_CLINICAL_SYSTEM, "resolved", "Resolved")
CONDITION_CONFIRMED = Code(CONDITION_VER_STATUS_SYSTEM, "confirmed", "Confirmed")
CONDITION_UNCONFIRMED = Code(CONDITION_VER_STATUS_SYSTEM, "unconfirmed", "Unconfirmed")

GOAL_IN_PROGRESS = Code(GOAL_ACHIEVEMENT_SYSTEM, "in-progress", "In Progress")

# ---------------------------------------------------------------------------------------------
# SDOH (Gravity SDOH Clinical Care IG)

SR_CATEGORY_SOCIAL_SERVICE = Code(SNOMED, "410606002", "Social service procedure")
HUNGER_VITAL_SIGN = Code(LOINC, "88121-9", "Hunger Vital Sign [HVS]")
REFERRAL_TO_SERVICE = Code(SNOMED, "306206005", "Referral to service")


@dataclass(frozen=True)
class SdohDomain:
    """One Gravity SDOH domain (category code) and the codes carecoord writes for it.

    conditions: Condition.code codings (SNOMED finding and/or ICD-10-CM Z code); goal:
    Goal.description (a SNOMED code where Gravity shows one, else `goal_text` alone); service:
    ServiceRequest.code of a referral to a community resource in this domain (a domain-specific
    SNOMED procedure where Gravity shows one, else the generic "Referral to service").
    """

    category: Code
    conditions: tuple[Code, ...]
    goal_text: str
    goal: Code | None = None
    service: Code = REFERRAL_TO_SERVICE

    @property
    def key(self) -> str:
        return self.category.code

    @property
    def condition(self) -> Code:
        """The primary Condition.code coding."""
        return self.conditions[0]


def _sdoh(code: str, display: str) -> Code:
    return Code(SDOHCC_TEMPORARY_CODES, code, display)


# Verified against the Gravity SDOH Clinical Care IG examples (food) and published SNOMED/ICD-10-CM
# codes (others). Extend by adding SdohDomain constants and putting them in SDOH_DOMAINS.
SDOH_FOOD_INSECURITY = SdohDomain(
    category=_sdoh("food-insecurity", "Food Insecurity"),
    conditions=(
        Code(SNOMED, "733423003", "Food insecurity"),
        Code(ICD10CM, "Z59.41", "Food insecurity"),
    ),
    goal=Code(SNOMED, "1078229009", "Food security"),
    goal_text="Food security",
    service=Code(SNOMED, "467771000124109", "Assistance with application for food pantry program"),
)
SDOH_HOUSING_INSTABILITY = SdohDomain(
    category=_sdoh("housing-instability", "Housing Instability"),
    conditions=(
        Code(SNOMED, "1156191002", "Housing instability"),
        Code(ICD10CM, "Z59.819", "Housing instability, housed unspecified"),
    ),
    goal_text="Stably housed",
)
SDOH_HOMELESSNESS = SdohDomain(
    category=_sdoh("homelessness", "Homelessness"),
    conditions=(Code(SNOMED, "32911000", "Homeless"), Code(ICD10CM, "Z59.00", "Homelessness")),
    goal_text="Housed",
)
SDOH_TRANSPORTATION_INSECURITY = SdohDomain(
    category=_sdoh("transportation-insecurity", "Transportation Insecurity"),
    conditions=(
        Code(SNOMED, "713458007", "Lack of access to transportation"),
        Code(ICD10CM, "Z59.82", "Transportation insecurity"),
    ),
    goal_text="Transportation security",
)
SDOH_UTILITY_INSECURITY = SdohDomain(
    category=_sdoh("utility-insecurity", "Utility Insecurity"),
    conditions=(Code(ICD10CM, "Z59.12", "Inadequate housing utilities"),),
    goal_text="Utility security",
)
SDOH_FINANCIAL_INSECURITY = SdohDomain(
    category=_sdoh("financial-insecurity", "Financial Insecurity"),
    conditions=(Code(ICD10CM, "Z59.86", "Financial insecurity"),),
    goal_text="Financial security",
)
SDOH_SOCIAL_CONNECTION = SdohDomain(
    category=_sdoh("social-connection", "Social Connection"),
    conditions=(Code(ICD10CM, "Z60.2", "Problems related to living alone"),),
    goal_text="Adequate social connection",
)
SDOH_UNSPECIFIED = _sdoh("sdoh-category-unspecified", "SDOH Category Unspecified")

SDOH_DOMAINS: dict[str, SdohDomain] = {
    d.key: d
    for d in (
        SDOH_FOOD_INSECURITY,
        SDOH_HOUSING_INSTABILITY,
        SDOH_HOMELESSNESS,
        SDOH_TRANSPORTATION_INSECURITY,
        SDOH_UTILITY_INSECURITY,
        SDOH_FINANCIAL_INSECURITY,
        SDOH_SOCIAL_CONNECTION,
    )
}

# ---------------------------------------------------------------------------------------------
# Billing (ChargeItem.code, CPT)

CPT_CCM_FIRST_20 = Code(CPT, "99490", "CCM, first 20 minutes of clinical staff time")
CPT_CCM_EACH_ADDL_20 = Code(CPT, "99439", "CCM, each additional 20 minutes")
CPT_COMPLEX_CCM_FIRST_60 = Code(CPT, "99487", "Complex CCM, first 60 minutes")
CPT_COMPLEX_CCM_EACH_ADDL_30 = Code(CPT, "99489", "Complex CCM, each additional 30 minutes")
CPT_PCM_FIRST_30 = Code(CPT, "99426", "PCM, first 30 minutes of clinical staff time")
CPT_PCM_EACH_ADDL_30 = Code(CPT, "99427", "PCM, each additional 30 minutes")
CPT_RPM_FIRST_20 = Code(CPT, "99457", "RPM treatment management, first 20 minutes")
CPT_RPM_EACH_ADDL_20 = Code(CPT, "99458", "RPM treatment management, each additional 20 minutes")
CPT_CCM_PRACTITIONER_FIRST_30 = Code(CPT, "99491", "CCM, first 30 minutes by physician/QHP")
CPT_CCM_PRACTITIONER_EACH_ADDL_30 = Code(
    CPT, "99437", "CCM, each additional 30 minutes by physician/QHP"
)
CPT_PCM_PRACTITIONER_FIRST_30 = Code(CPT, "99424", "PCM, first 30 minutes by physician/QHP")
CPT_PCM_PRACTITIONER_EACH_ADDL_30 = Code(
    CPT, "99425", "PCM, each additional 30 minutes by physician/QHP"
)
CPT_BHI_20 = Code(CPT, "99484", "General behavioral health integration, at least 20 minutes")
# CY 2026 PFS final rule (CMS-1832-F, 90 FR 49266): RPM 99470 / 99445, APCM add-ons G0568-G0570.
CPT_RPM_FIRST_10 = Code(CPT, "99470", "RPM treatment management, first 10 minutes")
CPT_RPM_SETUP = Code(CPT, "99453", "RPM initial set-up and patient education")
CPT_RPM_DEVICE_16_30 = Code(CPT, "99454", "RPM device supply, 16-30 days in 30 days")
CPT_RPM_DEVICE_2_15 = Code(CPT, "99445", "RPM device supply, 2-15 days in 30 days")
HCPCS_APCM_COCM_FIRST = Code(HCPCS, "G0568", "APCM add-on: collaborative care, first month")
HCPCS_APCM_COCM_LATER = Code(HCPCS, "G0569", "APCM add-on: collaborative care, later months")
HCPCS_APCM_BHI = Code(HCPCS, "G0570", "APCM add-on: behavioral health care management")
CPT_TCM_MODERATE = Code(CPT, "99495", "Transitional care management, moderate complexity")
CPT_TCM_HIGH = Code(CPT, "99496", "Transitional care management, high complexity")
HCPCS_APCM_1 = Code(HCPCS, "G0556", "Advanced primary care management, level 1")
HCPCS_APCM_2 = Code(HCPCS, "G0557", "Advanced primary care management, level 2")
HCPCS_APCM_3 = Code(HCPCS, "G0558", "Advanced primary care management, level 3 (QMB)")
BILLING_CODES: dict[str, Code] = {
    c.code: c
    for c in (
        CPT_CCM_FIRST_20,
        CPT_CCM_EACH_ADDL_20,
        CPT_COMPLEX_CCM_FIRST_60,
        CPT_COMPLEX_CCM_EACH_ADDL_30,
        CPT_PCM_FIRST_30,
        CPT_PCM_EACH_ADDL_30,
        CPT_RPM_FIRST_20,
        CPT_RPM_EACH_ADDL_20,
        CPT_CCM_PRACTITIONER_FIRST_30,
        CPT_CCM_PRACTITIONER_EACH_ADDL_30,
        CPT_PCM_PRACTITIONER_FIRST_30,
        CPT_PCM_PRACTITIONER_EACH_ADDL_30,
        CPT_BHI_20,
        CPT_TCM_MODERATE,
        CPT_TCM_HIGH,
        HCPCS_APCM_1,
        HCPCS_APCM_2,
        HCPCS_APCM_3,
        CPT_RPM_FIRST_10,
        CPT_RPM_SETUP,
        CPT_RPM_DEVICE_16_30,
        CPT_RPM_DEVICE_2_15,
        HCPCS_APCM_COCM_FIRST,
        HCPCS_APCM_COCM_LATER,
        HCPCS_APCM_BHI,
    )
}

# ---------------------------------------------------------------------------------------------
# carecoord task types (Task.code for care-management work) and business statuses

TASK_MEDICATION_RECONCILIATION = Code(
    TASK_TYPE_SYSTEM, "medication-reconciliation", "Medication reconciliation"
)
TASK_ASSESSMENT = Code(TASK_TYPE_SYSTEM, "assessment", "Care-management assessment")
TASK_CARE_PLAN_REVIEW = Code(TASK_TYPE_SYSTEM, "care-plan-review", "Care plan review")
TASK_OUTREACH_ESCALATION = Code(
    TASK_TYPE_SYSTEM, "outreach-escalation", "Escalation of unanswered outreach"
)
TASK_CLINICAL_REVIEW = Code(TASK_TYPE_SYSTEM, "clinical-review", "Clinical review by provider")
# Program rules (consent, disenrolment, transitional care): carecoord.handlers.programs.consent,
# .disenrolment, .tcm.
TASK_OBTAIN_CONSENT = Code(TASK_TYPE_SYSTEM, "obtain-consent", "Obtain program consent")
TASK_CONFIRM_DISENROLMENT = Code(
    TASK_TYPE_SYSTEM, "confirm-disenrolment", "Confirm the patient's disenrolment"
)
TASK_UNREACHABLE_REVIEW = Code(
    TASK_TYPE_SYSTEM, "unreachable-review", "Review enrolment: patient unreachable for months"
)
TASK_TCM_INTERACTIVE_CONTACT = Code(
    TASK_TYPE_SYSTEM, "tcm-interactive-contact", "TCM interactive contact after discharge"
)
TASK_TCM_FACE_TO_FACE = Code(TASK_TYPE_SYSTEM, "tcm-face-to-face", "TCM face-to-face visit")
WORK_TASK_TYPES: dict[str, Code] = {
    c.code: c
    for c in (
        TASK_MEDICATION_RECONCILIATION,
        TASK_ASSESSMENT,
        TASK_CARE_PLAN_REVIEW,
        TASK_OBTAIN_CONSENT,
        TASK_TCM_INTERACTIVE_CONTACT,
        TASK_TCM_FACE_TO_FACE,
    )
}

# Task.statusReason codes (no published code system covers these; text is always set too).
REASON_OVERDUE = Code(TASK_STATUS_REASON_SYSTEM, "overdue", "Past its due date")
REASON_NO_CAPACITY = Code(TASK_STATUS_REASON_SYSTEM, "no-capacity", "Recipient has no capacity")
REASON_PATIENT_DECLINED = Code(TASK_STATUS_REASON_SYSTEM, "patient-declined", "Patient declined")
REASON_UNREACHABLE = Code(TASK_STATUS_REASON_SYSTEM, "unreachable", "Patient could not be reached")
REASON_OTHER = Code(TASK_STATUS_REASON_SYSTEM, "other", "Other")
REASON_DISENROLLED = Code(TASK_STATUS_REASON_SYSTEM, "disenrolled", "Patient disenrolled")

# Task input/output types for carecoord tasks (the clinical question text rides in Task.input).
TASK_INPUT_QUESTION = Code(TASK_TYPE_SYSTEM, "question", "Question for the provider")

# The clinical loop (handler clinical-routing, carecoord.handlers.clinical.loop): the question's
# urgency and escalation level ride in Task.input; the provider's answer in Task.output (text, or
# a reference to a Communication); "visit-needed" (statusReason or businessStatus) asks for a visit.
TASK_INPUT_URGENCY = Code(TASK_TYPE_SYSTEM, "urgency", "Urgency of the clinical question")
TASK_INPUT_ESCALATION_LEVEL = Code(
    TASK_TYPE_SYSTEM, "escalation-level", "Escalation level of a clinical question"
)
TASK_OUTPUT_ANSWER = Code(TASK_TYPE_SYSTEM, "answer", "Provider's answer to the question")
TASK_RELAY_ANSWER = Code(
    TASK_TYPE_SYSTEM, "relay-clinical-answer", "Bring the provider's answer to the patient"
)
TASK_SCHEDULE_VISIT = Code(
    TASK_TYPE_SYSTEM, "schedule-visit", "Schedule a visit the provider asked for"
)
REASON_VISIT_NEEDED = Code(
    TASK_STATUS_REASON_SYSTEM, "visit-needed", "The provider needs to see the patient"
)
REASON_ANSWERED_ELSEWHERE = Code(
    TASK_STATUS_REASON_SYSTEM, "answered-elsewhere", "Another provider answered the question"
)
BUSINESS_CLINICAL_ESCALATED = Code(
    TASK_BUSINESS_STATUS_SYSTEM, "clinical-escalated", "Unanswered past due, escalated"
)

# ---------------------------------------------------------------------------------------------
# Caseload, outreach escalation and overdue care tasks (handlers: enrolment, outreach, care-tasks)

TASK_ASSIGN_CARE_MANAGER = Code(
    TASK_TYPE_SYSTEM, "assign-care-manager", "Assign a care manager (no capacity left)"
)
TASK_VERIFY_CONTACT = Code(TASK_TYPE_SYSTEM, "verify-contact-details", "Verify contact details")
TASK_OVERDUE_ESCALATION = Code(
    TASK_TYPE_SYSTEM, "overdue-escalation", "Escalation of an overdue care-management task"
)
BUSINESS_OVERDUE_ESCALATED = Code(
    TASK_BUSINESS_STATUS_SYSTEM, "overdue-escalated", "Overdue, escalated to the supervisor"
)
REASON_CONTACT_MADE = Code(TASK_STATUS_REASON_SYSTEM, "contact-made", "The patient was reached")
REASON_CARE_MANAGER_CHANGED = Code(
    TASK_STATUS_REASON_SYSTEM, "care-manager-changed", "Reassigned to another care manager"
)
COMM_CATEGORY_OUTREACH = Code(
    f"{CODESYSTEM_BASE}communication-category",
    "monthly-outreach",
    "Monthly care-management outreach",
)

# ---------------------------------------------------------------------------------------------
# Community referrals, billable time (handlers: referrals, billing)

TASK_MANUAL_REFERRAL = Code(TASK_TYPE_SYSTEM, "manual-referral", "Manual community referral needed")
# Task.input of a referral Task: the HealthcareService it was sent to and its attempt number.
TASK_INPUT_HEALTHCARE_SERVICE = Code(
    TASK_TYPE_SYSTEM, "healthcare-service", "Community service the referral was sent to"
)
TASK_INPUT_ATTEMPT = Code(TASK_TYPE_SYSTEM, "referral-attempt", "Referral attempt number")
BUSINESS_NO_MATCH = Code(
    TASK_BUSINESS_STATUS_SYSTEM, "no-directory-match", "No community resource left to refer to"
)
BUSINESS_NO_CONSENT = Code(
    TASK_BUSINESS_STATUS_SYSTEM, "no-consent-to-contact", "Patient has not consented to contact"
)
GOAL_ACHIEVED = Code(GOAL_ACHIEVEMENT_SYSTEM, "achieved", "Achieved")
# A ChargeItem recording one logged stretch of care-management time (not billable by itself).
CARE_MANAGEMENT_TIME = Code(
    f"{CODESYSTEM_BASE}charge-item", "care-management-time", "Care-management time logged"
)
# An Observation recording that an RPM device transmitted a reading (carecoord.rpm.reading): the
# device-supply codes count the distinct days these fall on.
RPM_READING = Code(f"{CODESYSTEM_BASE}observation", "rpm-reading", "RPM device reading received")

# ---------------------------------------------------------------------------------------------
# Transactional outbox (carecoord.caremodel.outbox)

# A Basic resource written in the same transaction as an event's effects, holding the events to
# emit, so a redelivered event re-emits exactly what its first processing decided.
OUTBOX_RECORD = Code(f"{CODESYSTEM_BASE}record-type", "event-outbox", "Events emitted for an event")
OUTBOX_EMITS_EXTENSION = f"{CARECOORD_BASE}/StructureDefinition/outbox-emits"

# ---------------------------------------------------------------------------------------------
# Consent (handlers/programs/consent.py) and transitional care episodes (handlers/programs/tcm.py)

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_SCOPE_TREATMENT = Code(CONSENT_SCOPE_SYSTEM, "treatment", "Treatment")
CONSENT_PATIENT_CONSENT = Code(LOINC, "59284-0", "Patient Consent")
CONSENT_METHOD_EXTENSION = f"{CARECOORD_BASE}/StructureDefinition/consent-method"
CONSENT_RECORDED_BY_EXTENSION = f"{CARECOORD_BASE}/StructureDefinition/consent-recorded-by"
# SDOHCC Consent (HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/profiles/SDOHCCConsent.fsh, example
# input/fsh/instances/SDOHCC-ConsentInformationDisclosureExample.fsh; systems from aliases.fsh).
CONSENT_SCOPE_PRIVACY = Code(CONSENT_SCOPE_SYSTEM, "patient-privacy", "Privacy Consent")
CONSENT_CATEGORY_IDSCL = Code(
    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IDSCL", "information disclosure"
)
CONSENT_POLICY_HIPAA_AUTH = Code(
    "http://terminology.hl7.org/CodeSystem/consentpolicycodes", "hipaa-auth", "HIPAA Authorization"
)
CONSENT_ACTION_DISCLOSE = Code(
    "http://terminology.hl7.org/CodeSystem/consentaction", "disclose", "Disclose"
)
DISENROLMENT_REASON_EXTENSION = f"{CARECOORD_BASE}/StructureDefinition/disenrolment-reason"
EPISODE_TYPE_TCM = Code(CARE_PROGRAM_SYSTEM, "TCM", "Transitional Care Management")
TCM_EXTENSION_BASE = f"{CARECOORD_BASE}/StructureDefinition/tcm-"
# ChargeItem.performer.function of care-management time
PERFORMER_FUNCTION_SYSTEM = f"{CODESYSTEM_BASE}performer-function"
PERFORMER_CLINICAL_STAFF = Code(PERFORMER_FUNCTION_SYSTEM, "clinical-staff", "Clinical staff")
PERFORMER_PRACTITIONER = Code(PERFORMER_FUNCTION_SYSTEM, "practitioner", "Physician or QHP")
PERFORMER_BILLING = Code(PERFORMER_FUNCTION_SYSTEM, "billing-practitioner", "Billing practitioner")

# Gravity SDOH Clinical Care conformance (carecoord.caremodel.profiles)

CARE_TEAM_ENCOUNTER_FOCUSED = Code(LOINC, "LA27976-2", "Encounter-focused care team")
# input/fsh/codesystems/SDOHCCCodeSystemTemporaryCodes.fsh (HL7/fhir-sdoh-clinicalcare @6604b7a)
SDOHCC_RESULTING_ACTIVITY = Code(SDOHCC_TEMPORARY_CODES, "resulting-activity", "Resulting Activity")
SDOHCC_CONTACTING_SUBJECT_PROHIBITED = Code(
    SDOHCC_TEMPORARY_CODES, "contacting-subject-prohibited", "Contacting Subject Prohibited"
)
# US Core category code system: the SDOHCC ValueSet Service Category's only code
# (input/fsh/valuesets/SDOHCCValueSetServiceCategory.fsh).
SERVICE_CATEGORY_SDOH = Code(US_CORE_CATEGORY_SYSTEM, "sdoh", "SDOH")
# The care manager reviews a completed referral's outcome (carecoord never marks the Goal).
TASK_REVIEW_REFERRAL_OUTCOME = Code(
    TASK_TYPE_SYSTEM, "review-referral-outcome", "Review the outcome of a community referral"
)

# ---------------------------------------------------------------------------------------------
# SDOHCC STU 3 (HL7/fhir-sdoh-clinicalcare 3.0.0 @6604b7a): content-rich Task input/output,
# capacity status, program enrollment status. Codes from input/fsh/codesystems/
# SDOHCCCodeSystemTemporaryCodes.fsh ("STU3 Temporary Codes").

SDOHCC_BASE_URL = "http://hl7.org/fhir/us/sdoh-clinicalcare"
# Task.input[AdditionalContent] / Task.output[AdditionalContent].type
# (input/fsh/profiles/SDOHCCTaskForReferralManagement.fsh).
SDOHCC_ADDITIONAL_CONTENT = Code(SDOHCC_TEMPORARY_CODES, "additional-content", "Additional Content")
# input/fsh/extensions/SDOHCCExtensionHealthcareServiceCapacityStatus.fsh: sub-extensions
# capacityStatus (1..1, CodeableConcept) and capacityNotes (0..1, string).
CAPACITY_STATUS_EXTENSION = (
    f"{SDOHCC_BASE_URL}/StructureDefinition/SDOHCC-ExtensionHealthcareServiceCapacityStatus"
)
# input/fsh/valuesets/SDOHCCValueSetCapacityStatus.fsh (binding extensible).
CAPACITY_HAS = Code(SDOHCC_TEMPORARY_CODES, "capacity", "Has Capacity")
CAPACITY_NONE = Code(SDOHCC_TEMPORARY_CODES, "no-capacity", "No Capacity")
CAPACITY_WAITLIST = Code(SDOHCC_TEMPORARY_CODES, "waitlist", "No Capacity - Has Waitlist")
CAPACITY_ASSESSMENT_REQUIRED = Code(
    SDOHCC_TEMPORARY_CODES, "additional-assessment-required", "Additional Assessment Required"
)
# input/fsh/profiles/SDOHCCObservationEnrollmentStatus.fsh: category[enrollment] and the value
# set input/fsh/valuesets/SDOHCCValueSetEnrollmentStatus.fsh (binding preferred).
ENROLLMENT_CATEGORY = Code(
    SDOHCC_TEMPORARY_CODES, "program-enrollment", "Program Enrollment Status"
)
ENROLLMENT_STATUSES: tuple[Code, ...] = (
    Code(SDOHCC_TEMPORARY_CODES, "enrolled", "Enrolled"),
    Code(SDOHCC_TEMPORARY_CODES, "not-enrolled", "Not Enrolled"),
    Code(SDOHCC_TEMPORARY_CODES, "not-enrolled-on-waitlist", "Not Enrolled - On Waitlist"),
)
