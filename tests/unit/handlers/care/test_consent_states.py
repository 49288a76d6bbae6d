"""Program consent read back (carecoord.handlers.programs.consent): which Consents and CarePlans are
carecoord's, a consent's span, and each program's state (latest plan, consent, end, team)."""

from __future__ import annotations

from datetime import date
from typing import Any

from carecoord.caremodel import terminology as t
from carecoord.handlers.care.enrolment_state import (
    CONSENT_ID,
    carecoord_consents,
    carecoord_plans,
    consent_span,
    program_of_consent,
    states_of,
)
from carecoord.handlers.care.model import CARE_PLAN_ID, build
from carecoord.handlers.programs.consent import consent_resource

CM, DOC = "Practitioner/cm1", "Practitioner/doc"


def consent(
    program: str = "CCM",
    day: date = date(2024, 5, 3),
    *,
    status: str = "active",
    ends: str | None = None,
    patient: str = "p1",
    cid: str | None = None,
) -> Any:
    body = consent_resource(
        patient_id=patient, program=program, day=day, method="verbal", recorded_by=CM
    ).model_dump(mode="json")
    body.update(id=cid or f"consent-{program}-{status}", status=status)
    if ends is not None:
        body["provision"]["period"]["end"] = ends
    return build("Consent", body)


def plan(
    program: str,
    start: str,
    *,
    pid: str = "p1",
    status: str = "active",
    end: str | None = None,
    manager: str | None = CM,
    conditions: tuple[str, ...] = (),
    identified: bool = True,
) -> Any:
    participants = [
        {"role": [t.ROLE_PRIMARY_CARE_PHYSICIAN.concept_json()], "member": {"reference": DOC}}
    ]
    if manager is not None:
        participants.append(
            {"role": [t.ROLE_CARE_COORDINATOR.concept_json()], "member": {"reference": manager}}
        )
    body: dict[str, Any] = {
        "id": f"plan-{program}-{start}",
        "status": status,
        "intent": "plan",
        "subject": {"reference": f"Patient/{pid}"},
        "category": [t.PROGRAMS[program].concept_json()],
        "period": {"start": start, **({"end": end} if end else {})},
        "contained": [{"resourceType": "CareTeam", "id": "team", "participant": participants}],
        "careTeam": [{"reference": "#team"}],
        "addresses": [{"reference": c} for c in conditions],
    }
    if identified:
        body["identifier"] = [{"system": CARE_PLAN_ID, "value": f"{pid}:{program}:{start}"}]
    return build("CarePlan", body)


def test_program_of_a_consent_is_its_care_program_category() -> None:
    assert program_of_consent(consent("BHI")) == "BHI"
    assert (
        program_of_consent(
            build(
                "Consent",
                {
                    **consent().model_dump(mode="json"),
                    "category": [t.CONSENT_PATIENT_CONSENT.concept_json()],
                },
            )
        )
        is None
    )


def test_carecoords_consents_of_the_patient_active_or_inactive() -> None:
    other = build("Consent", {**consent().model_dump(mode="json"), "identifier": [], "id": "x"})
    found = [
        consent(cid="a"),
        consent(status="inactive", cid="i"),
        consent(status="entered-in-error", cid="e"),
        consent(status="proposed", cid="p"),
        consent(patient="p2", cid="p2"),
        other,
        plan("CCM", "2024-05-03"),
    ]
    assert [c.id for c in carecoord_consents(found, "p1")] == ["a", "i"]
    assert CONSENT_ID in found[0].identifier[0].system


def test_carecoords_plans_of_the_patient_whatever_their_status_but_entered_in_error() -> None:
    found = [
        plan("CCM", "2024-05-03"),
        plan("CCM", "2024-01-03", status="revoked"),
        plan("BHI", "2024-05-03", status="entered-in-error"),
        plan("PCM", "2024-05-03", pid="p2"),
        plan("RPM", "2024-05-03", identified=False),
        consent(),
    ]
    assert [p.id for p in carecoord_plans(found, "p1")] == [
        "plan-CCM-2024-05-03",
        "plan-CCM-2024-01-03",
    ]


