"""An EHR integration publishing catalog events to carecoord's input topic.

The EHR knows when a patient is enrolled, when a care manager calls, how long they worked and what
a screening found; it says so as CloudEvents of the v1 catalog (README, "Event catalog"), keyed by
the patient id so one patient's events stay in order. Each event is checked against the catalog
before it is sent, so a mapping bug fails here rather than in the dead-letter topic.

    CARECOORD_KAFKA_BOOTSTRAP=localhost:9092 python examples/ehr_integration.py Patient-123

(tested in tests/integration/test_example_ehr_integration.py)
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from carecoord.core.catalog import INBOUND, parse_data
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection
from carecoord.events.producer import EventProducer

SOURCE = "urn:example:ehr"


def visit_events(
    patient_id: str, *, care_manager: str, provider: str, when: datetime
) -> list[CloudEvent]:
    """A new CCM patient: enrolment, the first call (answered), its time, a screening result.
    Ids are derived from the EHR's own keys, so re-sending after a failure is a no-op."""
    day = when.date().isoformat()
    events: list[tuple[str, str, dict[str, Any]]] = [
        ("carecoord.patient.enrolled", "enrolled",
         {"program": "CCM", "provider": provider, "care_manager": care_manager, "start": day,
          # the EHR's problem list (CCM: two or more chronic conditions) and the consent the
          # care manager documented (CMS: before CCM services start)
          "conditions": [f"Condition/htn-{patient_id}", f"Condition/t2d-{patient_id}"],
          "consent": {"date": day, "method": "verbal", "recorded_by": care_manager}}),
        ("carecoord.outreach.attempted", "call-1",
         {"channel": "phone", "outcome": "answered", "attempted_at": when.isoformat(),
          "by": care_manager, "duration_minutes": 18}),
        ("carecoord.time.logged", "time-1",
         {"program": "CCM", "minutes": 22, "activity": "initial care-plan call",
          "by": care_manager, "performed_at": (when + timedelta(minutes=20)).isoformat()}),
        ("carecoord.sdoh.need-identified", "sdoh-food",
         {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}),
    ]  # fmt: skip
    return [
        new_event(t, patient_id, data, id=f"ehr:{patient_id}:{key}", source=SOURCE, time=when)
        for t, key, data in events
    ]


def validate(events: list[CloudEvent]) -> None:
    """Raise MalformedEvent (naming the field, never its value) for an event the service would
    dead-letter."""
    for event in events:
        parse_data(event, INBOUND[event.type])


def publish(bootstrap: str, topic: str, events: list[CloudEvent]) -> None:
    validate(events)
    producer = KafkaBroker(KafkaConnection(bootstrap=bootstrap)).producer()
    try:
        EventProducer(producer, topic).publish(events)  # waits for the broker's acknowledgement
    finally:
        producer.close()


if __name__ == "__main__":
    patient = sys.argv[1] if len(sys.argv) > 1 else "example-1"
    events = visit_events(
        patient, care_manager="Practitioner/cm-rivera", provider="Practitioner/dr-okafor",
        when=datetime.now(UTC).replace(microsecond=0),
    )  # fmt: skip
    bootstrap = os.environ.get("CARECOORD_KAFKA_BOOTSTRAP", "localhost:9092")
    topic = os.environ.get("CARECOORD_TOPIC_IN", "carecoord.events")
    publish(bootstrap, topic, events)
    print(f"published {len(events)} events for Patient/{patient} to {topic}")
