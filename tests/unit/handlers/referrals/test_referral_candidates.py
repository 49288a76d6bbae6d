"""After an organisation declines a referral: who is offered it next, when it becomes a manual
referral (and for whom), and what a replayed status event repeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from fhir.resources.R4B.resource import Resource
from test_handlers_referrals import (
    CM,
    PRACTICE,
    fhir,
    need,
    referral_tasks,
    run,
    service_name,
    with_directory,
)

from carecoord.caremodel import terminology as t
from carecoord.caremodel.builders import care_team
from carecoord.caremodel.identifiers import carecoord_identifier
from carecoord.fhir.errors import FhirPreconditionFailed
from carecoord.fhir.models import to_json
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.referrals.handler import HANDLERS, attempt_of
from support.handler_context import NOW, FakeFhir, ctx, event
from support.handler_context import care_team as put_care_team

__all__ = ["fhir"]  # the fixture: a FakeFhir with the sample directory and p1's care team

# 62701, food, nothing known about the patient: the directory's order (see test_hsds).
ORDER = [
    "Mobile food distribution",
    "St. John's emergency food box",
    "Weekly food pantry",
    "Senior grocery box (CSFP)",  # seniors only (60+): eligibility uncertain, offered last
]


class NewestFirst(FakeFhir):
    """A server returning search results newest first (FHIR leaves the order to the server)."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        return list(reversed(super().search(resource_type, params)))


class SearchesByCategory(FakeFhir):
    """A server that supports HealthcareService's service-category search parameter."""

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
        wanted = [v.partition("|") for k, v in pairs if k == "service-category"]
        found = super().search(resource_type, [(k, v) for k, v in pairs if k != "service-category"])
        return [
            r for r in found if all(_in_category(r, system, code) for system, _, code in wanted)
        ]


def _in_category(resource: Resource, system: str, code: str) -> bool:
    return any(
        c.system == system and c.code == code
        for cat in getattr(resource, "category", None) or []
        for c in cat.coding or []
    )


def requested_by_the_care_manager(fhir: FakeFhir, task: Any, care_manager: str = CM) -> None:
    """The Task's requester is the care manager's PractitionerRole at the practice (Gravity
    SDOHCC: a referral Task is requested by a PractitionerRole)."""
    kind, _, role_id = task.requester.reference.partition("/")
    assert kind == "PractitionerRole"
    role = fhir.read("PractitionerRole", role_id)
    assert (role.practitioner.reference, role.organization.reference) == (care_manager, PRACTICE)


def loaded(fake: FakeFhir, *, team: bool = True) -> FakeFhir:
    with_directory(fake)
    if team:
        put_care_team(fake, "p1", CM, "Practitioner/dr-1")
    return fake


def ident(resource: Any) -> str:
    found = carecoord_identifier(resource)
    assert found is not None
    return f"{found[0]}|{found[1]}"


def reject(fhir: FakeFhir, task: Any, config: dict[str, Any] | None = None) -> Any:
    data = {"task": f"Task/{task.id}", "status": "rejected", "reason": "No capacity"}
    ev = event("carecoord.referral.status-changed", "p1", data)
    fx = HANDLERS[0].handle(ev, ctx(fhir, config))
    fhir.apply(fx)
    return fx


def manual_tasks(fhir: FakeFhir) -> list[Any]:
    return [tk for tk in fhir.all("Task") if t.concept_has(tk.code, t.TASK_MANUAL_REFERRAL)]


def born(fhir: FakeFhir, birth_date: str) -> None:
    fhir.put({"resourceType": "Patient", "id": "p1", "birthDate": birth_date})


def test_the_next_attempt_is_announced_with_its_task_service_and_organisation(
    fhir: FakeFhir,
) -> None:
    run(fhir, need())
    first = referral_tasks(fhir)[0]
    fx = reject(fhir, first)
    second = referral_tasks(fhir)[1]
    assert second.status == "requested"
    requested_by_the_care_manager(fhir, second)
    assert service_name(fhir, second) == ORDER[1]
    (sr,) = fhir.all("ServiceRequest")
    (emit,) = fx.emits
    assert emit.type == "carecoord.referral.created"
    assert emit.subject == "Patient/p1"
    attempt = attempt_of(second)
    assert attempt is not None
    assert emit.data == {
        "domain": "food-insecurity",
        "service_request_identifier": ident(sr),
        "service_request": f"ServiceRequest/{sr.id}",
        "task_identifier": ident(second),
        "healthcare_service": attempt.service,
        "organization": second.owner.reference,
        "attempt": 2,
    }
    assert emit.id == derived_id(ident(second), "carecoord.referral.created")


