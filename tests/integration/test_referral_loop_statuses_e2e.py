"""The referral loop on every status a community organisation may set, end to end.

The Gravity SDOH IG's status table ("Set By", HL7/fhir-sdoh-clinicalcare input/pagecontent/
StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md, encoded in
carecoord.caremodel.workflow.SET_BY) lets the referral target (the Task's owner) set accepted,
rejected, in-progress, on-hold, completed, failed and cancelled. Each one runs here through the
running service, the real broker and the real FHIR server, by both ways a CBO's change reaches
carecoord:

- kafka: an integration publishes `carecoord.referral.status-changed` (set_by owner);
- notification: the CBO updates the Task on the FHIR server and the server's rest-hook
  notification (id-only, a hint) reaches the service's listener, which re-reads the Task.

What the care manager sees afterwards is asserted: the referral Task, the ServiceRequest, the
CarePlan activity, the next candidate, the manual-referral Task, the review Task, and the
announcements on the outbound topic.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecoord.caremodel import terminology as t
from carecoord.caremodel.profiles import SDOHCC_OBSERVATION_ENROLLMENT
from carecoord.caremodel.workflow import SET_BY
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.enrolment import consented
from support.waiting import wait_for

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
TOKEN = "loop-statuses-token"
# Two attempts, then the care manager refers by hand: both closing outcomes in one test.
MAX_ATTEMPTS = 2

# The statuses the IG lets the referral target set, each reached the way its state diagram
# allows (requested -> accepted -> in-progress ...; REFERRAL_EXTRA adds accepted -> completed).
CBO_STEPS: dict[str, tuple[str, ...]] = {
    "accepted": ("accepted",),
    "in-progress": ("accepted", "in-progress"),
    "on-hold": ("accepted", "in-progress", "on-hold"),
    "rejected": ("rejected",),
    "failed": ("accepted", "in-progress", "failed"),
    "cancelled": ("accepted", "cancelled"),
    "completed": ("accepted", "in-progress", "completed"),
}
MOVES_ON = {"rejected", "failed", "cancelled"}  # next candidate, then a manual referral
WITH_REASON = {"rejected", "failed", "cancelled", "on-hold"}  # statusReason.text expected
PATHS = ("kafka", "notification")


def test_the_steps_cover_exactly_the_statuses_the_ig_lets_the_cbo_set() -> None:
    assert set(CBO_STEPS) == {status for status, who in SET_BY.items() if "owner" in who}


@dataclass
class Loop:
    service: Service
    fhir: FhirClient
    fhir_base_url: str
    broker: KafkaBroker
    topic_out: str
    token: str

    @property
    def url(self) -> str:
        assert self.service.notifications is not None
        return f"http://127.0.0.1:{self.service.notifications.port}/fhir/notifications"


@pytest.fixture(scope="module")
def loop(kafka_bootstrap: str, fhir_base_url: str) -> Iterator[Loop]:
    token = uuid.uuid4().hex[:10]
    with FhirClient(fhir_base_url) as client:  # idempotent: other modules import it too
        assert import_directory(client, json.loads(SAMPLE.read_text())).problems == []
    topics = {
        "topic_in": f"ls-in-{token}",
        "topic_out": f"ls-out-{token}",
        "topic_dlq": f"ls-dlq-{token}",
        "group_id": f"ls-{token}",
    }
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap,
        fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "referrals"],
        handlers={
            "referrals": {
                "organization": "Organization/practice-ls",
                "practice_phone": "+1 217 555 0100",
                "max_attempts": MAX_ATTEMPTS,
            }
        },
        health_port=0,
        health_host="127.0.0.1",
        notifications_port=0,
        sweeper_interval=0,
        notifications_enabled=True,
        notifications_token=TOKEN,
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
        **topics,
    )
    svc = Service(settings)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    fhir = FhirClient(fhir_base_url)
    broker = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap))
    yield Loop(svc, fhir, fhir_base_url, broker, topics["topic_out"], token)
    svc.request_stop()
    thread.join(30)
    fhir.close()


def _finished(service: Service) -> tuple[float, float]:
    """(processed, dead-lettered) events so far, from the service's own metrics."""
    totals = {"carecoord_events_processed": 0.0, "carecoord_events_dead_lettered": 0.0}
    for metric in service.metrics.registry.collect():
        if metric.name in totals:
            totals[metric.name] += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return totals["carecoord_events_processed"], totals["carecoord_events_dead_lettered"]


