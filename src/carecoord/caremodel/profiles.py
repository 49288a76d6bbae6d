"""The profiles carecoord claims (meta.profile), and a conformance checker for them.

Every rule below is taken from the IG sources named in its `source` (paths in the HL7 GitHub
repositories; the SDOHCC IG is HL7/fhir-sdoh-clinicalcare STU 3, version 3.0.0, at commit
6604b7ac13b9f0cd80603428f99e5be0672966aa (no 3.0.0 tag: the last commit, "Publication_Path"),
which pins US Core 7.0.0; US Core rules are from HL7/US-Core input/resources-yaml at commit
85bf4af). What STU 3 changed from 2.x and what carecoord does about it: docs/sdohcc-stu3.md.
`check(resource)` returns the violations of every profile the resource claims; no network, no
terminology server: required bindings are checked for the code systems / codes the IG lists.

Checked per profile: required elements and cardinalities (min/max), fixed and pattern codes,
reference target types, and the required binding of status (and the code systems of other
required bindings where the IG names a closed list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carecoord.caremodel import terminology as t

SDOHCC_BASE = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
US_CORE_BASE = "http://hl7.org/fhir/us/core/StructureDefinition/"

# Canonical URLs: the IG's canonical (sushi-config.yaml) + "/StructureDefinition/" + the Id.
SDOHCC_TASK_FOR_REFERRAL = SDOHCC_BASE + "SDOHCC-TaskForReferralManagement"
SDOHCC_SERVICE_REQUEST = SDOHCC_BASE + "SDOHCC-ServiceRequest"
SDOHCC_GOAL = SDOHCC_BASE + "SDOHCC-Goal"
SDOHCC_CONDITION = SDOHCC_BASE + "SDOHCC-Condition"
SDOHCC_PRACTITIONER_ROLE = SDOHCC_BASE + "SDOHCC-practitionerrole"
SDOHCC_CONSENT = SDOHCC_BASE + "SDOHCC-Consent"
SDOHCC_OBSERVATION_SCREENING_RESPONSE = SDOHCC_BASE + "SDOHCC-ObservationScreeningResponse"
US_CORE_OBSERVATION_SCREENING_ASSESSMENT = US_CORE_BASE + "us-core-observation-screening-assessment"
# STU 3: read from what CBOs write, not claimed by carecoord.
SDOHCC_OBSERVATION_ENROLLMENT = SDOHCC_BASE + "SDOHCC-ObservationProgramEnrollmentStatus"
SDOHCC_HEALTHCARE_SERVICE_REFERRAL = SDOHCC_BASE + "SDOHCC-HealthcareServiceForReferralManagement"
US_CORE_CARE_TEAM = US_CORE_BASE + "us-core-careteam"
US_CORE_CARE_PLAN = US_CORE_BASE + "us-core-careplan"

# Extension and codes the profiles name.
# input/fsh/aliases.fsh: $resource-pertainsToGoal
PERTAINS_TO_GOAL = "http://hl7.org/fhir/StructureDefinition/resource-pertainsToGoal"

SDOHCC_COMMIT = "6604b7ac13b9f0cd80603428f99e5be0672966aa"  # 3.0.0 (STU 3)
_SDOHCC_REPO = f"HL7/fhir-sdoh-clinicalcare@{SDOHCC_COMMIT[:7]}"
_US_CORE_REPO = "HL7/US-Core"


def _sdohcc(path: str) -> str:
    """A source file of the SDOHCC IG at the pinned commit, e.g. "profiles/SDOHCCGoal.fsh"."""
    return f"{_SDOHCC_REPO} input/fsh/{path}"


def _us_core(name: str) -> str:
    """A US Core StructureDefinition's source, e.g. "us-core-careplan"."""
    return f"{_US_CORE_REPO} input/resources-yaml/StructureDefinition-{name}.yml"


