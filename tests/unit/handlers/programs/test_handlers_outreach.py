"""Outreach attempts and escalation: one Communication per attempt event, exactly one escalation
per request after N unanswered attempts, none for answered or declined outreach."""

from __future__ import annotations

import pytest

from carecoord.errors import HandlerError
from carecoord.handlers.programs import care_tasks, enrolment, outreach
from support.care_management import Runner, attempted, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *care_tasks.HANDLERS]
CONFIG = {"lead_care_manager": "Practitioner/lead"}


def _enrolled(config: dict | None = None) -> Runner:
    run = Runner(SPECS, {**CONFIG, **(config or {})})
    run.run(enrolled("p1", care_manager="Practitioner/cm1"))
    return run


def _request(run: Runner, channel: str = "phone") -> dict:
    [cr] = [r for r in run.fhir.all("CommunicationRequest") if r["medium"][0]["text"] == channel]
    return cr


def test_three_unanswered_attempts_escalate_exactly_once() -> None:
    run = _enrolled()
    for n, outcome in enumerate(["no-answer", "voicemail", "no-answer", "no-answer"]):
        run.run(attempted("p1", n, outcome))
        run.run(attempted("p1", n, outcome))  # redelivered
    comms = run.fhir.all("Communication")
    assert len(comms) == 4
    assert {c["status"] for c in comms} == {"not-done"}
    assert {c["statusReason"]["coding"][0]["code"] for c in comms} == {"recipient-unavailable"}
    request = _request(run)
    [task] = run.fhir.tasks("outreach-escalation")
    assert task["priority"] == "urgent" and task["intent"] == "order"
    assert task["focus"] == {"reference": f"CommunicationRequest/{request['id']}"}
    assert task["basedOn"] == request["basedOn"]
    assert task["owner"] == {"reference": "Practitioner/lead"}
    assert request["status"] == "active"  # the original request is kept
    sms = _request(run, "sms")
    assert sms["status"] == "active" and sms["priority"] == "urgent"
    # a redelivered event re-announces what it emitted, under the same id (consumers dedupe on it)
    by_id = {e.id: e for e in run.emitted if e.type == "carecoord.outreach.escalated"}
    assert len(by_id) == 1
    (escalated,) = by_id.values()
    assert escalated.data["outreach"] == f"CommunicationRequest/{request['id']}"
    assert escalated.subject == "Patient/p1"


def test_two_unanswered_attempts_do_not_escalate() -> None:
    run = _enrolled()
    run.run(attempted("p1", 0, "no-answer"))
    run.run(attempted("p1", 1, "voicemail"))
    run.run(attempted("p1", 2, "wrong-number"))
    assert run.fhir.tasks("outreach-escalation") == []
    [verify] = run.fhir.tasks("verify-contact-details")
    assert verify["owner"] == {"reference": "Practitioner/cm1"}
    assert run.emitted == []


def test_escalation_owner_can_be_the_provider() -> None:
    run = _enrolled({"escalation_owner": "provider", "max_unanswered": 2})
    run.run(attempted("p1", 0, "no-answer"))
    run.run(attempted("p1", 1, "no-answer"))
    [task] = run.fhir.tasks("outreach-escalation")
    assert task["owner"] == {"reference": "Practitioner/doc"}


def test_an_answered_attempt_completes_the_request_and_closes_the_escalation() -> None:
    run = _enrolled()
    for n in range(3):
        run.run(attempted("p1", n, "no-answer"))
    run.run(attempted("p1", 5, "answered", channel="sms"))
    assert {r["status"] for r in run.fhir.all("CommunicationRequest")} == {"completed"}
    [task] = run.fhir.tasks("outreach-escalation")
    assert task["status"] == "cancelled"
    assert task["statusReason"]["text"]
    answered = [c for c in run.fhir.all("Communication") if c["status"] == "completed"]
    assert len(answered) == 1 and "statusReason" not in answered[0]
    # later unanswered attempts in the same month escalate nothing new
    run.run(attempted("p1", 6, "no-answer"))
    assert len(run.fhir.tasks("outreach-escalation")) == 1


def test_answered_outreach_is_never_escalated() -> None:
    run = _enrolled()
    run.run(attempted("p1", 0, "answered"))
    for n in range(1, 5):
        run.run(attempted("p1", n, "no-answer"))
    assert run.fhir.tasks("outreach-escalation") == []


def test_declined_stops_outreach_for_the_period_without_escalating() -> None:
    run = _enrolled()
    run.run(attempted("p1", 0, "declined"))
    for n in range(1, 5):
        run.run(attempted("p1", n, "no-answer"))
    assert _request(run)["status"] == "revoked"
    assert _request(run)["statusReason"]["coding"][0]["code"] == "patient-objection"
    assert run.fhir.tasks("outreach-escalation") == []


def test_do_not_contact_flag_stops_outreach() -> None:
    run = _enrolled()
    run.run(attempted("p1", 0, "no-answer", do_not_contact=True))
    assert _request(run)["status"] == "revoked"


def test_attempts_count_per_period_from_the_events_own_date() -> None:
    run = _enrolled()
    run.run(attempted("p1", 0, "no-answer"))
    run.run(attempted("p1", 1, "no-answer"))
    # June has no outreach request yet: the attempt does not fall back to May's
    with pytest.raises(HandlerError):
        run.run(attempted("p1", 2, "no-answer", at="2024-06-02T09:00:00Z"))
    assert run.fhir.tasks("outreach-escalation") == []


def test_an_attempt_naming_its_request_is_based_on_it() -> None:
    run = _enrolled()
    cr = _request(run)
    run.run(attempted("p1", 0, "no-answer", outreach=f"CommunicationRequest/{cr['id']}"))
    [comm] = run.fhir.all("Communication")
    assert comm["basedOn"] == [{"reference": f"CommunicationRequest/{cr['id']}"}]


def test_a_patient_with_a_64_character_id_is_escalated_like_any_other() -> None:
    """FHIR ids may be 64 characters; the business key "<patient>:CCM:<month>" then exceeds the
    identifier's 64 and is hashed. The hash used to replace the key's end, which the month's
    request lookup and the alternative channel read back, so such a patient was never found
    or escalated."""
    pid = "p" * 30 + "-" + "0123456789abcdef0123456789abcdef0"  # 64 characters
    assert len(pid) == 64
    run = Runner(SPECS, CONFIG)
    run.run(enrolled(pid, care_manager="Practitioner/cm1"))
    for n in range(3):
        run.run(attempted(pid, n, "no-answer"))
    assert len(run.fhir.tasks("outreach-escalation")) == 1
    sms = _request(run, "sms")
    assert sms["status"] == "active" and sms["subject"] == {"reference": f"Patient/{pid}"}
    [escalated] = [e for e in run.emitted if e.type == "carecoord.outreach.escalated"]
    assert escalated.data["alternative_channel"] == "sms"