class Patient:
    """One patient's referral, driven by the CBO through one of the two paths."""

    def __init__(self, loop: Loop, path: str, name: str) -> None:
        self.loop = loop
        self.path = path
        self.id = name
        self.care_manager = f"Practitioner/cm-{name}"
        self.expected = _finished(loop.service)[0]

    def publish(self, *events: CloudEvent) -> None:
        self.loop.service.publish(list(events))
        self.expected += len(events)
        self.wait()

    def wait(self) -> None:
        def done() -> bool:
            processed, dead = _finished(self.loop.service)
            assert dead == 0, "an event was dead-lettered"
            return processed >= self.expected

        wait_for(done, 60.0, f"{self.expected:.0f} events to be processed")

    def refer(self) -> Any:
        enrolled = {
            "program": "CCM",
            "provider": f"Practitioner/dr-{self.id}",
            "care_manager": self.care_manager,
            "start": "2026-03-02",
        }
        need = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
        self.publish(
            new_event("carecoord.patient.enrolled", self.id, consented(enrolled)),
            new_event("carecoord.sdoh.need-identified", self.id, need),
        )
        (first,) = self.referral_tasks()
        return first

    def cbo_sets(self, task: Any, status: str) -> None:
        """The organisation that owns `task` sets `status`, by this patient's path."""
        if self.path == "kafka":
            data = {"task": f"Task/{task.id}", "status": status, "set_by": "owner"}
            self.publish(new_event("carecoord.referral.status-changed", self.id, data))
            return
        current = to_json(self.loop.fhir.read("Task", str(task.id)))
        current["status"] = status
        if status in WITH_REASON:
            current["statusReason"] = {"text": f"{status} by the organisation"}
        if status == "completed":
            current["output"] = self._resulting_activity()
        put = httpx.put(f"{self.loop.fhir_base_url}/Task/{task.id}", json=current, timeout=10)
        put.raise_for_status()
        stored = to_json(self.loop.fhir.read("Task", str(task.id)))
        answer = httpx.post(
            self.loop.url,
            json=_id_only_notification(self.loop.fhir_base_url, stored),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        self.expected += 1  # the notification became one status-changed event
        self.wait()

    def _resulting_activity(self) -> list[dict[str, Any]]:
        """What the CBO did, as the IG has it: an SDOHCC Procedure and its code."""
        procedure = httpx.post(
            f"{self.loop.fhir_base_url}/Procedure",
            json={
                "resourceType": "Procedure",
                "status": "completed",
                "code": {"coding": [{"system": t.SNOMED, "code": "467771000124109"}]},
                "subject": {"reference": f"Patient/{self.id}"},
            },
            timeout=10,
        )
        procedure.raise_for_status()
        self.procedure = f"Procedure/{procedure.json()['id']}"
        # SDOHCC STU 3: the individual's enrollment in the CBO's program, an SDOHCC Observation
        # Program Enrollment Status (input/fsh/profiles/SDOHCCObservationEnrollmentStatus.fsh
        # @6604b7a) in Task.output[AdditionalContent].
        enrollment = httpx.post(
            f"{self.loop.fhir_base_url}/Observation",
            json={
                "resourceType": "Observation",
                "meta": {"profile": [SDOHCC_OBSERVATION_ENROLLMENT]},
                "status": "final",
                "category": [
                    {"coding": [{"system": t.US_CORE_CATEGORY_SYSTEM, "code": "sdoh"}]},
                    t.ENROLLMENT_CATEGORY.concept_json(),
                ],
                "code": {"coding": [{"system": t.SNOMED, "code": "481021000124104"}]},
                "subject": {"reference": f"Patient/{self.id}"},
                "effectiveDateTime": "2026-03-20T10:00:00Z",
                "valueCodeableConcept": {
                    "coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": "enrolled"}]
                },
            },
            timeout=10,
        )
        enrollment.raise_for_status()
        self.enrollment = f"Observation/{enrollment.json()['id']}"
        return [
            {
                "type": t.SDOHCC_ADDITIONAL_CONTENT.concept_json(),
                "valueReference": {"reference": self.enrollment},
            },
            {
                "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
                "valueReference": {"reference": self.procedure},
            },
            {
                "type": t.SDOHCC_RESULTING_ACTIVITY.concept_json(),
                "valueCodeableConcept": {
                    "coding": [{"system": t.SNOMED, "code": "467771000124109"}]
                },
            },
        ]

    # -- what the care manager sees --------------------------------------------------------

    def _of(self, rtype: str, param: str = "subject") -> list[Any]:
        found = self.loop.fhir.search(rtype, {param: f"Patient/{self.id}"})
        return [r for r in found if r.get_resource_type() == rtype]

    def referral_tasks(self) -> list[Any]:
        found = [tk for tk in self._of("Task", "patient") if attempt_of(tk) is not None]
        return sorted(found, key=lambda tk: attempt_of(tk).number)  # type: ignore[union-attr]

    def work_tasks(self, code: t.Code) -> list[Any]:
        return [tk for tk in self._of("Task", "patient") if t.concept_has(tk.code, code)]

    def service_request(self) -> Any:
        (sr,) = self._of("ServiceRequest")
        return sr

    def goal(self) -> Any:
        # the test server ignores Goal search parameters: filter here
        (goal,) = [g for g in self._of("Goal") if g.subject.reference == f"Patient/{self.id}"]
        return goal

    def activity(self, sr: Any) -> dict[str, Any]:
        (plan,) = self._of("CarePlan")
        (found,) = [
            a
            for a in to_json(plan).get("activity", [])
            if a.get("reference", {}).get("reference") == f"ServiceRequest/{sr.id}"
        ]
        return found

    def announced(self, event_type: str) -> list[CloudEvent]:
        records = self.loop.broker.read_topic(self.loop.topic_out, timeout=3.0)
        events = [CloudEvent.from_json_bytes(r.value) for r in records]
        return [e for e in events if e.type == event_type and e.subject == f"Patient/{self.id}"]