SRC_TASK = _sdohcc("profiles/SDOHCCTaskForReferralManagement.fsh")
SRC_TASK_STATUS = _sdohcc("valuesets/SDOHCCValueSetReferralTaskStatus.fsh")
SRC_SR = _sdohcc("profiles/SDOHCCServiceRequest.fsh")
SRC_GOAL = _sdohcc("profiles/SDOHCCGoal.fsh")
SRC_CONDITION = _sdohcc("profiles/SDOHCCCondition.fsh")
SRC_PRACTITIONER_ROLE = _sdohcc("profiles/SDOHCCPractitionerRole.fsh")
SRC_CONSENT = _sdohcc("profiles/SDOHCCConsent.fsh")
SRC_ENROLLMENT = _sdohcc("profiles/SDOHCCObservationEnrollmentStatus.fsh")
SRC_OBS_4 = _sdohcc("invariants/SDOH-Obs-4.fsh")
SRC_HCS_REFERRAL = _sdohcc("profiles/SDOHCCHealthcareServiceForReferralManagement.fsh")
SRC_CAPACITY = _sdohcc("extensions/SDOHCCExtensionHealthcareServiceCapacityStatus.fsh")
# Consent.policy / policyRule (ppc-1) and the status value set are the base resource's.
SRC_R4_CONSENT = "HL7 FHIR R4 consent.html (ppc-1, ConsentState)"
SRC_US_CORE_ROLE = _us_core("us-core-practitionerrole")
SRC_CARE_TEAM = _us_core("us-core-careteam")
SRC_CARE_PLAN = _us_core("us-core-careplan")
SRC_SCREENING_RESPONSE = _sdohcc("profiles/SDOHCCObservationScreeningResponse.fsh")
SRC_SCREENING_STATUS = _sdohcc("valuesets/SDOHCCValueSetObservationStatus.fsh")
SRC_SCREENING_ASSESSMENT = _us_core("us-core-observation-screening-assessment")

# SDOHCCValueSetReferralTaskStatus: all of TaskStatus except ready and received.
REFERRAL_TASK_STATUSES = frozenset(
    {
        "draft", "requested", "accepted", "rejected", "cancelled", "in-progress", "on-hold",
        "failed", "completed", "entered-in-error",
    }
)  # fmt: skip
REQUEST_STATUSES = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
# SDOHCCValueSetObservationStatus
SCREENING_RESPONSE_STATUSES = frozenset({"final", "corrected", "entered-in-error", "unknown"})
# R4 ObservationStatus (US Core binds status to it, required)
OBSERVATION_STATUSES = frozenset(
    {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error",
     "unknown"}
)  # fmt: skip
CARE_TEAM_STATUSES = frozenset({"proposed", "active", "suspended", "inactive", "entered-in-error"})
GOAL_LIFECYCLE = frozenset(
    {
        "proposed", "planned", "accepted", "active", "on-hold", "completed", "cancelled",
        "entered-in-error", "rejected",
    }
)  # fmt: skip
CARE_PLAN_INTENTS = frozenset({"proposal", "plan", "order", "option"})
SR_INTENTS = frozenset(
    {
        "proposal", "plan", "directive", "order", "original-order", "reflex-order",
        "filler-order", "instance-order", "option",
    }
)  # fmt: skip
NARRATIVE_STATUSES = frozenset({"generated", "additional"})  # us-core-narrative-status
CONSENT_STATES = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)


@dataclass(frozen=True)
class Violation:
    profile: str
    path: str
    message: str
    source: str

    def __str__(self) -> str:
        return f"{self.profile.rsplit('/', 1)[-1]}: {self.path}: {self.message} [{self.source}]"


Check = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Rule:
    path: str
    check: Check
    source: str


def values(node: Any, path: str) -> list[Any]:
    """Every value at a dotted path, through lists ("participant.role.coding")."""
    current: list[Any] = [node]
    for part in path.split(".") if path else []:
        nxt: list[Any] = []
        for item in current:
            if isinstance(item, Mapping) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _card(path: str, lo: int, hi: int | None = None) -> Check:
    parent, _, leaf = path.rpartition(".")

    def check(res: Mapping[str, Any]) -> str | None:
        for owner in values(res, parent) if parent else [res]:
            found = values(owner, leaf)
            if len(found) < lo:
                return f"needs at least {lo} (has {len(found)})"
            if hi is not None and len(found) > hi:
                return f"allows at most {hi} (has {len(found)})"
        return None

    return check


