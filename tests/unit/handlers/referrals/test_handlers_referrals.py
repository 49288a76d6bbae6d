"""The referral loop on an in-memory FHIR store loaded with the sample HSDS directory."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Sequence
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.core.effects import Effects, FhirWrite
from carecoord.directory.hsds import import_directory
from carecoord.errors import HandlerError
from carecoord.handlers.referrals.handler import HANDLERS, attempt_of, step_after
from support.handler_context import FakeFhir, care_team, ctx, event
from support.paths import ROOT

SAMPLE = ROOT / "examples" / "directory" / "springfield-hsds.json"
handle = HANDLERS[0].handle
CM, DR = "Practitioner/cm-1", "Practitioner/dr-1"
PRACTICE = "Organization/practice"
CONFIG = {"organization": PRACTICE, "practice_phone": "+1 217 555 0100"}


class _Writer:
    def __init__(self, fake: FakeFhir) -> None:
        self.fake = fake

    def search(self, resource_type: str, params: Any) -> list[Any]:
        return self.fake.search(resource_type, params)

    def apply(self, writes: Sequence[FhirWrite]) -> None:
        self.fake.apply(Effects(writes=list(writes)))


@functools.cache
def _directory() -> dict[tuple[str, str], dict[str, Any]]:
    fake = FakeFhir()
    report = import_directory(_Writer(fake), json.loads(SAMPLE.read_text()))
    assert report.problems == []
    return fake.store


def with_directory(fake: FakeFhir) -> FakeFhir:
    """`fake` holding the sample directory (imported once, copied per test)."""
    fake.store.update(copy.deepcopy(_directory()))
    return fake


@pytest.fixture
def fhir() -> FakeFhir:
    fake = with_directory(FakeFhir())
    care_team(fake, "p1", CM, DR)
    return fake


def need(**data: Any) -> Any:
    body = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    return event("carecoord.sdoh.need-identified", "p1", {**body, **data})


def run(fhir: FakeFhir, ev: Any) -> Effects:
    fx = handle(ev, ctx(fhir, CONFIG))
    fhir.apply(fx)
    return fx


WRITTEN_TYPES = (
    "Condition", "Goal", "ServiceRequest", "Task", "PractitionerRole", "CarePlan", "Consent",
)  # fmt: skip


def conformance(fhir: FakeFhir) -> list[str]:
    """Violations of the profiles carecoord claims, over everything the handler wrote."""
    from carecoord.caremodel.profiles import check
    from carecoord.fhir.models import to_json

    return [
        f"{rt}/{r.id}: {v}" for rt in WRITTEN_TYPES for r in fhir.all(rt) for v in check(to_json(r))
    ]


def referral_tasks(fhir: FakeFhir) -> list[Any]:
    return sorted(
        (tk for tk in fhir.all("Task") if attempt_of(tk) is not None),
        key=lambda tk: attempt_of(tk).number,  # type: ignore[union-attr]
    )


def service_name(fhir: FakeFhir, task: Any) -> str:
    attempt = attempt_of(task)
    assert attempt is not None and attempt.service
    return str(fhir.read("HealthcareService", attempt.service.split("/")[1]).name)


def status(
    fhir: FakeFhir, task: Any, new: str, reason: str | None = None, set_by: str | None = None
) -> Effects:
    data = {"task": f"Task/{task.id}", "status": new}
    if reason:
        data["reason"] = reason
    if set_by:
        data["set_by"] = set_by
    return run(fhir, event("carecoord.referral.status-changed", "p1", data))


def test_need_creates_gravity_resources_and_refers_to_the_best_match(fhir: FakeFhir) -> None:
    fx = run(fhir, need(language="es"))

    (condition,) = fhir.all("Condition")
    assert any(t.concept_has(c, t.CONDITION_HEALTH_CONCERN) for c in condition.category)
    (goal,) = fhir.all("Goal")
    assert goal.addresses[0].reference == f"Condition/{condition.id}"
    (sr,) = fhir.all("ServiceRequest")
    assert t.concept_has(sr.category[0], t.SR_CATEGORY_SOCIAL_SERVICE)
    assert sr.code is not None and sr.status == "active"
    (task,) = referral_tasks(fhir)
    assert (task.status, task.intent) == ("requested", "order")
    assert t.concept_has(task.code, t.TASK_FULFILL)
    assert task.focus.reference == f"ServiceRequest/{sr.id}"
    assert task.for_fhir.reference == "Patient/p1"
    # SDOHCCTaskForReferralManagement: requester only PractitionerRole or Organization: the
    # care manager's role at the practice, created once.
    (role,) = fhir.all("PractitionerRole")
    assert task.requester.reference == f"PractitionerRole/{role.id}" == sr.requester.reference
    assert (role.practitioner.reference, role.organization.reference) == (CM, PRACTICE)
    assert task.authoredOn is not None
    # SDOHCCServiceRequest: the Goal in pertainsToGoal, never supportingInfo; occurrence set.
    from carecoord.caremodel.profiles import PERTAINS_TO_GOAL

    assert [e.valueReference.reference for e in sr.extension if e.url == PERTAINS_TO_GOAL] == [
        f"Goal/{goal.id}"
    ]
    assert not sr.supportingInfo and sr.occurrencePeriod is not None
    assert conformance(fhir) == []
    # Spanish speaker in 62701: the bilingual pantry ranks first.
    assert service_name(fhir, task) == "Weekly food pantry"
    assert task.owner.reference == sr.performer[0].reference
    (emit,) = fx.emits
    assert emit.type == "carecoord.referral.created"
    assert emit.data["attempt"] == 1


def test_rejected_twice_lands_with_the_third_then_none_left_is_manual(fhir: FakeFhir) -> None:
    # Eligibility "families" rules out the seniors-only box: three candidates remain.
    run(fhir, need(eligibility=["families"]))
    names = []
    for n in range(3):
        tasks = referral_tasks(fhir)
        assert len(tasks) == n + 1
        names.append(service_name(fhir, tasks[-1]))
        fx = status(fhir, tasks[-1], "rejected", reason="No capacity this month")
    assert len(set(names)) == 3, "each attempt goes to a different organisation"
    rejected = referral_tasks(fhir)
    assert [tk.status for tk in rejected] == ["rejected"] * 3
    assert rejected[0].statusReason.text == "No capacity this month"
    assert [e.type for e in fx.emits] == ["carecoord.referral.unmatched"]
    manual = [tk for tk in fhir.all("Task") if t.concept_has(tk.code, t.TASK_MANUAL_REFERRAL)]
    assert len(manual) == 1 and manual[0].owner.reference == CM
    assert manual[0].businessStatus.coding[0].code == t.BUSINESS_NO_MATCH.code


def test_the_second_candidate_after_one_rejection(fhir: FakeFhir) -> None:
    run(fhir, need())
    first = referral_tasks(fhir)[0]
    fx = status(fhir, first, "rejected")
    second = referral_tasks(fhir)[1]
    assert attempt_of(second).number == 2  # type: ignore[union-attr]
    assert service_name(fhir, second) != service_name(fhir, first)
    assert fhir.read("Task", first.id).statusReason.text  # a default reason is recorded
    (sr,) = fhir.all("ServiceRequest")
    assert sr.performer[0].reference == second.owner.reference
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]


def test_replays_create_nothing_and_emit_the_same_ids(fhir: FakeFhir) -> None:
    ev = need()
    first = run(fhir, ev)
    counts = {
        rt: len(fhir.all(rt))
        for rt in ("Condition", "Goal", "ServiceRequest", "Task", "PractitionerRole")
    }
    again = run(fhir, ev)
    assert {rt: len(fhir.all(rt)) for rt in counts} == counts
    assert [e.id for e in again.emits] == [e.id for e in first.emits]

    rejection = event(
        "carecoord.referral.status-changed",
        "p1",
        {"task": f"Task/{referral_tasks(fhir)[0].id}", "status": "rejected", "reason": "full"},
    )
    one = run(fhir, rejection)
    two = run(fhir, rejection)
    assert len(referral_tasks(fhir)) == 2
    assert [e.id for e in one.emits] == [e.id for e in two.emits]
    assert two.emits[0].data["attempt"] == 2


def test_no_consent_sends_nothing_to_an_organisation(fhir: FakeFhir) -> None:
    fx = run(fhir, need(consent_to_contact=False))
    assert referral_tasks(fhir) == []
    assert fx.emits == []
    (sr,) = fhir.all("ServiceRequest")
    assert sr.status == "draft" and not sr.performer
    (manual,) = fhir.all("Task")
    assert t.concept_has(manual.code, t.TASK_MANUAL_REFERRAL)
    assert manual.owner.reference == CM
    assert manual.businessStatus.coding[0].code == t.BUSINESS_NO_CONSENT.code
    assert t.concept_has(sr.orderDetail[0], t.SDOHCC_CONTACTING_SUBJECT_PROHIBITED)
    assert conformance(fhir) == []


SHARE = {"date": "2026-11-02", "method": "verbal", "recorded_by": CM}


def test_the_patients_consent_to_share_is_an_sdohcc_consent_the_referral_points_at(
    fhir: FakeFhir,
) -> None:
    from carecoord.caremodel.profiles import SDOHCC_CONSENT

    ev = need(consent_to_share=SHARE)
    run(fhir, ev)
    (consent,) = fhir.all("Consent")
    assert [str(p) for p in consent.meta.profile] == [f"{SDOHCC_CONSENT}|3.0.0"]  # STU 3
    assert consent.status == "active"
    assert t.concept_has(consent.scope, t.CONSENT_SCOPE_PRIVACY)
    assert [c.coding[0].code for c in consent.category] == ["IDSCL"]
    assert consent.patient.reference == "Patient/p1"
    assert str(consent.dateTime) == "2026-11-02"
    assert [o.reference for o in consent.organization] == [PRACTICE]
    assert consent.sourceAttachment.title.startswith("Verbal consent to share")
    assert consent.provision.type == "permit"
    (sr,) = fhir.all("ServiceRequest")
    assert [i.reference for i in sr.supportingInfo] == [f"Consent/{consent.id}"]
    assert referral_tasks(fhir)[0].focus.reference == f"ServiceRequest/{sr.id}"
    assert conformance(fhir) == []

    run(fhir, ev)  # a replay finds the Consent it wrote
    assert len(fhir.all("Consent")) == 1 and len(fhir.all("ServiceRequest")) == 1


def test_a_signed_consent_form_is_the_consents_source(fhir: FakeFhir) -> None:
    form = "DocumentReference/signed-form-1"
    run(fhir, need(consent_to_share={**SHARE, "method": "written", "document": form}))
    (consent,) = fhir.all("Consent")
    assert consent.sourceReference.reference == form and consent.sourceAttachment is None
    assert conformance(fhir) == []


def test_without_consent_to_share_no_consent_is_invented(fhir: FakeFhir) -> None:
    run(fhir, need())
    assert fhir.all("Consent") == []
    (sr,) = fhir.all("ServiceRequest")
    assert not sr.supportingInfo and sr.status == "active"


def test_the_consent_is_kept_even_when_contact_is_not_allowed(fhir: FakeFhir) -> None:
    run(fhir, need(consent_to_contact=False, consent_to_share=SHARE))
    (consent,) = fhir.all("Consent")
    (sr,) = fhir.all("ServiceRequest")
    assert sr.status == "draft" and [i.reference for i in sr.supportingInfo] == [
        f"Consent/{consent.id}"
    ]
    assert referral_tasks(fhir) == []


def test_a_consent_needs_an_organization_to_manage_it(fhir: FakeFhir) -> None:
    config = {"requester": "PractitionerRole/cm-role"}  # no practice, no Organization
    with pytest.raises(HandlerError, match="consent to share needs the Organization"):
        handle(need(consent_to_share=SHARE), ctx(fhir, config))
    fx = handle(need(consent_to_share=SHARE), ctx(fhir, {"requester": "Organization/clinic"}))
    fhir.apply(fx)
    (consent,) = fhir.all("Consent")
    assert consent.organization[0].reference == "Organization/clinic"


@pytest.mark.parametrize(
    "bad",
    [
        {"method": "nodded"},
        {"document": "Observation/x"},
        {"recorded_by": "Patient/p1"},
    ],
)
def test_a_malformed_consent_to_share_is_refused(fhir: FakeFhir, bad: dict[str, str]) -> None:
    from carecoord.errors import MalformedEvent

    with pytest.raises(MalformedEvent, match="consent_to_share"):
        handle(need(consent_to_share={**SHARE, **bad}), ctx(fhir, CONFIG))


def test_completed_closes_the_loop(fhir: FakeFhir) -> None:
    from carecoord.caremodel.builders import care_plan
    from carecoord.fhir.models import to_json
    from support.handler_context import NOW

    fhir.put(to_json(care_plan(patient="Patient/p1", program="CCM", start=NOW.date())))
    run(fhir, need())
    (plan,) = fhir.all("CarePlan")
    (sr,) = fhir.all("ServiceRequest")
    assert plan.activity[0].reference.reference == f"ServiceRequest/{sr.id}"
    task = referral_tasks(fhir)[0]
    for s in ("accepted", "in-progress"):
        status(fhir, fhir.read("Task", task.id), s)
    # The CBO reports what it did (Task.output resulting-activity) and completes the Task.
    done = to_json(fhir.read("Task", task.id))
    done["status"] = "completed"
    done["output"] = [
        {
            "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
            "valueReference": {"reference": "Procedure/pantry-enrolment"},
        },
        {
            "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
            "valueCodeableConcept": {"coding": [{"system": t.SNOMED, "code": "467771000124109"}]},
        },
    ]
    fhir.put(done)
    status(fhir, fhir.read("Task", task.id), "completed")
    assert fhir.read("ServiceRequest", sr.id).status == "completed"
    (goal,) = fhir.all("Goal")
    assert goal.lifecycleStatus == "active", "carecoord does not decide the Goal is achieved"
    assert not t.concept_has(goal.achievementStatus, t.GOAL_ACHIEVED)
    (plan,) = fhir.all("CarePlan")
    outcomes = [o.reference for o in plan.activity[0].outcomeReference]
    assert outcomes == ["Procedure/pantry-enrolment", f"Task/{task.id}"]
    assert plan.activity[0].outcomeCodeableConcept[0].coding[0].code == "467771000124109"
    (review,) = [
        tk for tk in fhir.all("Task") if t.concept_has(tk.code, t.TASK_REVIEW_REFERRAL_OUTCOME)
    ]
    assert (review.owner.reference, review.focus.reference) == (CM, f"Goal/{goal.id}")
    assert conformance(fhir) == []


def test_an_invalid_transition_is_refused(fhir: FakeFhir) -> None:
    run(fhir, need())
    task = referral_tasks(fhir)[0]
    with pytest.raises(HandlerError, match="requested to completed"):
        handle(
            event(
                "carecoord.referral.status-changed",
                "p1",
                {"task": f"Task/{task.id}", "status": "completed"},
            ),
            ctx(fhir, CONFIG),
        )


@pytest.mark.parametrize("bad", ["received", "ready"])
def test_statuses_outside_the_referral_value_set_are_refused(fhir: FakeFhir, bad: str) -> None:
    run(fhir, need())
    task = referral_tasks(fhir)[0]
    with pytest.raises(HandlerError, match="value set"):
        status(fhir, task, bad)


def test_only_the_requester_may_enter_in_error(fhir: FakeFhir) -> None:
    run(fhir, need())
    task = referral_tasks(fhir)[0]
    with pytest.raises(HandlerError, match="only the requester"):
        status(fhir, task, "entered-in-error", set_by="owner")


def test_a_cbo_cancellation_closes_the_loop_like_a_rejection(fhir: FakeFhir) -> None:
    run(fhir, need())
    first = referral_tasks(fhir)[0]
    status(fhir, first, "accepted")
    fx = status(fhir, fhir.read("Task", first.id), "cancelled", "Client moved", set_by="owner")
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]
    assert len(referral_tasks(fhir)) == 2
    (sr,) = fhir.all("ServiceRequest")
    assert sr.status == "active"


def test_the_requesters_cancellation_revokes_the_referral(fhir: FakeFhir) -> None:
    run(fhir, need())
    first = referral_tasks(fhir)[0]
    fx = status(fhir, first, "cancelled", "Patient declined", set_by="requester")
    assert fx.emits == [] and len(referral_tasks(fhir)) == 1
    (sr,) = fhir.all("ServiceRequest")
    assert sr.status == "revoked"
    # The same cancellation echoed back by a FHIR notification (set_by owner) changes nothing.
    again = status(fhir, fhir.read("Task", first.id), "cancelled", set_by="owner")
    assert again.emits == [] and len(referral_tasks(fhir)) == 1


def test_no_match_in_the_area_is_a_manual_referral_at_once(fhir: FakeFhir) -> None:
    fx = run(fhir, need(postal_code="90210"))
    assert [e.type for e in fx.emits] == ["carecoord.referral.unmatched"]
    assert fx.emits[0].data["reason"] == "no-candidates"
    assert referral_tasks(fhir) == []
    assert len(fhir.all("Task")) == 1


def test_without_care_team_the_configured_requester_is_used() -> None:
    fake = FakeFhir()
    fx = handle(need(postal_code="62701"), ctx(fake, {"requester": "Organization/clinic"}))
    assert fx.emits[0].type == "carecoord.referral.unmatched"  # empty directory
    with pytest.raises(HandlerError, match="no requester"):
        handle(need(), ctx(fake))


def test_without_a_way_to_reach_the_role_the_practice_requests(fhir: FakeFhir) -> None:
    # US Core pd-1: a PractitionerRole needs a telecom; with no practice_phone and no practice
    # Organization on file to take one from, the Organization itself is the requester.
    fx = handle(need(), ctx(fhir, {"organization": PRACTICE}))
    fhir.apply(fx)
    (task,) = referral_tasks(fhir)
    assert task.requester.reference == PRACTICE
    assert fhir.all("PractitionerRole") == []
    fhir.put({"resourceType": "Organization", "id": "practice", "name": "Practice",
              "telecom": [{"system": "phone", "value": "555-0199"}]})  # fmt: skip
    other = need(postal_code="62702")
    fhir.apply(handle(other, ctx(fhir, {"organization": PRACTICE})))
    (role,) = fhir.all("PractitionerRole")
    assert role.telecom[0].value == "555-0199"


def test_loop_steps() -> None:
    assert step_after("rejected") == step_after("failed") == "next-candidate"
    assert step_after("completed") == "complete"
    assert step_after("cancelled") == step_after("cancelled", "requester") == "revoke"
    assert step_after("cancelled", "owner") == "next-candidate"
    assert step_after("accepted") == "none"


def test_after_each_rejection_the_next_best_candidate_is_chosen(fhir: FakeFhir) -> None:
    # 62701, food, no language or eligibility known: the directory's ranking, best first
    # (certain eligibility before unknown, then by name; see test_hsds).
    expected = [
        "Mobile food distribution",
        "St. John's emergency food box",
        "Weekly food pantry",
        "Senior grocery box (CSFP)",
    ]
    run(fhir, need())
    for n in range(len(expected) - 1):
        tasks = referral_tasks(fhir)
        assert [service_name(fhir, tk) for tk in tasks] == expected[: n + 1]
        status(fhir, tasks[-1], "rejected", reason="No capacity")
    assert [service_name(fhir, tk) for tk in referral_tasks(fhir)] == expected