def _id_only_notification(fhir_base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    """What an R4 Subscriptions Backport server posts for an id-only Task subscription."""
    ref = f"Task/{task['id']}/_history/{task['meta']['versionId']}"
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/cbo-tasks"}},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": "1"},
                    {"name": "focus", "valueReference": {"reference": ref}},
                ],
            },
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": status},
            {"fullUrl": f"{fhir_base_url}/{ref}", "request": {"method": "PUT", "url": ref}},
        ],
    }


@pytest.fixture
def patient(loop: Loop) -> Callable[[str, str], Patient]:
    def make(path: str, status: str) -> Patient:
        return Patient(loop, path, f"ls-{path[:5]}-{status[:6]}-{uuid.uuid4().hex[:8]}")

    return make


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("status", sorted(CBO_STEPS))
def test_the_loop_follows_every_status_the_cbo_may_set(
    patient: Callable[[str, str], Patient], path: str, status: str
) -> None:
    p = patient(path, status)
    first = p.refer()
    assert first.status == "requested"
    assert p.service_request().performer[0].reference == first.owner.reference
    for step in CBO_STEPS[status]:
        p.cbo_sets(first, step)

    tasks = p.referral_tasks()
    assert tasks[0].status == status
    if status in WITH_REASON:
        # the CBO's reason, or carecoord's default text when the event gave none
        assert tasks[0].statusReason.text
    if status in MOVES_ON:
        _assert_moves_on_then_manual(p, first, tasks, status)
    elif status == "completed":
        _assert_completed(p, first, tasks)
    else:
        _assert_still_open(p, first, tasks)


def _assert_still_open(p: Patient, first: Any, tasks: list[Any]) -> None:
    """accepted / in-progress / on-hold: the organisation has it; nothing else moves."""
    assert len(tasks) == 1
    sr = p.service_request()
    assert sr.status == "active" and sr.performer[0].reference == first.owner.reference
    assert "outcomeReference" not in p.activity(sr)
    assert p.work_tasks(t.TASK_MANUAL_REFERRAL) == []
    assert p.work_tasks(t.TASK_REVIEW_REFERRAL_OUTCOME) == []
    assert [e.data["attempt"] for e in p.announced("carecoord.referral.created")] == [1]
    assert p.announced("carecoord.referral.unmatched") == []


def _assert_completed(p: Patient, first: Any, tasks: list[Any]) -> None:
    """The ServiceRequest is completed, the CarePlan activity carries what the CBO did, and
    the care manager reviews the Goal (carecoord never marks it achieved)."""
    assert len(tasks) == 1
    sr = p.service_request()
    assert sr.status == "completed"
    activity = p.activity(sr)
    outcomes = [o["reference"] for o in activity["outcomeReference"]]
    concepts = activity["outcomeCodeableConcept"]
    if p.path == "notification":  # the CBO reported a Procedure, a code and enrollment
        assert outcomes == [p.procedure, p.enrollment, f"Task/{first.id}"]
        assert concepts[0]["coding"][0]["code"] == "467771000124109"
        assert concepts[1]["coding"][0]["code"] == "enrolled"  # SDOHCC STU 3
    else:  # the integration reported the status only
        assert outcomes == [f"Task/{first.id}"]
        assert concepts == [{"text": "Community referral completed"}]
    goal = p.goal()
    assert goal.lifecycleStatus == "active"
    assert t.concept_has(goal.achievementStatus, t.GOAL_IN_PROGRESS)
    (review,) = p.work_tasks(t.TASK_REVIEW_REFERRAL_OUTCOME)
    assert review.status == "requested" and review.owner.reference == p.care_manager
    assert review.focus.reference == f"Goal/{goal.id}"
    assert review.basedOn[0].reference == f"ServiceRequest/{sr.id}"
    inputs = [i.valueReference.reference for i in review.input if i.valueReference]
    assert f"Task/{first.id}" in inputs
    if p.path == "notification":
        assert p.procedure in inputs and p.enrollment in inputs
    assert p.work_tasks(t.TASK_MANUAL_REFERRAL) == []
    assert [e.data["attempt"] for e in p.announced("carecoord.referral.created")] == [1]
    assert p.announced("carecoord.referral.unmatched") == []