def _fixed(path: str, value: Any) -> Check:
    def check(res: Mapping[str, Any]) -> str | None:
        bad = [v for v in values(res, path) if v != value]
        return f"must be {value!r}" if bad else None

    return check


def _pattern(path: str, code: t.Code, *, required: bool = True) -> Check:
    """Every CodeableConcept at `path` (or, unless required, none) carries system|code."""

    def check(res: Mapping[str, Any]) -> str | None:
        found = values(res, path)
        if not found and not required:
            return None
        if not found or not all(t.concept_has(c, code) for c in found):
            return f"must carry {code.system}|{code.code}"
        return None

    return check


def _contains(path: str, code: t.Code, at_least: int = 1) -> Check:
    """At least `at_least` CodeableConcepts at `path` carry system|code (a slice's min)."""

    def check(res: Mapping[str, Any]) -> str | None:
        n = sum(1 for c in values(res, path) if t.concept_has(c, code))
        return None if n >= at_least else f"needs a {code.system}|{code.code} entry"

    return check


def _targets(path: str, types: Sequence[str]) -> Check:
    def check(res: Mapping[str, Any]) -> str | None:
        for r in values(res, path):
            reference = r.get("reference") if isinstance(r, Mapping) else None
            if not isinstance(reference, str):
                continue
            if reference.startswith("#"):
                return f"contained reference {reference}: must be a {' or '.join(types)}"
            rtype = reference.split("/_history/")[0].rstrip("/").split("/")[-2:][0]
            if rtype not in types and not reference.startswith("urn:"):
                return f"references {rtype}; allowed: {', '.join(types)}"
        return None

    return check


def _binding(path: str, allowed: Iterable[str]) -> Check:
    allowed = frozenset(allowed)

    def check(res: Mapping[str, Any]) -> str | None:
        bad = sorted({str(v) for v in values(res, path) if v not in allowed})
        return f"{', '.join(bad)} not in the required value set" if bad else None

    return check


def _system_binding(path: str, systems: Iterable[str]) -> Check:
    """Required binding to value sets drawn from whole code systems: every coding's system."""
    systems = frozenset(systems)

    def check(res: Mapping[str, Any]) -> str | None:
        for concept in values(res, path):
            codings = concept.get("coding") or [] if isinstance(concept, Mapping) else []
            if not any(c.get("system") in systems for c in codings):
                return f"needs a coding from {', '.join(sorted(systems))}"
        return None

    return check


def _extension_targets(url: str, types: Sequence[str]) -> Check:
    inner = _targets("valueReference", types)

    def check(res: Mapping[str, Any]) -> str | None:
        for ext in res.get("extension") or []:
            if str(ext.get("url", "")).split("|")[0] == url:
                if "valueReference" not in ext:
                    return "needs valueReference"
                problem = inner(ext)
                if problem:
                    return problem
        return None

    return check


def _no_goal_in_supporting_info(res: Mapping[str, Any]) -> str | None:
    for r in values(res, "supportingInfo"):
        reference = str(r.get("reference", "")) if isinstance(r, Mapping) else ""
        if reference.startswith("Goal/"):
            return "a Goal belongs in the pertainsToGoal extension, not supportingInfo"
    return None


def _occurrence_type(res: Mapping[str, Any]) -> str | None:
    present = [k for k in res if k.startswith("occurrence")]
    bad = [
        k
        for k in present
        if k not in ("occurrencePeriod", "occurrenceDateTime", "occurrenceTiming")
    ]
    return f"{bad[0]}: occurrence[x] only Period or dateTime or Timing" if bad else None


def _output_resulting_activity(res: Mapping[str, Any]) -> str | None:
    for out in res.get("output") or []:
        if not t.concept_has(
            out.get("type"), t.Code(t.SDOHCC_TEMPORARY_CODES, "resulting-activity")
        ):
            continue
        if "valueReference" in out:
            problem = _targets("valueReference", ("Procedure",))(out)
            if problem:
                return problem
        elif "valueCodeableConcept" not in out:
            return "resulting-activity output needs a Procedure reference or a code"
    return None


