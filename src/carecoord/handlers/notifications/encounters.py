"""A finished hospital, observation or SNF Encounter -> `carecoord.patient.discharged`, so the
TCM handler (carecoord.handlers.programs.tcm) starts from the EHR's own data, without a
hand-written producer. Reached by a notification of the Encounter or by the reconciling poller.

Which Encounter is a discharge, and what its event says (docs/ehr-events.md; every token is
`system|code`, configurable with CARECOORD_DISCHARGE_MAPPING):
- `status` is `finished` and `hospitalization.dischargeDisposition` is coded;
- `class` (a Coding in R4; US Core binds it to v3 ActEncounterCode, system
  http://terminology.hl7.org/CodeSystem/v3-ActCode) gives the setting: IMP and ACUTE -> inpatient,
  OBSENC -> observation. HL7 has no SNF encounter class: an SNF stay is an inpatient-class (IMP,
  ACUTE or NONAC) Encounter whose `type` or `serviceType` carries the v3 RoleCode SNF
  ("Skilled nursing facility", http://terminology.hl7.org/CodeSystem/v3-RoleCode, the code set
  US Core's Location.type binds) -> snf;
- TCM is for a discharge to the community (CMS MLN "Transitional Care Management Services":
  inpatient, observation, partial hospitalization or SNF stay, then "the patient's community
  setting, such as home, domiciliary, rest home, or assisted living"). So only the dispositions in
  `tcm_dispositions` make an event, by default `home` and `alt-home` of
  http://terminology.hl7.org/CodeSystem/discharge-disposition. `exp` (expired), `other-hcf`
  (another healthcare facility: an acute transfer), `hosp` (hospice), `snf`, `rehab`, `psy`,
  `long` make none: the TCM episode starts when the last facility sends the patient home;
- `discharged_at` is `period.end`, `facility` the `serviceProvider` reference (else the first
  `location`), `complexity` the configured default (`moderate`: the medical decision making is
  a clinician's call, and 99496 must not be billed on a guess).

The event's id is per Encounter (`fhir-notification:Encounter/<id>/discharged`), not per version:
a later correction of the same Encounter is the same discharge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carecoord.core.catalog import DischargeSetting, PatientDischarged
from carecoord.core.envelope import CloudEvent
from carecoord.errors import ConfigError
from carecoord.fhir.notification_bundles import Changed, parse_reference
from carecoord.handlers.notifications.common import ID_PREFIX, SOURCE

log = logging.getLogger(__name__)

PATIENT_DISCHARGED = PatientDischarged.event_type
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"


_CLASSES: dict[str, DischargeSetting] = {
    f"{ACT_CODE}|IMP": "inpatient",
    f"{ACT_CODE}|ACUTE": "inpatient",
    f"{ACT_CODE}|OBSENC": "observation",
}


class DischargeMapping(BaseModel):
    """How a finished Encounter maps to `carecoord.patient.discharged` (tokens: system|code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: dict[str, DischargeSetting] = Field(default_factory=lambda: dict(_CLASSES))
    snf_classes: list[str] = Field(
        default_factory=lambda: [f"{ACT_CODE}|IMP", f"{ACT_CODE}|ACUTE", f"{ACT_CODE}|NONAC"]
    )
    snf_types: list[str] = Field(default_factory=lambda: [f"{ROLE_CODE}|SNF"])
    tcm_dispositions: list[str] = Field(
        default_factory=lambda: [f"{DISPOSITION}|home", f"{DISPOSITION}|alt-home"]
    )
    complexity: Literal["moderate", "high"] = "moderate"

    @classmethod
    def from_setting(cls, value: Mapping[str, Any]) -> DischargeMapping:
        """The mapping of CARECOORD_DISCHARGE_MAPPING (keys override the defaults)."""
        try:
            return cls.model_validate(dict(value))
        except ValidationError as exc:
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise ConfigError(
                f"CARECOORD_DISCHARGE_MAPPING is not valid at {where}: use a JSON object with "
                "classes, snf_classes, snf_types, tcm_dispositions (system|code tokens) and "
                "complexity (moderate or high), see docs/ehr-events.md"
            ) from exc


DEFAULT_MAPPING = DischargeMapping()


def discharge_setting(
    encounter: Mapping[str, Any], mapping: DischargeMapping
) -> DischargeSetting | None:
    """The setting the patient was discharged from, None when the class is not followed."""
    klass = _tokens([encounter.get("class")])
    snf = _tokens(_codings(encounter.get("type")) + _codings(encounter.get("serviceType")))
    if klass & set(mapping.snf_classes) and snf & set(mapping.snf_types):
        return "snf"
    for token in klass:
        if token in mapping.classes:
            return mapping.classes[token]
    return None


def encounter_events(
    changed: Changed, mapping: DischargeMapping = DEFAULT_MAPPING
) -> list[CloudEvent]:
    """carecoord.patient.discharged for a finished Encounter that is a TCM discharge."""
    enc = changed.resource
    if enc.get("status") != "finished":
        return []
    setting = discharge_setting(enc, mapping)
    hospitalization = enc.get("hospitalization")
    disposition = (
        _tokens(_codings(hospitalization.get("dischargeDisposition")))
        if isinstance(hospitalization, Mapping)
        else set()
    )
    if setting is None or not disposition & set(mapping.tcm_dispositions):
        log.debug("Encounter is not a TCM discharge", extra={"resource": changed.reference})
        return []
    patient = _reference_id(enc.get("subject"), "Patient")
    period = enc.get("period")
    end = period.get("end") if isinstance(period, Mapping) else None
    facility = _facility(enc)
    if patient is None or not isinstance(end, str) or facility is None:
        log.warning(
            "discharge Encounter lacks subject, period.end or facility: no TCM",
            extra={"resource": changed.reference},
        )
        return []
    try:
        discharged_at = datetime.fromisoformat(end)
    except ValueError:
        log.warning("discharge Encounter's period.end is not a date-time",
                    extra={"resource": changed.reference})  # fmt: skip
        return []
    data = PatientDischarged(
        discharged_at=discharged_at,
        facility=facility,
        setting=setting,
        complexity=mapping.complexity,
    )
    return [
        CloudEvent(
            id=f"{ID_PREFIX}{changed.reference}/discharged",
            source=SOURCE,
            type=PATIENT_DISCHARGED,
            time=discharged_at,
            subject=f"Patient/{patient}",
            data=data.model_dump(mode="json", exclude_none=True),
        )
    ]


def _facility(enc: Mapping[str, Any]) -> str | None:
    provider = enc.get("serviceProvider")
    ref = provider.get("reference") if isinstance(provider, Mapping) else None
    if isinstance(ref, str) and ref:
        return ref
    for loc in enc.get("location") or []:
        where = loc.get("location") if isinstance(loc, Mapping) else None
        ref = where.get("reference") if isinstance(where, Mapping) else None
        if isinstance(ref, str) and ref:
            return ref
    return None


def _reference_id(value: Any, resource_type: str) -> str | None:
    ref = value.get("reference") if isinstance(value, Mapping) else None
    parsed = parse_reference(ref) if isinstance(ref, str) else None
    return parsed[1] if parsed and parsed[0] == resource_type else None


def _codings(value: Any) -> list[Any]:
    """Codings of a CodeableConcept or a list of them."""
    concepts = value if isinstance(value, list) else [value]
    return [
        c
        for concept in concepts
        if isinstance(concept, Mapping)
        for c in concept.get("coding") or []
    ]


def _tokens(codings: Iterable[Any]) -> set[str]:
    return {
        f"{c.get('system')}|{c.get('code')}"
        for c in codings
        if isinstance(c, Mapping) and isinstance(c.get("code"), str)
    }


__all__ = [
    "DEFAULT_MAPPING",
    "PATIENT_DISCHARGED",
    "DischargeMapping",
    "discharge_setting",
    "encounter_events",
]