def _assert_moves_on_then_manual(p: Patient, first: Any, tasks: list[Any], status: str) -> None:
    """rejected / failed / cancelled by the CBO: the next candidate gets attempt 2; when its
    organisation closes it the same way, none is left (max_attempts) and the care manager
    gets the referral to make by hand."""
    assert [attempt_of(tk).number for tk in tasks] == [1, 2]  # type: ignore[union-attr]
    second = tasks[1]
    assert second.status == "requested"
    assert attempt_of(second).service != attempt_of(first).service  # type: ignore[union-attr]
    sr = p.service_request()
    assert sr.status == "active" and sr.performer[0].reference == second.owner.reference
    created = p.announced("carecoord.referral.created")
    assert [e.data["attempt"] for e in created] == [1, 2]
    assert created[1].data["organization"] == second.owner.reference
    assert p.work_tasks(t.TASK_MANUAL_REFERRAL) == []

    for step in CBO_STEPS[status]:
        p.cbo_sets(second, step)
    tasks = p.referral_tasks()
    assert [tk.status for tk in tasks] == [status, status]
    (manual,) = p.work_tasks(t.TASK_MANUAL_REFERRAL)
    assert manual.owner.reference == p.care_manager
    assert manual.focus.reference == f"ServiceRequest/{sr.id}"
    assert t.concept_has(manual.businessStatus, t.BUSINESS_NO_MATCH)
    (unmatched,) = p.announced("carecoord.referral.unmatched")
    assert unmatched.data["reason"] == "all-candidates-declined"
    assert sorted(unmatched.data["tried"]) == sorted(
        str(attempt_of(tk).service)  # type: ignore[union-attr]
        for tk in tasks
    )
    assert len(p.announced("carecoord.referral.created")) == 2  # no third attempt
    assert "outcomeReference" not in p.activity(p.service_request())
    assert p.work_tasks(t.TASK_REVIEW_REFERRAL_OUTCOME) == []


def test_who_cancelled_is_read_from_carecoords_own_record(
    patient: Callable[[str, str], Patient],
) -> None:
    """SDOHCC's status table (HL7/fhir-sdoh-clinicalcare @6604b7a input/pagecontent/
    StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md): cancelled is set by the
    "Requester or Referral Target". The CBO cancels the Task on the real FHIR server and the
    server's notification (which cannot say who cancelled: no set_by) refers the next
    candidate; carecoord's own cancellation, echoed back the same way, changes nothing more."""
    cbo = patient("notification", "cancelled")
    first = cbo.refer()
    cbo.cbo_sets(first, "cancelled")  # PUT on the server, then the id-only notification
    tasks = cbo.referral_tasks()
    assert [(attempt_of(tk).number, tk.status) for tk in tasks] == [  # type: ignore[union-attr]
        (1, "cancelled"),
        (2, "requested"),
    ]
    assert cbo.service_request().status == "active"
    assert [e.data["attempt"] for e in cbo.announced("carecoord.referral.created")] == [1, 2]

    own = patient("notification", "own-cancel")
    first = own.refer()
    data = {"task": f"Task/{first.id}", "status": "cancelled", "set_by": "requester",
            "reason": "patient declined"}  # fmt: skip
    own.publish(new_event("carecoord.referral.status-changed", own.id, data))
    assert own.service_request().status == "revoked"
    own.cbo_sets(own.referral_tasks()[0], "cancelled")  # the echo: same status, re-notified
    assert [tk.status for tk in own.referral_tasks()] == ["cancelled"]
    assert own.service_request().status == "revoked"
    assert [e.data["attempt"] for e in own.announced("carecoord.referral.created")] == [1]


