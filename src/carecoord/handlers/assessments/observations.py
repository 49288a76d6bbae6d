"""The Observations of a scored QuestionnaireResponse, one per Finding.

Profiles: SDOH instruments (Hunger Vital Sign, AHC HRSN) -> SDOHCC Observation Screening Response
(HL7/fhir-sdoh-clinicalcare input/fsh/profiles/SDOHCCObservationScreeningResponse.fsh: category
survey + US Core sdoh + the SDOHCC domain, code LOINC, derivedFrom the response, interpretation
POS on a possible need, as its SDOHCC-ObservationResponseHungerVitalSignQuestion3Example); PHQ-9
and GAD-7 -> US Core Observation Screening Assessment (HL7/US-Core
StructureDefinition-us-core-observation-screening-assessment; totals as a {score} Quantity);
the check-in (carecoord codes, outside US Core's survey codes) carries no profile.

Identifier: assessment-observation | response id : response version : code (: answer code for an
item with several answers), so each response version is written once, however often its event
is delivered.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from fhir.resources.R4B.observation import Observation

from carecoord.caremodel import profiles as p
from carecoord.caremodel import terminology as t
from carecoord.caremodel._build import finish, identifiers, instant, ref
from carecoord.caremodel.instruments import AHC_HRSN, CHECK_IN, HVS, Assessment, Finding
from carecoord.fhir.models import DEFAULT_VERSION

KIND = "assessment-observation"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SDOHCC_SCREENING_RESPONSE = p.SDOHCC_OBSERVATION_SCREENING_RESPONSE
US_CORE_SCREENING_ASSESSMENT = p.US_CORE_OBSERVATION_SCREENING_ASSESSMENT
_SDOH = (HVS, AHC_HRSN)


def observations(
    assessment: Assessment,
    *,
    patient: str,
    response: str,
    version: str,
    effective: datetime,
) -> list[Observation]:
    """One Observation per finding of `assessment`, derivedFrom `response`."""
    counts = Counter(f.code for f in assessment.findings)
    repeated = {code for code, n in counts.items() if n > 1}  # an item with several answers
    return [
        _observation(assessment.instrument.key, f, patient, response, version, effective, repeated)
        for f in assessment.findings
    ]


def _observation(
    instrument: str,
    finding: Finding,
    patient: str,
    response: str,
    version: str,
    effective: datetime,
    repeated: set[str],
) -> Observation:
    response_id = response.rsplit("/", 1)[-1]
    parts = [response_id, version, finding.code]
    if finding.code in repeated and finding.answer is not None:
        parts.append(finding.answer.code)
    sdoh = instrument in _SDOH
    category = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}]
    if sdoh:
        category.append({"coding": [{"system": t.US_CORE_CATEGORY_SYSTEM, "code": "sdoh"}]})
        category += [
            {"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": c}]}
            for c in finding.categories
        ]
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": identifiers(KIND, *parts),
        "status": "final",
        "category": category,
        "code": {
            "coding": [{"system": finding.system, "code": finding.code, "display": finding.display}]
        },
        "subject": ref(patient, expect="Patient"),
        "effectiveDateTime": instant(effective),
        "derivedFrom": [ref(response, expect="QuestionnaireResponse")],
    }
    if instrument != CHECK_IN:
        profile = SDOHCC_SCREENING_RESPONSE if sdoh else US_CORE_SCREENING_ASSESSMENT
        data["meta"] = p.meta_profile(profile)
    if finding.answer is not None:
        a = finding.answer
        data["valueCodeableConcept"] = {
            "coding": [{"system": a.system, "code": a.code, "display": a.display}]
        }
    elif finding.value is not None:
        data["valueQuantity"] = {
            "value": finding.value,
            "unit": "{score}",
            "system": t.UCUM,
            "code": "{score}",
        }
    interpretation: dict[str, Any] = {}
    if finding.positive:
        interpretation["coding"] = [
            {"system": INTERPRETATION, "code": "POS", "display": "Positive"}
        ]
    if finding.band:
        interpretation["text"] = finding.band
    if interpretation:
        data["interpretation"] = [interpretation]
    return finish(Observation, data, DEFAULT_VERSION)
