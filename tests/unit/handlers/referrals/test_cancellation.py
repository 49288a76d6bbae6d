"""Who cancelled a referral Task, when the event does not say (`set_by` absent).

SDOHCC STU 3's status table (HL7/fhir-sdoh-clinicalcare @6604b7a input/pagecontent/
StructureDefinition-SDOHCC-TaskForReferralManagement-intro.md) has cancelled set by the
"Requester or Referral Target". carecoord is the requester and writes each of its own
cancellations with the ServiceRequest's `revoked`; any other cancellation is the community
organisation's, and the loop goes on to the next candidate as after a rejection."""

from __future__ import annotations

from typing import Any

from carecoord.fhir.models import to_json
from carecoord.handlers.referrals.handler import attempt_of, canceller
from carecoord.testing.fhir import InMemoryFhir
from support.referrals import referral_tasks, referred, status_changed


def cancelled(fhir: InMemoryFhir, task: Any, event_id: str, **data: Any) -> Any:
    return status_changed(fhir, task, "cancelled", event_id, **data)


def cbo_cancels_on_the_server(fhir: InMemoryFhir, task: Any) -> None:
    data = to_json(fhir.read("Task", str(task.id)))
    data.update(status="cancelled", statusReason={"text": "client moved away"})
    fhir.put(data)


def test_a_cancellation_on_the_server_carecoord_did_not_make_refers_the_next_candidate() -> None:
    fhir, first = referred()
    cbo_cancels_on_the_server(fhir, first)
    run = cancelled(fhir, first, "cbo-cancel")  # e.g. from the FHIR notification: no set_by
    assert run.emitted_types == ["carecoord.referral.created"]
    assert run.emitted[0].data["attempt"] == 2
    tasks = referral_tasks(fhir)
    assert [tk.status for tk in tasks] == ["cancelled", "requested"]
    assert attempt_of(tasks[1]).service != attempt_of(first).service  # type: ignore[union-attr]
    (sr,) = fhir.resources("ServiceRequest")
    assert sr.status == "active" and sr.performer[0].reference == tasks[1].owner.reference


def test_an_unattributed_cancellation_of_an_open_task_is_the_organisations() -> None:
    # Not yet cancelled on the server, so carecoord did not make it: recorded as the owner's.
    fhir, first = referred()
    run = cancelled(fhir, first, "integration-cancel", reason="Client moved")
    assert run.emitted_types == ["carecoord.referral.created"]
    tasks = referral_tasks(fhir)
    assert [tk.status for tk in tasks] == ["cancelled", "requested"]
    assert tasks[0].statusReason.text == "Client moved"
    assert fhir.resources("ServiceRequest")[0].status == "active"


def test_carecoords_own_cancellation_echoed_back_revokes_and_moves_nowhere() -> None:
    fhir, first = referred()
    own = cancelled(fhir, first, "cm-cancel", set_by="requester", reason="Patient declined")
    assert own.emitted == []
    (sr,) = fhir.resources("ServiceRequest")
    assert sr.status == "revoked"
    # The same cancellation comes back (a FHIR notification: no set_by): carecoord's own.
    echo = cancelled(fhir, first, "cm-cancel-echo")
    assert echo.emitted == []
    assert [tk.status for tk in referral_tasks(fhir)] == ["cancelled"]
    assert fhir.resources("ServiceRequest")[0].status == "revoked"


def test_canceller_reads_carecoords_record() -> None:
    assert canceller("cancelled", "revoked") == "requester"
    assert canceller("cancelled", "active") == "owner"
    assert canceller("accepted", "active") == "owner"
    assert canceller("accepted", "revoked") == "owner"  # not cancelled on the server yet