# Task.output[AdditionalContent].valueReference only Reference(SDOHCCObservationProgramEnrollment
# Status or SDOHCCObservationAssessment or SDOHCCObservationScreeningResponse or SDOHCCGoal or
# SDOHCCCondition or QuestionnaireResponse or CarePlan): by resource type.
ADDITIONAL_CONTENT_OUTPUT_TYPES = (
    "Observation", "Goal", "Condition", "QuestionnaireResponse", "CarePlan",
)  # fmt: skip


def _additional_content(element: str, types: Sequence[str] | None) -> Check:
    """Task.input/output[AdditionalContent] (type additional-content): a Reference (of `types`;
    None: any resource)."""

    def check(res: Mapping[str, Any]) -> str | None:
        for item in res.get(element) or []:
            if not t.concept_has(item.get("type"), t.SDOHCC_ADDITIONAL_CONTENT):
                continue
            if "valueReference" not in item:
                return f"additional-content {element} needs a valueReference"
            if types is not None:
                problem = _targets("valueReference", types)(item)
                if problem:
                    return problem
        return None

    return check


def _capacity_status(res: Mapping[str, Any]) -> str | None:
    # extension[capacity-status] 1..1; its capacityStatus 1..1 valueCodeableConcept.
    found = [
        e
        for e in res.get("extension") or []
        if str(e.get("url", "")).split("|")[0] == t.CAPACITY_STATUS_EXTENSION
    ]
    if len(found) != 1:
        return f"needs exactly one capacity-status extension (has {len(found)})"
    status = [s for s in found[0].get("extension") or [] if s.get("url") == "capacityStatus"]
    if len(status) != 1 or "valueCodeableConcept" not in status[0]:
        return "capacity-status needs one capacityStatus with a valueCodeableConcept"
    return None


PATIENT = ("Patient",)
TASK_STATUS_REASON_REQUIRED = frozenset({"rejected", "cancelled", "on-hold", "failed"})


def _status_reason_text(res: Mapping[str, Any]) -> str | None:
    # statusReason.text 1.. (when statusReason is present); the IG's comment asks for it on
    # rejected, cancelled, on-hold and failed.
    reason = res.get("statusReason")
    if reason is not None and not (isinstance(reason, Mapping) and reason.get("text")):
        return "statusReason.text is required"
    if res.get("status") in TASK_STATUS_REASON_REQUIRED and reason is None:
        return f"status {res.get('status')} should carry statusReason.text"
    return None


def _telecom_or_endpoint(res: Mapping[str, Any]) -> str | None:
    # US Core pd-1: telecom.exists() or endpoint.exists()
    return None if res.get("telecom") or res.get("endpoint") else "needs telecom or endpoint"


def _consent_source(res: Mapping[str, Any]) -> str | None:
    # source[x] 1..: only Attachment or Reference(Consent, Contract, DocumentReference,
    # QuestionnaireResponse)
    found = [k for k in res if k.startswith("source")]
    if not found:
        return "needs sourceAttachment or sourceReference (the consent form)"
    if any(k not in ("sourceAttachment", "sourceReference") for k in found):
        return f"{found[0]}: source[x] only Attachment or Reference"
    return _targets(
        "sourceReference", ("Consent", "Contract", "DocumentReference", "QuestionnaireResponse")
    )(res)


def _policy_or_rule(res: Mapping[str, Any]) -> str | None:
    # R4 Consent ppc-1: policy.exists() or policyRule.exists()
    return None if res.get("policy") or res.get("policyRule") else "needs policy or policyRule"


def _careplan_assess_plan(res: Mapping[str, Any]) -> str | None:
    return _contains("category", t.CAREPLAN_ASSESS_PLAN)(res)


