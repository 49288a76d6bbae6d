"""FHIR round trips per event, counted by a proxy between the runtime and the real FHIR server.

A care-management event does little computing; its cost is FHIR requests. The common path is
one read round trip (a search with includes, or one batch of searches) plus one transaction. An
escalation and a new referral need the plan's CareTeam too: the embedded server can neither
include it with the plans nor search it by patient, so their batch searches it by the id the
plan named when this client last read it (carecoord.handlers.care.team_hints); only a team the
client has not seen costs a read of its own. Not a timing: a request count, so a regression in
round trips fails `make test`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.condition import Condition

from carecoord.caremodel.terminology import ROLE_PRIMARY_CARE_PHYSICIAN
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from support.enrolment import consented
from support.fhir_proxy import FhirProxy
from support.pipeline import Pipeline

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.fixture
def counted(kafka_bootstrap: str, fhir_base_url: str) -> Iterator[tuple[Pipeline, FhirProxy]]:
    with FhirClient(fhir_base_url) as client:  # the sample directory, for referrals
        assert import_directory(client, json.loads(SAMPLE.read_text())).problems == []
    proxy = FhirProxy(fhir_base_url)
    pipeline = Pipeline(
        kafka_bootstrap,
        proxy.base_url,
        config={"referrals": {"requester": "Organization/clinic-rt"}},
    )
    pipeline.fhir.capability_statement()  # fetched once per client, before anything is counted
    try:
        yield pipeline, proxy
    finally:
        pipeline.close()
        proxy.close()


def run_one(pipeline: Pipeline, proxy: FhirProxy, event: CloudEvent) -> Counter[str]:
    start = proxy.count()
    pipeline.publish(event)
    pipeline.wait_idle()
    assert pipeline.counter.dead == 0, pipeline.dead_letters()
    return proxy.since(start)


def kinds(**counts: int) -> Counter[str]:
    return Counter({k: v for k, v in counts.items() if v})


def attempt(patient: str, n: int, outcome: str = "no-answer") -> CloudEvent:
    data = {
        "channel": "phone",
        "outcome": outcome,
        "attempted_at": f"2026-03-{10 + n:02d}T10:00:00+00:00",
        "by": "Practitioner/cm-rt",
    }
    return new_event("carecoord.outreach.attempted", patient, data, id=f"rt-{patient}-att-{n}")


def enrolment(pipeline: Pipeline, patient: str) -> CloudEvent:
    """A consented CCM enrolment with the two chronic conditions CCM billing needs (the
    Conditions are created directly, before anything is counted)."""
    conditions = [
        "Condition/"
        + str(
            pipeline.fhir.create(
                Condition.model_validate(
                    {
                        "subject": {"reference": f"Patient/{patient}"},
                        "code": {"coding": [{"system": ICD10, "code": code}]},
                    }
                )
            ).id
        )
        for code in ("E11.9", "I10")
    ]
    body = {
        "program": "CCM",
        "provider": "Practitioner/doc-rt",
        "care_manager": "Practitioner/cm-rt",
        "start": "2026-03-02",
        "conditions": conditions,
    }
    return new_event(
        "carecoord.patient.enrolled", patient, consented(body), id=f"rt-{patient}-enrol"
    )


def test_requests_per_event_type(counted: tuple[Pipeline, FhirProxy], unique: str) -> None:
    pipeline, proxy = counted
    patient = f"rt-{unique}"
    seen: dict[str, Any] = {}

    seen["enrolled"] = run_one(pipeline, proxy, enrolment(pipeline, patient))
    seen["attempt 1"] = run_one(pipeline, proxy, attempt(patient, 1))
    seen["attempt 2"] = run_one(pipeline, proxy, attempt(patient, 2, "voicemail"))
    seen["attempt 3 (escalates)"] = run_one(pipeline, proxy, attempt(patient, 3))
    seen["attempt 4 (escalated already)"] = run_one(pipeline, proxy, attempt(patient, 4))
    seen["answered"] = run_one(pipeline, proxy, attempt(patient, 5, "answered"))
    logged = {
        "program": "CCM",
        "minutes": 25,
        "activity": "care coordination",
        "by": "Practitioner/cm-rt",
        "performed_at": "2026-03-20T10:00:00+00:00",
    }
    seen["time.logged"] = run_one(
        pipeline, proxy, new_event("carecoord.time.logged", patient, logged, id=f"rt-{patient}-t")
    )
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    seen["need-identified"] = run_one(
        pipeline, proxy, new_event("carecoord.sdoh.need-identified", patient, need)
    )

    expected = {
        # the active plans and whether the new CareTeam's id is free (the embedded server cannot
        # search CareTeam by identifier, so it goes out as PUT): one batch
        "enrolled": kinds(batch=1, transaction=1),
        # the month's requests with their attempts and escalation Tasks, and the active plans
        "attempt 1": kinds(batch=1, transaction=1),
        "attempt 2": kinds(batch=1, transaction=1),
        # the plan's standalone CareTeam (for the provider) in the same batch, by the id the
        # plan named in attempts 1 and 2 (the embedded server cannot include it with the plans)
        "attempt 3 (escalates)": kinds(batch=1, transaction=1),
        "attempt 4 (escalated already)": kinds(batch=1, transaction=1),
        "answered": kinds(batch=1, transaction=1),
        # its ChargeItems of the month, CarePlans, Consents, Communications of the month and
        # Conditions: one batch of searches (the server declares batch)
        "time.logged": kinds(batch=1, transaction=1),
        # plans, the plan's CareTeam (as for the escalation), Patient, existing referral,
        # directory and the Goal's id: one batch
        "need-identified": kinds(batch=1, transaction=1),
    }
    assert seen == expected
    outbound = [e.type for e in pipeline.outbound()]
    assert outbound.count("carecoord.outreach.escalated") == 1
    assert outbound.count("carecoord.billing.threshold-reached") == 1


def test_a_plan_given_another_team_costs_the_read_of_it_and_escalates_to_that_team(
    counted: tuple[Pipeline, FhirProxy], unique: str
) -> None:
    """The CareTeam searched beside the plans is only the one the plan named when last read: a
    plan since given another team (here by another system) costs the read of that team, whose
    provider the escalation goes to; the next event's batch then carries the new team."""
    pipeline, proxy = counted
    patient = f"rt-sw-{unique}"
    run_one(pipeline, proxy, enrolment(pipeline, patient))
    run_one(pipeline, proxy, attempt(patient, 1))
    run_one(pipeline, proxy, attempt(patient, 2, "voicemail"))
    (plan,) = [
        p
        for p in pipeline.fhir.search("CarePlan", {"patient": f"Patient/{patient}"})
        if p.get_resource_type() == "CarePlan"
    ]
    pcp = {
        "member": {"reference": "Practitioner/doc-other"},
        "role": [ROLE_PRIMARY_CARE_PHYSICIAN.concept_json()],
    }
    subject = {"reference": f"Patient/{patient}"}
    team = pipeline.fhir.create(
        CareTeam.model_validate({"status": "active", "subject": subject, "participant": [pcp]})
    )
    data = to_json(plan)
    data["careTeam"] = [{"reference": f"CareTeam/{team.id}"}]
    pipeline.fhir.update(CarePlan.model_validate(data))

    start = proxy.count()
    assert run_one(pipeline, proxy, attempt(patient, 3)) == kinds(batch=1, read=1, transaction=1)
    assert "GET CareTeam/{id}" in proxy.labels_since(start)
    (escalated,) = [
        e
        for e in pipeline.outbound()
        if e.type == "carecoord.outreach.escalated" and e.subject == f"Patient/{patient}"
    ]
    assert escalated.data["owner"] == "Practitioner/doc-other"
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    referral = new_event("carecoord.sdoh.need-identified", patient, need)
    assert run_one(pipeline, proxy, referral) == kinds(batch=1, transaction=1)