@pytest.mark.parametrize("server", [FakeFhir, NewestFirst])
def test_a_replayed_rejection_repeats_the_following_attempts_announcement(
    server: type[FakeFhir],
) -> None:
    fhir = loaded(server())
    run(fhir, need())
    first = referral_tasks(fhir)[0]
    announced = reject(fhir, first).emits
    reject(fhir, referral_tasks(fhir)[1])  # the second declines too: a third is offered
    before = {rt: len(fhir.all(rt)) for rt in ("ServiceRequest", "Task")}
    (sr,) = fhir.all("ServiceRequest")
    performer = sr.performer[0].reference

    replay = reject(fhir, fhir.read("Task", first.id))  # the first rejection, delivered again

    assert {rt: len(fhir.all(rt)) for rt in before} == before
    (sr,) = fhir.all("ServiceRequest")
    assert sr.performer[0].reference == performer  # still with the third organisation
    (again,) = replay.emits
    (first_time,) = announced
    second = referral_tasks(fhir)[1]
    assert (again.type, again.id, again.subject) == (first_time.type, first_time.id, "Patient/p1")
    # The same announcement, now also naming the Task the server created for attempt 2.
    assert again.data == {**first_time.data, "task": f"Task/{second.id}"}
    assert again.data["attempt"] == 2


def test_when_every_candidate_declined_the_care_manager_gets_a_manual_referral(
    fhir: FakeFhir,
) -> None:
    run(fhir, need())
    for _ in ORDER:
        fx = reject(fhir, referral_tasks(fhir)[-1])
    tasks = referral_tasks(fhir)
    assert [service_name(fhir, tk) for tk in tasks] == ORDER
    (sr,) = fhir.all("ServiceRequest")
    (manual,) = manual_tasks(fhir)
    assert manual.owner.reference == CM
    assert manual.requester.reference == tasks[0].requester.reference
    requested_by_the_care_manager(fhir, manual)
    assert manual.for_fhir.reference == "Patient/p1"
    assert manual.focus.reference == f"ServiceRequest/{sr.id}"
    assert manual.authoredOn == NOW
    assert manual.businessStatus.coding[0].code == t.BUSINESS_NO_MATCH.code
    (emit,) = fx.emits
    assert emit.type == "carecoord.referral.unmatched"
    assert emit.subject == "Patient/p1"
    assert emit.data == {
        "domain": "food-insecurity",
        "service_request_identifier": ident(sr),
        "manual_task_identifier": ident(manual),
        "service_request": f"ServiceRequest/{sr.id}",
        "tried": sorted(attempt_of(tk).service for tk in tasks),  # type: ignore[union-attr]
        "reason": "all-candidates-declined",
    }
    assert emit.id == derived_id(ident(sr), "carecoord.referral.unmatched")
    # The last rejection delivered again: no second manual referral, nothing announced.
    again = reject(fhir, fhir.read("Task", tasks[-1].id))
    assert again.emits == [] and len(manual_tasks(fhir)) == 1


def test_the_manual_referral_goes_to_the_patients_current_care_manager(fhir: FakeFhir) -> None:
    run(fhir, need())
    later = care_team(patient="Patient/p1", program="CCM", start=NOW.date(),
                      care_manager="Practitioner/cm-2", provider="Practitioner/dr-1")  # fmt: skip
    for k in [k for k in fhir.store if k[0] == "CareTeam"]:
        del fhir.store[k]
    fhir.put(to_json(later))
    fx = reject(fhir, referral_tasks(fhir)[0], {"max_attempts": 1})
    (manual,) = manual_tasks(fhir)
    assert manual.owner.reference == "Practitioner/cm-2"  # who looks after the patient now
    # who asked for the referral: cm-1, as the referral Tasks say
    assert manual.requester.reference == referral_tasks(fhir)[0].requester.reference
    requested_by_the_care_manager(fhir, manual)
    assert [e.type for e in fx.emits] == ["carecoord.referral.unmatched"]