RULES: dict[str, tuple[str, list[Rule]]] = {
    SDOHCC_TASK_FOR_REFERRAL: (
        "Task",
        [
            Rule("status", _binding("status", REFERRAL_TASK_STATUSES), SRC_TASK_STATUS),
            Rule("statusReason.text", _status_reason_text, SRC_TASK),
            Rule("intent", _fixed("intent", "order"), SRC_TASK),
            Rule("code", _card("code", 1), SRC_TASK),
            Rule("code", _pattern("code", t.TASK_FULFILL), SRC_TASK),
            Rule("focus", _card("focus", 1), SRC_TASK),
            Rule("focus", _targets("focus", ("ServiceRequest",)), SRC_TASK),
            Rule("for", _card("for", 1), SRC_TASK),
            Rule("for", _targets("for", ("Patient", "RelatedPerson", "Group")), SRC_TASK),
            Rule("authoredOn", _card("authoredOn", 1), SRC_TASK),
            Rule("requester", _card("requester", 1), SRC_TASK),
            Rule(
                "requester",
                _targets("requester", ("PractitionerRole", "Organization")),
                SRC_TASK,
            ),
            Rule("output", _output_resulting_activity, SRC_TASK),
            Rule("input:AdditionalContent", _additional_content("input", None), SRC_TASK),
            Rule(
                "output:AdditionalContent",
                _additional_content("output", ADDITIONAL_CONTENT_OUTPUT_TYPES),
                SRC_TASK,
            ),
        ],
    ),
    SDOHCC_OBSERVATION_ENROLLMENT: (
        "Observation",
        [
            Rule("code", _card("code", 1, 1), SRC_ENROLLMENT),
            Rule(
                "category:us-core (SDOH-Obs-4)",
                _contains("category", t.SERVICE_CATEGORY_SDOH),
                SRC_OBS_4,
            ),
            Rule("value[x]", _card("valueCodeableConcept", 1, 1), SRC_ENROLLMENT),
            Rule("focus", _targets("focus", ("HealthcareService",)), SRC_ENROLLMENT),
        ],
    ),
    SDOHCC_HEALTHCARE_SERVICE_REFERRAL: (
        "HealthcareService",
        [
            Rule("extension:capacity-status", _capacity_status, SRC_CAPACITY),
            Rule("active", _card("active", 1, 1), SRC_HCS_REFERRAL),
            Rule("active", _fixed("active", True), SRC_HCS_REFERRAL),
            Rule("category", _card("category", 1), SRC_HCS_REFERRAL),
            Rule(
                "category.coding:ServiceCategory",
                _contains("category", t.SERVICE_CATEGORY_SDOH),
                SRC_HCS_REFERRAL,
            ),
            Rule("type", _card("type", 1, 1), SRC_HCS_REFERRAL),
            Rule("name", _card("name", 1), SRC_HCS_REFERRAL),
        ],
    ),
    SDOHCC_SERVICE_REQUEST: (
        "ServiceRequest",
        [
            Rule("status", _binding("status", REQUEST_STATUSES), SRC_SR),
            Rule("intent", _binding("intent", SR_INTENTS), SRC_SR),
            Rule("code", _card("code", 1, 1), SRC_SR),
            Rule("subject", _card("subject", 1, 1), SRC_SR),
            Rule("subject", _targets("subject", ("Patient", "Group", "Location")), SRC_SR),
            Rule(
                "extension:pertainsToGoal",
                _extension_targets(PERTAINS_TO_GOAL, ("Goal",)),
                SRC_SR,
            ),
            Rule("supportingInfo", _no_goal_in_supporting_info, SRC_SR),
            Rule("occurrence[x]", _occurrence_type, SRC_SR),
            Rule(
                "orderDetail",
                _pattern(
                    "orderDetail",
                    t.Code(t.SDOHCC_TEMPORARY_CODES, "contacting-subject-prohibited"),
                    required=False,
                ),
                SRC_SR,
            ),
            Rule(
                "requester",
                _targets(
                    "requester",
                    (
                        "RelatedPerson",
                        "Device",
                        "PractitionerRole",
                        "Practitioner",
                        "Patient",
                        "Organization",
                    ),
                ),
                SRC_SR,
            ),
            Rule(
                "performer",
                _targets(
                    "performer",
                    (
                        "HealthcareService",
                        "Device",
                        "RelatedPerson",
                        "Patient",
                        "Practitioner",
                        "PractitionerRole",
                        "Organization",
                        "CareTeam",
                    ),
                ),
                SRC_SR,
            ),
            Rule("specimen", _card("specimen", 0, 0), SRC_SR),
            Rule("bodySite", _card("bodySite", 0, 0), SRC_SR),
        ],
    ),
    SDOHCC_GOAL: (
        "Goal",
        [
            Rule("lifecycleStatus", _card("lifecycleStatus", 1, 1), SRC_GOAL),
            Rule("lifecycleStatus", _binding("lifecycleStatus", GOAL_LIFECYCLE), SRC_GOAL),
            Rule("description", _card("description", 1, 1), SRC_GOAL),
            Rule("subject", _card("subject", 1, 1), SRC_GOAL),
            Rule("subject", _targets("subject", PATIENT), SRC_GOAL),
            Rule(
                "addresses",
                _targets("addresses", ("Condition", "Observation", "RiskAssessment")),
                SRC_GOAL,
            ),
        ],
    ),
    SDOHCC_CONDITION: (
        "Condition",
        [
            Rule("category", _card("category", 2), SRC_CONDITION),
            Rule(
                "category:screening-assessment",
                _contains("category", t.CONDITION_SDOH),
                SRC_CONDITION,
            ),
            Rule("code", _card("code", 1), SRC_CONDITION),
            Rule("subject", _card("subject", 1, 1), SRC_CONDITION),
            Rule("subject", _targets("subject", PATIENT), SRC_CONDITION),
            Rule(
                "clinicalStatus",
                _system_binding("clinicalStatus", (t.CONDITION_CLINICAL_SYSTEM,)),
                SRC_CONDITION,
            ),
            Rule(
                "verificationStatus",
                _system_binding("verificationStatus", (t.CONDITION_VER_STATUS_SYSTEM,)),
                SRC_CONDITION,
            ),
            Rule("bodySite", _card("bodySite", 0, 0), SRC_CONDITION),
        ],
    ),
    SDOHCC_PRACTITIONER_ROLE: (
        "PractitionerRole",
        [
            Rule("practitioner", _card("practitioner", 1, 1), SRC_PRACTITIONER_ROLE),
            Rule(
                "practitioner", _targets("practitioner", ("Practitioner",)), SRC_PRACTITIONER_ROLE
            ),
            Rule("organization", _card("organization", 1, 1), SRC_PRACTITIONER_ROLE),
            Rule(
                "organization", _targets("organization", ("Organization",)), SRC_PRACTITIONER_ROLE
            ),
            Rule("telecom|endpoint (pd-1)", _telecom_or_endpoint, SRC_US_CORE_ROLE),
        ],
    ),
    SDOHCC_CONSENT: (
        "Consent",
        [
            Rule("status", _card("status", 1, 1), SRC_CONSENT),
            Rule("status", _binding("status", CONSENT_STATES), SRC_R4_CONSENT),
            Rule("scope", _card("scope", 1, 1), SRC_CONSENT),
            Rule("category", _card("category", 1), SRC_CONSENT),
            Rule("category:IDSCL", _contains("category", t.CONSENT_CATEGORY_IDSCL), SRC_CONSENT),
            Rule("patient", _card("patient", 1, 1), SRC_CONSENT),
            Rule("patient", _targets("patient", PATIENT), SRC_CONSENT),
            Rule("dateTime", _card("dateTime", 1, 1), SRC_CONSENT),
            Rule(
                "performer",
                _targets(
                    "performer",
                    (
                        "Organization",
                        "RelatedPerson",
                        "Practitioner",
                        "PractitionerRole",
                        "Patient",
                    ),
                ),
                SRC_CONSENT,
            ),
            Rule("organization", _card("organization", 1, 1), SRC_CONSENT),
            Rule("organization", _targets("organization", ("Organization",)), SRC_CONSENT),
            Rule("source[x]", _consent_source, SRC_CONSENT),
            Rule("policy|policyRule (ppc-1)", _policy_or_rule, SRC_R4_CONSENT),
        ],
    ),
    US_CORE_CARE_TEAM: (
        "CareTeam",
        [
            Rule("status", _binding("status", CARE_TEAM_STATUSES), SRC_CARE_TEAM),
            Rule("subject", _card("subject", 1, 1), SRC_CARE_TEAM),
            Rule("subject", _targets("subject", ("Patient", "Group")), SRC_CARE_TEAM),
            Rule("participant", _card("participant", 1), SRC_CARE_TEAM),
            Rule("participant.role", _card("participant.role", 1, 1), SRC_CARE_TEAM),
            Rule("participant.member", _card("participant.member", 1, 1), SRC_CARE_TEAM),
            Rule(
                "participant.member",
                _targets(
                    "participant.member",
                    (
                        "Practitioner",
                        "Organization",
                        "Patient",
                        "PractitionerRole",
                        "CareTeam",
                        "RelatedPerson",
                    ),
                ),
                SRC_CARE_TEAM,
            ),
        ],
    ),
    US_CORE_CARE_PLAN: (
        "CarePlan",
        [
            Rule("text", _card("text", 1, 1), SRC_CARE_PLAN),
            Rule("text.status", _binding("text.status", NARRATIVE_STATUSES), SRC_CARE_PLAN),
            Rule("text.div", _card("text.div", 1, 1), SRC_CARE_PLAN),
            Rule("status", _card("status", 1, 1), SRC_CARE_PLAN),
            Rule("status", _binding("status", REQUEST_STATUSES), SRC_CARE_PLAN),
            Rule("intent", _binding("intent", CARE_PLAN_INTENTS), SRC_CARE_PLAN),
            Rule("category", _careplan_assess_plan, SRC_CARE_PLAN),
            Rule("subject", _card("subject", 1, 1), SRC_CARE_PLAN),
            Rule("subject", _targets("subject", ("Patient", "Group")), SRC_CARE_PLAN),
            Rule("careTeam", _targets("careTeam", ("CareTeam",)), SRC_CARE_PLAN),
        ],
    ),
}

