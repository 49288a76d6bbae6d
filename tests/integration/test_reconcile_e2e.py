"""The reconciling poller on the real FHIR server and the real broker: with notifications off, a
community organisation's completion of a referral Task still closes the loop at the next poll; a
change both notified and polled has one effect; a poller restarted between two polls misses and
repeats nothing; a discharge Encounter written by the EHR starts TCM.

Each test runs a poll by calling `poll_once()` (the interval is the default hour; no sleep)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.dlq import list_dead_letters
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.notifications.windows import FollowedQuery
from carecoord.handlers.programs.tcm import EPISODE_ID
from carecoord.service.app import Service, build_fhir_client
from carecoord.service.reconcile import KafkaCursors, Reconciler, fhir_pages
from carecoord.settings import load_settings
from support.enrolment import consented
from support.referrals import patient_referral_tasks as _referral_tasks
from support.waiting import wait_for

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
TOKEN = "reconcile-test-token"
STATUS_CHANGED = "carecoord.referral.status-changed"


@pytest.fixture
def topics(unique: str) -> dict[str, str]:
    return {
        "topic_in": f"rc-in-{unique}",
        "topic_out": f"rc-out-{unique}",
        "topic_dlq": f"rc-dlq-{unique}",
        "group_id": f"rc-{unique}",
    }


def _start(settings: Any) -> tuple[Service, threading.Thread]:
    svc = Service(settings)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    assert svc.reconciler is not None  # on by default
    wait_for(svc.reconciler.leading, 60.0, "the poller to lead (partition 0 of its cursors)")
    return svc, thread


@pytest.fixture
def service(
    kafka_bootstrap: str, fhir_base_url: str, topics: dict[str, str], request: Any
) -> Iterator[Service]:
    with FhirClient(fhir_base_url) as client:
        assert import_directory(client, json.loads(SAMPLE.read_text())).problems == []
    notified = getattr(request, "param", False)
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "referrals", "tcm"],
        handlers={
            "referrals": {
                "organization": "Organization/practice-rc",
                "practice_phone": "+1 217 555 0100",
            }
        },
        health_port=0,
        health_host="127.0.0.1",
        notifications_port=0,
        sweeper_interval=0,
        notifications_enabled=notified,
        notifications_token=TOKEN if notified else None,
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
        **topics,
    )
    svc, thread = _start(settings)
    assert svc.reconciler is not None and svc.reconciler.interval == 3600  # the default
    svc.reconciler.poll_once("test: establish")  # the loop's own first poll may still run
    yield svc
    svc.request_stop()
    thread.join(30)


def _refer(service: Service, fhir: FhirClient, patient: str, unique: str) -> Any:
    enrolled = {
        "program": "CCM",
        "provider": f"Practitioner/dr-{unique}",
        "care_manager": f"Practitioner/cm-{unique}",
        "start": "2026-03-02",
    }
    need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
    service.publish(
        [
            new_event("carecoord.patient.enrolled", patient, consented(enrolled)),
            new_event("carecoord.sdoh.need-identified", patient, need),
        ]
    )
    (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the referral Task")
    return first


def _cbo_sets(fhir_base_url: str, fhir: FhirClient, task: Any, **changes: Any) -> dict[str, Any]:
    """The organisation updates the Task on the FHIR server (as the Gravity IG has it)."""
    current = to_json(fhir.read("Task", str(task.id)))
    current.update(changes)
    httpx.put(f"{fhir_base_url}/Task/{task.id}", json=current, timeout=10).raise_for_status()
    return to_json(fhir.read("Task", str(task.id)))


def _inputs(kafka_bootstrap: str, topic: str, event_type: str) -> list[CloudEvent]:
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    events = [CloudEvent.from_json_bytes(r.value) for r in broker.read_topic(topic, timeout=3.0)]
    return [e for e in events if e.type == event_type]


def _metric(service: Service, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_without_notifications_a_cbo_completion_closes_the_loop_at_the_next_poll(
    service: Service,
    fhir_base_url: str,
    kafka_bootstrap: str,
    topics: dict[str, str],
    unique: str,
) -> None:
    assert service.notifications is None  # notifications are off (the default)
    patient = f"rc-done-{unique}"
    fhir = FhirClient(fhir_base_url)
    task = _refer(service, fhir, patient, unique)
    for status in ("accepted", "completed"):
        _cbo_sets(fhir_base_url, fhir, task, status=status)

    assert service.reconciler is not None
    report = service.reconciler.poll_once("test")
    assert report.published >= 1

    def closed() -> Any:
        (sr,) = [
            r
            for r in fhir.search("ServiceRequest", {"subject": f"Patient/{patient}"})
            if r.get_resource_type() == "ServiceRequest"
        ]
        return sr if sr.status == "completed" else None

    wait_for(closed, 60.0, "the referral to be closed from the polled completion")
    changed = _inputs(kafka_bootstrap, topics["topic_in"], STATUS_CHANGED)
    assert [e.data["status"] for e in changed if e.data["task"] == f"Task/{task.id}"] == [
        "completed"
    ]  # the poller reads the Task as it is now: the accepted version was never seen
    poller_only = "carecoord_reconcile_changes_poller_only_total"
    assert _metric(service, poller_only, resource_type="Task") >= 1
    assert _metric(service, "carecoord_reconcile_polls_total") >= 2
    assert list(list_dead_letters(KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap)),
                                  topics["topic_dlq"], timeout=3.0)) == []  # fmt: skip
    fhir.close()


@pytest.mark.parametrize("service", [True], indirect=True)
def test_a_change_notified_and_polled_has_one_effect(
    service: Service,
    fhir_base_url: str,
    kafka_bootstrap: str,
    topics: dict[str, str],
    unique: str,
) -> None:
    patient = f"rc-both-{unique}"
    fhir = FhirClient(fhir_base_url)
    first = _refer(service, fhir, patient, unique)
    stored = _cbo_sets(
        fhir_base_url, fhir, first, status="rejected", statusReason={"text": "waiting list full"}
    )
    ref = f"Task/{stored['id']}/_history/{stored['meta']['versionId']}"
    notification = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {
                "resource": {
                    "resourceType": "Parameters",
                    "parameter": [{"name": "type", "valueCode": "event-notification"}],
                }
            },
            {"fullUrl": f"{fhir_base_url}/{ref}", "request": {"method": "PUT", "url": ref}},
        ],
    }
    assert service.notifications is not None
    answer = httpx.post(
        f"http://127.0.0.1:{service.notifications.port}/fhir/notifications",
        json=notification,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    tasks = wait_for(
        lambda: (found := _referral_tasks(fhir, patient)) and len(found) >= 2 and found,
        60.0,
        "the next candidate",
    )

    assert service.reconciler is not None
    service.reconciler.poll_once("test")  # finds the rejection too: already published

    # The other way round: the poll finds the next organisation's acceptance first, then the
    # server's notification of that version arrives.
    second = tasks[1]
    accepted = _cbo_sets(fhir_base_url, fhir, second, status="accepted")
    assert service.reconciler.poll_once("test").published == 1
    late = json.loads(json.dumps(notification))
    late_ref = f"Task/{accepted['id']}/_history/{accepted['meta']['versionId']}"
    late["entry"][1] = {
        "fullUrl": f"{fhir_base_url}/{late_ref}",
        "request": {"method": "PUT", "url": late_ref},
    }
    answer = httpx.post(
        f"http://127.0.0.1:{service.notifications.port}/fhir/notifications",
        json=late,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert answer.status_code == 200 and "0 event(s)" in answer.text

    changed = _inputs(kafka_bootstrap, topics["topic_in"], STATUS_CHANGED)
    assert [e.data["status"] for e in changed if e.data["task"] == f"Task/{first.id}"] == [
        "rejected"
    ]
    assert [e.data["status"] for e in changed if e.data["task"] == f"Task/{second.id}"] == [
        "accepted"
    ]
    assert len(_referral_tasks(fhir, patient)) == 2
    fhir.close()


def _questionnaire_response(fhir_base_url: str, qid: str, patient: str) -> None:
    body = {
        "resourceType": "QuestionnaireResponse",
        "id": qid,
        "questionnaire": "http://hl7.org/fhir/us/sdoh-clinicalcare/Questionnaire/SDOHCC-QuestionnaireHungerVitalSign",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-12-04T10:00:00Z",
    }
    put = httpx.put(f"{fhir_base_url}/QuestionnaireResponse/{qid}", json=body, timeout=10)
    put.raise_for_status()


def test_a_poller_restarted_between_two_polls_misses_nothing_and_repeats_nothing(
    kafka_bootstrap: str, fhir_base_url: str, topics: dict[str, str], unique: str
) -> None:
    settings = load_settings(kafka_bootstrap=kafka_bootstrap, fhir_base_url=fhir_base_url)
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    published: list[CloudEvent] = []

    def poller() -> tuple[Reconciler, KafkaCursors, FhirClient]:
        cursors = KafkaCursors(broker, f"rc-cursor-{unique}", f"rc-{unique}.reconcile")
        fhir = build_fhir_client(settings)
        queries = (FollowedQuery("questionnaire-responses", "QuestionnaireResponse"),)
        made = Reconciler(fhir_pages(fhir), published.extend, cursors, leadership=cursors,
                          queries=queries)  # fmt: skip

        def leads() -> bool:
            cursors.tick(0.5)
            return cursors.leading()

        wait_for(leads, 60.0, "the poller to lead")
        return made, cursors, fhir

    def mine(events: Sequence[CloudEvent]) -> list[str]:
        return [e.data["questionnaire_response"] for e in events if unique in e.id]

    first, cursors, fhir = poller()
    first.poll_once()  # establishes the cursor on the server's newest change
    _questionnaire_response(fhir_base_url, f"a-{unique}", f"p-{unique}")
    first.poll_once()
    assert mine(published) == [f"QuestionnaireResponse/a-{unique}"]
    cursors.close()
    fhir.close()

    _questionnaire_response(fhir_base_url, f"b-{unique}", f"p-{unique}")  # while it is down
    second, cursors, fhir = poller()  # a new process: only the Kafka cursor survived
    second.poll_once()
    second.poll_once()
    assert mine(published) == [
        f"QuestionnaireResponse/a-{unique}",
        f"QuestionnaireResponse/b-{unique}",
    ]
    (event,) = [e for e in published if e.data["questionnaire_response"].endswith(f"b-{unique}")]
    assert (event.type, event.subject) == ("carecoord.assessment.completed", f"Patient/p-{unique}")
    cursors.close()
    fhir.close()


def test_a_discharge_encounter_written_by_the_ehr_starts_tcm(
    service: Service, fhir_base_url: str, unique: str
) -> None:
    patient = f"rc-tcm-{unique}"
    httpx.put(
        f"{fhir_base_url}/Patient/{patient}",
        json={"resourceType": "Patient", "id": patient},
        timeout=10,
    ).raise_for_status()

    def encounter(eid: str, disposition: str, end: str) -> None:
        body = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": f"Patient/{patient}"},
            "period": {"start": "2026-11-01T08:00:00Z", "end": end},
            "serviceProvider": {"reference": "Organization/springfield-general"},
            "hospitalization": {
                "dischargeDisposition": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition",
                            "code": disposition,
                        }
                    ]
                }
            },
        }
        put = httpx.put(f"{fhir_base_url}/Encounter/{eid}", json=body, timeout=10)
        put.raise_for_status()

    # A CCM patient: TCM's Tasks go to the care manager (carecoord.handlers.programs.tcm).
    enrolled = {
        "program": "CCM",
        "provider": f"Practitioner/dr-{unique}",
        "care_manager": f"Practitioner/cm-{unique}",
        "start": "2026-03-02",
    }
    service.publish([new_event("carecoord.patient.enrolled", patient, consented(enrolled))])
    # Transferred to another acute hospital first (another date): no TCM from that one.
    encounter(f"transfer-{unique}", "other-hcf", "2026-11-20T10:00:00Z")
    assert service.reconciler is not None
    service.reconciler.poll_once("test")
    encounter(f"home-{unique}", "home", "2026-12-04T15:00:00Z")
    service.reconciler.poll_once("test")
    fhir = FhirClient(fhir_base_url)

    def tcm_tasks() -> list[Any] | None:
        found = [
            tk
            for tk in fhir.search("Task", {"patient": f"Patient/{patient}"})
            if tk.get_resource_type() == "Task"
            and tk.focus is not None
            and str(tk.focus.reference).startswith("EpisodeOfCare/")
        ]
        return found if len(found) >= 3 else None

    tasks = wait_for(tcm_tasks, 60.0, "the TCM Tasks")
    episodes = [
        r
        for r in fhir.search("EpisodeOfCare", {"patient": f"Patient/{patient}"})
        if r.get_resource_type() == "EpisodeOfCare"
        and any(i.system == EPISODE_ID for i in r.identifier or [])
    ]
    assert len(episodes) == 1  # one discharge started TCM, the transfer did not
    assert {str(tk.focus.reference) for tk in tasks} == {f"EpisodeOfCare/{episodes[0].id}"}
    assert str(episodes[0].period.start) == "2026-12-04"
    fhir.close()


def test_several_instances_poll_once_between_them_and_a_follower_takes_over(
    kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> None:
    settings = load_settings(kafka_bootstrap=kafka_bootstrap, fhir_base_url=fhir_base_url)
    # A short session so the departed leader's partition moves on sooner (a speed-up only).
    connection = KafkaConnection(
        bootstrap=kafka_bootstrap, session_timeout_ms=6000, heartbeat_interval_ms=1000
    )
    broker = KafkaBroker(connection)
    fhir = build_fhir_client(settings)
    searched: list[str] = []

    def pages(rtype: str, params: Sequence[tuple[str, str]]) -> Iterator[Any]:
        searched.append(rtype)
        return fhir_pages(fhir)(rtype, params)

    members = [
        KafkaCursors(broker, f"rc-multi-{unique}", f"rc-multi-{unique}.reconcile") for _ in range(2)
    ]
    pollers = [
        Reconciler(
            pages, lambda events: None, m, leadership=m, queries=(FollowedQuery("e", "Encounter"),)
        )
        for m in members
    ]

    stops = [threading.Event() for _ in members]

    def keep_member(member: KafkaCursors, stop: threading.Event) -> None:
        while not stop.is_set():  # what each instance's poller loop does: its own thread
            member.tick(0.3)
        member.close()

    threads = [
        threading.Thread(target=keep_member, args=(m, stop), daemon=True)
        for m, stop in zip(members, stops, strict=True)
    ]
    for thread in threads:
        thread.start()

    def one_leads() -> bool:
        return sum(m.leading() for m in members) == 1

    wait_for(one_leads, 60.0, "exactly one of the two instances to lead")
    reports = [p.poll_once() for p in pollers]
    assert sorted(r.skipped for r in reports) == [False, True]
    assert searched == ["Encounter"]  # one search between the two instances

    n = next(i for i, m in enumerate(members) if m.leading())
    stops[n].set()  # that instance stops: the other one leads
    threads[n].join(30)
    follower = members[1 - n]
    wait_for(follower.leading, 60.0, "the remaining instance to lead")
    stops[1 - n].set()
    threads[1 - n].join(30)
    fhir.close()