def test_a_redelivered_event_looks_its_outbox_record_up_and_re_emits_the_same_id(
    counted: tuple[Pipeline, FhirProxy], unique: str
) -> None:
    """A duplicate time entry has nothing left to write: that is when the outbox is looked up
    (one search after the entry's one batch of reads), and the stored emit goes out again under
    the same id."""
    pipeline, proxy = counted
    patient = f"rt-{unique}"
    run_one(pipeline, proxy, enrolment(pipeline, patient))
    logged = {
        "program": "CCM",
        "minutes": 30,
        "activity": "care coordination",
        "by": "Practitioner/cm-rt",
        "performed_at": "2026-03-20T10:00:00+00:00",
    }
    event = new_event("carecoord.time.logged", patient, logged, id=f"rt-{patient}-t")
    run_one(pipeline, proxy, event)
    replay = run_one(pipeline, proxy, event)
    assert replay == kinds(batch=1, search=1)  # its reads, then (nothing to write) the outbox
    ids = [e.id for e in pipeline.outbound() if e.type == "carecoord.billing.threshold-reached"]
    assert len(ids) == 2 and len(set(ids)) == 1


def test_a_referral_status_reads_the_task_with_its_focus_in_one_search(
    counted: tuple[Pipeline, FhirProxy], unique: str
) -> None:
    """SDOHCC STU 3's Referral Source searches Task with `_include=Task:focus` (SHALL;
    HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/instances/SDOHCC-ReferralSource.fsh). The
    embedded server declares it, so a CBO's status reaches the referral Task and its
    ServiceRequest in one search, no read: the rejection below makes searches (the Task with
    its focus, the earlier attempts, the directory, ...) and the plan's CareTeam read only."""
    from carecoord.handlers.referrals.handler import attempt_of

    pipeline, proxy = counted
    patient = f"rt-sc-{unique}"
    run_one(pipeline, proxy, enrolment(pipeline, patient))
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    run_one(pipeline, proxy, new_event("carecoord.sdoh.need-identified", patient, need))
    (task,) = [
        tk
        for tk in pipeline.fhir.search("Task", {"patient": f"Patient/{patient}"})
        if tk.get_resource_type() == "Task" and attempt_of(tk) is not None
    ]
    start = proxy.count()
    rejected = {"task": f"Task/{task.id}", "status": "rejected", "set_by": "owner"}
    seen = run_one(
        pipeline, proxy, new_event("carecoord.referral.status-changed", patient, rejected)
    )
    labels = proxy.labels_since(start)
    assert "GET Task/{id}" not in labels and "GET ServiceRequest/{id}" not in labels, labels
    assert labels[0] == "GET Task"  # Task?_id=...&_include=Task:focus
    assert seen["transaction"] == 1
    created = [e for e in pipeline.outbound() if e.type == "carecoord.referral.created"]
    assert [e.data["attempt"] for e in created if e.subject == f"Patient/{patient}"] == [1, 2]
