"""A finished Encounter from the EHR becomes carecoord.patient.discharged only when it is a
discharge TCM covers: to the community, from an inpatient, observation or SNF stay."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.core.catalog import PatientDischarged
from carecoord.errors import ConfigError
from carecoord.fhir.notification_bundles import Changed
from carecoord.handlers.notifications.encounters import (
    ACT_CODE,
    DISPOSITION,
    ROLE_CODE,
    DischargeMapping,
    encounter_events,
)
from carecoord.handlers.notifications.questionnaire_responses import (
    questionnaire_response_events,
)


def encounter(klass: str = "IMP", disposition: str = "home", **extra: Any) -> Changed:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e1",
        "meta": {"versionId": "2"},
        "status": "finished",
        "class": {"system": ACT_CODE, "code": klass},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-12-01T08:00:00Z", "end": "2026-12-04T15:30:00Z"},
        "serviceProvider": {"reference": "Organization/springfield-general"},
        "hospitalization": {
            "dischargeDisposition": {"coding": [{"system": DISPOSITION, "code": disposition}]}
        },
        **extra,
    }
    return Changed(resource, "Encounter", "e1", "2")


def test_an_inpatient_discharge_home_is_a_tcm_discharge() -> None:
    (event,) = encounter_events(encounter())
    assert event.type == "carecoord.patient.discharged"
    assert event.subject == "Patient/p1"
    assert event.id == "fhir-notification:Encounter/e1/discharged"
    data = PatientDischarged.model_validate(event.data)
    assert (data.setting, data.facility, data.complexity) == (
        "inpatient",
        "Organization/springfield-general",
        "moderate",
    )
    assert data.discharged_at.isoformat() == "2026-12-04T15:30:00+00:00"


@pytest.mark.parametrize("disposition", ["exp", "other-hcf", "hosp", "snf", "rehab", "psy"])
def test_a_death_or_a_transfer_to_another_facility_starts_no_tcm(disposition: str) -> None:
    assert encounter_events(encounter(disposition=disposition)) == []


def test_an_observation_stay_and_an_snf_stay_are_their_settings() -> None:
    (obs,) = encounter_events(encounter("OBSENC", "alt-home"))
    assert obs.data["setting"] == "observation"
    snf_type = [{"coding": [{"system": ROLE_CODE, "code": "SNF"}]}]
    (snf,) = encounter_events(encounter("NONAC", type=snf_type))
    assert snf.data["setting"] == "snf"
    # A non-acute inpatient stay that is not marked SNF is not a setting carecoord can name.
    assert encounter_events(encounter("NONAC")) == []


def test_an_unfinished_or_ambulatory_encounter_is_no_discharge() -> None:
    unfinished = encounter()
    resource = {**unfinished.resource, "status": "in-progress"}
    assert encounter_events(Changed(resource, "Encounter", "e1", "2")) == []
    assert encounter_events(encounter("AMB")) == []
    no_disposition = {**encounter().resource, "hospitalization": {}}
    assert encounter_events(Changed(no_disposition, "Encounter", "e1", "2")) == []


def test_the_mapping_is_configurable_and_a_bad_one_is_a_config_error() -> None:
    mapping = DischargeMapping.from_setting(
        {"tcm_dispositions": [f"{DISPOSITION}|aadvice"], "complexity": "high"}
    )
    (event,) = encounter_events(encounter(disposition="aadvice"), mapping)
    assert event.data["complexity"] == "high"
    assert encounter_events(encounter(), mapping) == []  # home no longer listed
    with pytest.raises(ConfigError, match=r"CARECOORD_DISCHARGE_MAPPING.*complexity"):
        DischargeMapping.from_setting({"complexity": "extreme"})
    with pytest.raises(ConfigError, match="classes"):
        DischargeMapping.from_setting({"classes": {f"{ACT_CODE}|IMP": "ward"}})


def test_a_completed_questionnaire_response_is_an_assessment_with_only_its_reference() -> None:
    qr = {
        "resourceType": "QuestionnaireResponse",
        "id": "q1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2026-12-04T10:00:00Z",
        "item": [{"linkId": "1", "answer": [{"valueString": "free text"}]}],
    }
    (event,) = questionnaire_response_events(Changed(qr, "QuestionnaireResponse", "q1", "1"))
    assert event.type == "carecoord.assessment.completed"
    assert event.data == {"questionnaire_response": "QuestionnaireResponse/q1"}
    assert event.subject == "Patient/p1"
    in_progress = {**qr, "status": "in-progress"}
    assert (
        questionnaire_response_events(Changed(in_progress, "QuestionnaireResponse", "q1", "1"))
        == []
    )
    no_patient = {**qr, "subject": {"reference": "Group/g"}}
    assert (
        questionnaire_response_events(Changed(no_patient, "QuestionnaireResponse", "q1", "1")) == []
    )