_SURVEY = t.Code("http://terminology.hl7.org/CodeSystem/observation-category", "survey")
_SDOH_CATEGORY = t.Code(t.US_CORE_CATEGORY_SYSTEM, "sdoh")


def _effective(res: Mapping[str, Any]) -> str | None:
    # SDOHCC: effective[x] 1.. only dateTime or Period
    found = [k for k in res if k.startswith("effective")]
    if not found:
        return "needs effectiveDateTime or effectivePeriod"
    ok = all(k in ("effectiveDateTime", "effectivePeriod") for k in found)
    return None if ok else f"{found[0]}: effective[x] only dateTime or Period"


RULES[SDOHCC_OBSERVATION_SCREENING_RESPONSE] = (
    "Observation",
    [
        Rule("status", _binding("status", SCREENING_RESPONSE_STATUSES), SRC_SCREENING_STATUS),
        Rule("category", _card("category", 2), SRC_SCREENING_RESPONSE),
        Rule("category:survey", _contains("category", _SURVEY), SRC_SCREENING_ASSESSMENT),
        Rule(
            "category:screening-assessment",
            _contains("category", _SDOH_CATEGORY),
            SRC_SCREENING_RESPONSE,
        ),
        Rule("code", _card("code", 1, 1), SRC_SCREENING_RESPONSE),
        Rule("code", _system_binding("code", (t.LOINC,)), SRC_SCREENING_RESPONSE),
        Rule("subject", _card("subject", 1, 1), SRC_SCREENING_RESPONSE),
        Rule("subject", _targets("subject", PATIENT), SRC_SCREENING_RESPONSE),
        Rule("effective[x]", _effective, SRC_SCREENING_RESPONSE),
    ],
)
RULES[US_CORE_OBSERVATION_SCREENING_ASSESSMENT] = (
    "Observation",
    [
        Rule("status", _binding("status", OBSERVATION_STATUSES), SRC_SCREENING_ASSESSMENT),
        Rule("category:survey", _contains("category", _SURVEY), SRC_SCREENING_ASSESSMENT),
        Rule("code", _card("code", 1, 1), SRC_SCREENING_ASSESSMENT),
        Rule("subject", _card("subject", 1, 1), SRC_SCREENING_ASSESSMENT),
        Rule(
            "subject",
            _targets("subject", ("Patient", "Group", "Location", "Device")),
            SRC_SCREENING_ASSESSMENT,
        ),
    ],
)

