"""The referral loop on an in-memory FHIR store loaded with the sample HSDS directory."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_handlers_ii_support import FakeFhir, care_team, ctx, event

from carecoord.errors import HandlerError
from carecoord.fhir import terminology as t
from carecoord.fhir.hsds import import_directory
from carecoord.handlers.base import Effects, FhirWrite
from carecoord.handlers.referrals import HANDLERS, attempt_of, step_after

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
handle = HANDLERS[0].handle
CM, DR = "Practitioner/cm-1", "Practitioner/dr-1"


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
    fx = handle(ev, ctx(fhir))
    fhir.apply(fx)
    return fx


def referral_tasks(fhir: FakeFhir) -> list[Any]:
    return sorted(
        (tk for tk in fhir.all("Task") if attempt_of(tk) is not None),
        key=lambda tk: attempt_of(tk).number,  # type: ignore[union-attr]
    )


def service_name(fhir: FakeFhir, task: Any) -> str:
    attempt = attempt_of(task)
    assert attempt is not None and attempt.service
    return str(fhir.read("HealthcareService", attempt.service.split("/")[1]).name)


def status(fhir: FakeFhir, task: Any, new: str, reason: str | None = None) -> Effects:
    data = {"task": f"Task/{task.id}", "status": new}
    if reason:
        data["reason"] = reason
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
    assert task.requester.reference == CM
    assert task.authoredOn is not None
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
    counts = {rt: len(fhir.all(rt)) for rt in ("Condition", "Goal", "ServiceRequest", "Task")}
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


def test_completed_closes_the_loop(fhir: FakeFhir) -> None:
    from test_handlers_ii_support import NOW

    from carecoord.fhir.care import care_plan
    from carecoord.fhir.models import to_json

    fhir.put(to_json(care_plan(patient="Patient/p1", program="CCM", start=NOW.date())))
    run(fhir, need())
    (plan,) = fhir.all("CarePlan")
    (sr,) = fhir.all("ServiceRequest")
    assert plan.activity[0].reference.reference == f"ServiceRequest/{sr.id}"
    task = referral_tasks(fhir)[0]
    for s in ("accepted", "in-progress", "completed"):
        status(fhir, fhir.read("Task", task.id), s)
    assert fhir.read("ServiceRequest", sr.id).status == "completed"
    (goal,) = fhir.all("Goal")
    assert goal.lifecycleStatus == "completed"
    assert t.concept_has(goal.achievementStatus, t.GOAL_ACHIEVED)
    (plan,) = fhir.all("CarePlan")
    assert plan.activity[0].outcomeReference[0].reference == f"Task/{task.id}"


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
            ctx(fhir),
        )


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


def test_loop_steps() -> None:
    assert step_after("rejected") == step_after("failed") == "next-candidate"
    assert step_after("completed") == "complete"
    assert step_after("cancelled") == "revoke"
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