def test_a_consents_span_is_its_date_until_its_provision_ends() -> None:
    assert consent_span(consent()) == (date(2024, 5, 3), None)
    assert consent_span(consent(ends="2024-06-30")) == (date(2024, 5, 3), date(2024, 6, 30))
    bare = build("Consent", {**consent().model_dump(mode="json"), "provision": None})
    assert consent_span(bare) == (date(2024, 5, 3), None)


def test_each_program_takes_its_latest_started_plan_and_its_consent() -> None:
    plans = [
        plan("CCM", "2024-01-02", status="revoked", end="2024-02-29", manager="Practitioner/old"),
        plan("CCM", "2024-05-03", conditions=("Condition/c1", "Condition/c2")),
        plan("CCM", "2024-03-01", status="revoked"),
        plan("BHI", "2024-05-04", manager=None),
    ]
    states = states_of(plans, [consent("CCM"), consent("BHI", date(2024, 5, 4))])
    assert set(states) == {"CCM", "BHI"}
    ccm = states["CCM"]
    assert ccm.plan.id == "plan-CCM-2024-05-03" and ccm.program == "CCM"
    assert ccm.consent.id == "consent-CCM-active" and ccm.consent_from == date(2024, 5, 3)
    assert ccm.ends is None
    assert ccm.conditions == ("Condition/c1", "Condition/c2")
    assert (ccm.care_manager, ccm.provider) == (CM, DOC)
    bhi = states["BHI"]
    assert (bhi.care_manager, bhi.provider, bhi.conditions) == (None, DOC, ())


def undated(program: str, pid: str = "p1", *, period: bool = True) -> Any:
    body = plan(program, "2024-05-03").model_dump(mode="json", exclude_none=True)
    body["id"] = f"undated-{program}"
    body["period"] = {"end": "2024-12-31"}
    if not period:
        del body["period"]
    return build("CarePlan", body)


def test_a_dated_plan_wins_over_one_without_a_start() -> None:
    dated = plan("CCM", "2024-05-03")
    for plans in (
        [undated("CCM"), dated],
        [dated, undated("CCM")],
        [undated("CCM", period=False), dated],
        [dated, undated("CCM", period=False)],
    ):
        assert states_of(plans, [])["CCM"].plan.id == "plan-CCM-2024-05-03"
    assert states_of([undated("CCM", period=False)], [])["CCM"].ends is None


def test_of_two_plans_started_the_same_day_the_first_listed_stays() -> None:
    first = plan("CCM", "2024-05-03")
    second = build("CarePlan", {**first.model_dump(mode="json", exclude_none=True), "id": "second"})
    assert states_of([first, second], [])["CCM"].plan.id == "plan-CCM-2024-05-03"


def test_a_program_ends_at_the_earlier_of_its_plan_and_its_consent() -> None:
    plans = [plan("CCM", "2024-05-03", end="2024-07-31")]
    assert states_of(plans, [consent(ends="2024-06-30")])["CCM"].ends == date(2024, 6, 30)
    assert states_of(plans, [consent(ends="2024-08-31")])["CCM"].ends == date(2024, 7, 31)
    assert states_of(plans, [consent()])["CCM"].ends == date(2024, 7, 31)
    open_plan = [plan("CCM", "2024-05-03")]
    assert states_of(open_plan, [consent(ends="2024-06-30")])["CCM"].ends == date(2024, 6, 30)


def test_a_consent_without_a_plan_is_a_state_too() -> None:
    states = states_of([], [consent("PCM")])
    pcm = states["PCM"]
    assert pcm.plan is None and pcm.consent_from == date(2024, 5, 3)
    assert (pcm.ends, pcm.conditions, pcm.care_manager, pcm.provider) == (None, (), None, None)
    plain = build(
        "Consent",
        {
            **consent().model_dump(mode="json"),
            "category": [t.CONSENT_PATIENT_CONSENT.concept_json()],
        },
    )
    assert states_of([], [plain]) == {}


def test_a_plan_without_consent_or_program() -> None:
    no_program = build(
        "CarePlan", {**plan("CCM", "2024-05-03").model_dump(mode="json"), "category": []}
    )
    states = states_of([no_program, plan("RPM", "2024-05-03")], [])
    assert set(states) == {"RPM"}
    rpm = states["RPM"]
    assert rpm.consent is None and rpm.consent_from is None and rpm.ends is None