# Profiles of what community organisations write, checked where a resource claims them (the
# conformance suite, tests), never claimed by carecoord.
READ_PROFILES: tuple[str, ...] = (SDOHCC_OBSERVATION_ENROLLMENT, SDOHCC_HEALTHCARE_SERVICE_REFERRAL)
CLAIMED_PROFILES: tuple[str, ...] = tuple(p for p in RULES if p not in READ_PROFILES)

# Which profile each kind of resource carecoord writes claims (by its business identifier kind).
PROFILE_OF_KIND: dict[str, str] = {
    "referral-task": SDOHCC_TASK_FOR_REFERRAL,
    "referral": SDOHCC_SERVICE_REQUEST,
    "sdoh-goal": SDOHCC_GOAL,
    "sdoh-condition": SDOHCC_CONDITION,
    "practitioner-role": SDOHCC_PRACTITIONER_ROLE,
    "sdoh-consent": SDOHCC_CONSENT,
    "care-team": US_CORE_CARE_TEAM,
    "care-plan": US_CORE_CARE_PLAN,
}


# The version of the SDOHCC StructureDefinitions: the IG's (sushi-config.yaml `version: 3.0.0`
# at 6604b7a). A claim `url|3.0.0` says which release the resource follows (FHIR canonical
# references: a `|version` suffix pins the StructureDefinition.version).
SDOHCC_VERSION = "3.0.0"


