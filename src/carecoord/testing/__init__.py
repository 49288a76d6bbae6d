"""carecoord's test kit: run handlers without a Kafka broker or a FHIR server.

    from carecoord.testing import InMemoryFhir, events, run_handler

    fhir = InMemoryFhir()                          # a FhirReader + transaction apply
    fhir.put({"resourceType": "Patient", "id": "p1"})
    run = run_handler(spec, events.patient_enrolled("p1"), fhir=fhir, config={"due_days": 3})
    run.effects.emits                              # what the handler returned
    run.fhir.all("Task")                           # the FHIR state after its transaction

    run = run_events(HANDLERS, events.patient_enrolled("p1"), events.outreach_attempted("p1"))
    run.emitted, run.dead_letters, run.fhir        # through the real HandlerProcessor

`InMemoryFhir` is checked against a real FHIR server by the same contract suite
(tests/contract/test_fhir_contract.py), as `carecoord.events.memory.InMemoryBroker` is against a
real broker. For the whole runtime in memory, use `InMemoryBroker` with `EventRuntime`.
"""

from __future__ import annotations

from carecoord.testing import events
from carecoord.testing.fhir import InMemoryFhir
from carecoord.testing.run import NOW, EventsRun, HandlerRun, run_events, run_handler

__all__ = ["NOW", "EventsRun", "HandlerRun", "InMemoryFhir", "events", "run_events", "run_handler"]