def test_the_referral_source_task_search_of_sdohcc_stu3_works_on_the_server(
    patient: Callable[[str, str], Patient],
) -> None:
    """HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/instances/SDOHCC-ReferralSource.fsh: Task
    searched by _id, code, patient, requester, status and focus (SHALL) with
    _include=Task:focus (SHALL). The embedded server declares them and answers with the Task
    and its ServiceRequest, which is the one search the status-changed handler makes."""
    from carecoord.fhir.capabilities import declares_include, declares_search_param

    p = patient("kafka", "search")
    for name in ("_id", "code", "patient", "requester", "status", "focus"):
        assert declares_search_param(p.loop.fhir, "Task", name)
    assert declares_include(p.loop.fhir, "Task", "Task:focus")
    first = p.refer()
    sr = p.service_request()
    found = p.loop.fhir.search(
        "Task",
        [
            ("_id", str(first.id)),
            ("code", f"{t.TASK_FULFILL.system}|{t.TASK_FULFILL.code}"),
            ("patient", f"Patient/{p.id}"),
            ("requester", first.requester.reference),
            ("status", "requested"),
            ("focus", f"ServiceRequest/{sr.id}"),
            ("_include", "Task:focus"),
        ],
    )
    assert sorted(f"{r.get_resource_type()}/{r.id}" for r in found) == sorted(
        [f"Task/{first.id}", f"ServiceRequest/{sr.id}"]
    )


def _capacity_service(loop: Loop, name: str, capacity: str | None, postal: str) -> str:
    """A CBO's service on the FHIR server reporting its capacity status (SDOHCC STU 3), covering
    only `postal` (so no other test's patient can be referred to it)."""
    org = httpx.post(
        f"{loop.fhir_base_url}/Organization",
        json={"resourceType": "Organization", "name": name, "active": True},
        timeout=10,
    )
    org.raise_for_status()
    status = {"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": capacity}]}
    reported = {"url": "capacityStatus", "valueCodeableConcept": status}
    service = httpx.post(
        f"{loop.fhir_base_url}/HealthcareService",
        json={
            "resourceType": "HealthcareService",
            "extension": [{"url": t.CAPACITY_STATUS_EXTENSION, "extension": [reported]}]
            if capacity
            else [],
            "active": True,
            "providedBy": {"reference": f"Organization/{org.json()['id']}"},
            "category": [
                {"coding": [{"system": t.SDOHCC_TEMPORARY_CODES, "code": "food-insecurity"}]}
            ],
            "name": name,
            "contained": [
                {"resourceType": "Location", "id": "area", "address": {"postalCode": postal}}
            ],
            "coverageArea": [{"reference": "#area"}],
        },
        timeout=10,
    )
    service.raise_for_status()
    return f"HealthcareService/{service.json()['id']}"


def test_capacity_status_on_the_server_orders_the_candidates(
    loop: Loop, patient: Callable[[str, str], Patient]
) -> None:
    """SDOHCC STU 3 capacity status (HL7/fhir-sdoh-clinicalcare @6604b7a input/fsh/extensions/
    SDOHCCExtensionHealthcareServiceCapacityStatus.fsh): a service reporting capacity is
    referred first, one reporting no capacity after every service of unknown capacity (the
    embedded server ignores the directory search's service-category: ranking filters)."""
    postal = f"9{uuid.uuid4().int % 10000:04d}"
    # Names in the opposite order, so the name (the last ordering key) cannot explain it.
    full = _capacity_service(loop, "AAA Pantry (full)", "no-capacity", postal)
    unknown = _capacity_service(loop, "MMM Pantry (says nothing)", None, postal)
    open_ = _capacity_service(loop, "ZZZ Pantry (open)", "capacity", postal)
    p = patient("kafka", "capacity")
    enrolled = {"program": "CCM", "provider": f"Practitioner/dr-{p.id}",
                "care_manager": p.care_manager, "start": "2026-03-02"}  # fmt: skip
    need = {"domain": "food-insecurity", "postal_code": postal, "consent_to_contact": True}
    p.publish(
        new_event("carecoord.patient.enrolled", p.id, consented(enrolled)),
        new_event("carecoord.sdoh.need-identified", p.id, need),
    )
    (first,) = p.referral_tasks()
    assert attempt_of(first).service == open_  # type: ignore[union-attr]
    p.cbo_sets(first, "rejected")
    second = p.referral_tasks()[1]
    assert attempt_of(second).service == unknown  # type: ignore[union-attr]
    p.cbo_sets(second, "rejected")  # max_attempts 2: the full one is never tried
    (manual,) = p.work_tasks(t.TASK_MANUAL_REFERRAL)
    assert t.concept_has(manual.businessStatus, t.BUSINESS_NO_MATCH)
    assert full not in [attempt_of(tk).service for tk in p.referral_tasks()]  # type: ignore[union-attr]