def versioned(profile: str) -> str:
    """`profile` as carecoord claims it: SDOHCC profiles with `|3.0.0`, others as they are."""
    url = profile.split("|")[0]
    return f"{url}|{SDOHCC_VERSION}" if url.startswith(SDOHCC_BASE) else url


def meta_profile(profile: str) -> dict[str, list[str]]:
    """The `meta` element declaring `profile` (versioned: `versioned`)."""
    return {"profile": [versioned(profile)]}


def claimed(resource: Mapping[str, Any]) -> list[str]:
    return [str(p).split("|")[0] for p in (resource.get("meta") or {}).get("profile") or []]


def check(resource: Mapping[str, Any], profiles: Sequence[str] | None = None) -> list[Violation]:
    """Violations of `profiles` (default: every profile the resource claims that carecoord
    knows), plus a violation for a carecoord resource that does not claim its profile."""
    out: list[Violation] = []
    wanted = list(profiles) if profiles is not None else claimed(resource)
    expected = _expected_profile(resource)
    if profiles is None and expected and expected not in wanted:
        out.append(
            Violation(
                expected, "meta.profile", "carecoord writes this kind to conform", "carecoord"
            )
        )
        wanted.append(expected)
    for profile in wanted:
        if profile not in RULES:
            continue
        rtype, rules = RULES[profile]
        if resource.get("resourceType") != rtype:
            out.append(Violation(profile, "resourceType", f"must be {rtype}", rules[0].source))
            continue
        for rule in rules:
            problem = rule.check(resource)
            if problem:
                out.append(Violation(profile, rule.path, problem, rule.source))
    for contained in resource.get("contained") or []:
        if isinstance(contained, Mapping) and contained.get("resourceType") == "CareTeam":
            out.append(
                Violation(
                    US_CORE_CARE_TEAM,
                    "contained",
                    "the CareTeam must be a standalone resource (CareTeam?patient= finds it)",
                    SRC_CARE_TEAM,
                )
            )
    return out


def _expected_profile(resource: Mapping[str, Any]) -> str | None:
    for ident in resource.get("identifier") or []:
        system = str(ident.get("system", ""))
        if system.startswith(t.IDENTIFIER_SYSTEM_BASE):
            return PROFILE_OF_KIND.get(system.removeprefix(t.IDENTIFIER_SYSTEM_BASE))
    return None
