"""examples/fhir_subscription.py end to end: the Subscription is created on the embedded FHIR
server, which then posts real R4 Backport notifications to carecoord's notification listener
when an organisation rejects a referral Task; the referral moves to the next organisation."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carecoord.core.envelope import new_event
from carecoord.directory.hsds import import_directory
from carecoord.fhir.client import FhirClient
from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of
from carecoord.service.app import Service
from carecoord.settings import load_settings
from support.referrals import patient_referral_tasks as _referral_tasks
from support.waiting import wait_for

pytestmark = pytest.mark.integration

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from fhir_subscription import register, subscription  # noqa: E402

SAMPLE = Path(__file__).parents[2] / "examples" / "directory" / "springfield-hsds.json"
TOKEN = "example-subscription-token"


def test_the_subscription_is_a_valid_r4_resource_and_needs_a_token() -> None:
    from fhir.resources.R4B.subscription import Subscription

    sub = subscription("https://carecoord.example.org/fhir/notifications", "s3cret")
    Subscription.model_validate(sub)
    assert sub["channel"]["header"] == ["Authorization: Bearer s3cret"]
    with pytest.raises(ValueError):
        subscription("https://x.example/fhir/notifications", "")


@pytest.fixture
def service(kafka_bootstrap: str, fhir_base_url: str, unique: str) -> Iterator[Service]:
    with FhirClient(fhir_base_url) as client:
        import_directory(client, json.loads(SAMPLE.read_text()))
    settings = load_settings(
        kafka_bootstrap=kafka_bootstrap, fhir_base_url=fhir_base_url,
        handlers_enabled=["enrolment", "referrals"], health_port=0, health_host="127.0.0.1",
        handlers={"referrals": {"organization": "Organization/practice",
                                "practice_phone": "+1 555 0100"}},
        notifications_enabled=True, notifications_token=TOKEN, notifications_port=0,
        sweeper_interval=0, topic_in=f"sub-in-{unique}", topic_out=f"sub-out-{unique}",
        topic_dlq=f"sub-dlq-{unique}", group_id=f"sub-{unique}",
        kafka_options={"session_timeout_ms": 4000, "heartbeat_interval_ms": 1000},
    )  # fmt: skip
    svc = Service(settings)
    thread = threading.Thread(target=svc.run, daemon=True)
    thread.start()
    wait_for(svc.ready, 60.0, "the service to be ready")
    yield svc
    svc.request_stop()
    thread.join(30)


@pytest.mark.skipif(
    bool(os.environ.get("CARECOORD_FHIR_BASE_URL")),
    reason="defines a SubscriptionTopic the embedded server's way (each server names its own)",
)
def test_fhir_server_notifications_close_the_loop(
    service: Service, fhir_base_url: str, unique: str
) -> None:
    from sekmet.subscriptions import backport

    # The embedded server's topic for Task changes (a server-specific step).
    topic = backport.topic_basic(
        f"carecoord-task-{unique}", "Task changed", "A Task was updated", "Task", "true",
        [("code", "Task")], interactions=("update",),
    )  # fmt: skip
    httpx.put(f"{fhir_base_url}/Basic/{topic['id']}", json=topic, timeout=30).raise_for_status()
    url = next(e["valueUri"] for e in topic["extension"] if e["url"].endswith(".url"))
    assert service.notifications is not None
    endpoint = f"http://127.0.0.1:{service.notifications.port}/fhir/notifications"
    sub_id = register(fhir_base_url, endpoint, TOKEN, topic=url)
    try:
        patient = f"sub-{unique}"
        service.publish([
            new_event("carecoord.patient.enrolled", patient,
                      {"program": "CCM", "provider": "Practitioner/dr-okafor",
                       "care_manager": f"Practitioner/cm-{unique}", "start": "2026-11-02"}),
            new_event("carecoord.sdoh.need-identified", patient,
                      {"domain": "food-insecurity", "postal_code": "62701",
                       "consent_to_contact": True}),
        ])  # fmt: skip
        fhir = FhirClient(fhir_base_url)
        (first,) = wait_for(lambda: _referral_tasks(fhir, patient), 60.0, "the referral Task")
        rejected = to_json(first)
        rejected["status"] = "rejected"
        rejected["statusReason"] = {"text": "waiting list full"}
        # the organisation's update; the FHIR server notifies carecoord by itself
        httpx.put(f"{fhir_base_url}/Task/{first.id}", json=rejected, timeout=30).raise_for_status()
        tasks = wait_for(
            lambda: (found := _referral_tasks(fhir, patient)) and len(found) >= 2 and found,
            90.0, "the second referral Task (after the server's notification)",
        )  # fmt: skip
        assert [attempt_of(t).number for t in tasks] == [1, 2]  # type: ignore[union-attr]
        assert tasks[1].status == "requested"
    finally:
        httpx.delete(f"{fhir_base_url}/Subscription/{sub_id}", timeout=30)