def test_without_a_care_team_the_manual_referral_goes_back_to_the_requester() -> None:
    fake = loaded(FakeFhir(), team=False)
    config = {"requester": "Organization/clinic", "max_attempts": 1}
    fake.apply(HANDLERS[0].handle(need(), ctx(fake, config)))
    (task,) = referral_tasks(fake)
    assert task.requester.reference == "Organization/clinic"
    reject(fake, task, config)
    (manual,) = manual_tasks(fake)
    assert (manual.owner.reference, manual.requester.reference) == (
        "Organization/clinic",
        "Organization/clinic",
    )


def test_max_attempts_is_how_many_organisations_are_offered_the_referral(
    fhir: FakeFhir,
) -> None:
    config = {"max_attempts": 2}
    run(fhir, need())
    fx = reject(fhir, referral_tasks(fhir)[0], config)
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]
    fx = reject(fhir, referral_tasks(fhir)[1], config)
    assert [e.type for e in fx.emits] == ["carecoord.referral.unmatched"]
    assert [service_name(fhir, tk) for tk in referral_tasks(fhir)] == ORDER[:2]
    assert fx.emits[0].data["reason"] == "all-candidates-declined"
    assert len(fx.emits[0].data["tried"]) == 2


def test_the_patients_age_on_the_day_rules_services_out(fhir: FakeFhir) -> None:
    born(fhir, "1965-03-11")  # 59 on 2025-03-10, the day of the events: too young for 60+
    run(fhir, need())
    for _ in ORDER[:3]:
        fx = reject(fhir, referral_tasks(fhir)[-1])
    assert [service_name(fhir, tk) for tk in referral_tasks(fhir)] == ORDER[:3]
    assert [e.type for e in fx.emits] == ["carecoord.referral.unmatched"]


def test_a_patient_old_enough_is_still_offered_the_seniors_service(fhir: FakeFhir) -> None:
    born(fhir, "1965-03-10")  # 60 on 2025-03-10
    run(fhir, need())
    for _ in ORDER[:3]:
        fx = reject(fhir, referral_tasks(fhir)[-1])
    assert [service_name(fhir, tk) for tk in referral_tasks(fhir)] == ORDER
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]


def test_two_referrals_for_the_same_need_each_get_their_own_next_attempt(fhir: FakeFhir) -> None:
    run(fhir, need())
    run(fhir, need())  # a second food referral for p1, from another event
    first, second = fhir.all("ServiceRequest")
    for task in referral_tasks(fhir):
        reject(fhir, task)
    for sr in (first, second):
        mine = [
            tk for tk in referral_tasks(fhir) if tk.focus.reference == f"ServiceRequest/{sr.id}"
        ]
        assert [attempt_of(tk).number for tk in mine] == [1, 2]  # type: ignore[union-attr]
        assert [service_name(fhir, tk) for tk in mine] == ORDER[:2]


def test_the_referral_is_not_moved_over_a_concurrent_change_to_it(fhir: FakeFhir) -> None:
    run(fhir, need())
    (sr,) = fhir.all("ServiceRequest")
    data = {"task": f"Task/{referral_tasks(fhir)[0].id}", "status": "rejected", "reason": "full"}
    fx = HANDLERS[0].handle(event("carecoord.referral.status-changed", "p1", data), ctx(fhir))
    fhir.store[("ServiceRequest", sr.id)]["meta"]["versionId"] = "9"  # someone else edited it
    with pytest.raises(FhirPreconditionFailed):
        fhir.apply(fx)  # the runtime retries the event on the current version


def test_the_directory_is_searched_for_the_needs_domain() -> None:
    fhir = loaded(SearchesByCategory())
    run(fhir, need())
    fx = reject(fhir, referral_tasks(fhir)[0])
    assert [e.type for e in fx.emits] == ["carecoord.referral.created"]
    assert [service_name(fhir, tk) for tk in referral_tasks(fhir)] == ORDER[:2]
