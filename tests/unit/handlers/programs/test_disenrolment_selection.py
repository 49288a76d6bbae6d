"""What a disenrolment ends, decided on the patient's resources (no FHIR server): the program's
open outreach requests and the open Tasks of its plan, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.handlers.care.model import OUTREACH_REQUEST_ID, build
from carecoord.handlers.programs.disenrolment import requests_to_revoke, tasks_to_cancel

PLAN = "CarePlan/ccm"


def request(rid: str, key: str | None, status: str = "active", group: str | None = None) -> Any:
    body: dict[str, Any] = {"id": rid, "status": status, "subject": {"reference": "Patient/p1"}}
    if key is not None:
        body["identifier"] = [{"system": OUTREACH_REQUEST_ID, "value": key}]
    if group is not None:
        body["groupIdentifier"] = {"system": OUTREACH_REQUEST_ID, "value": group}
    return build("CommunicationRequest", body)


def ids(found: list[Any]) -> list[str]:
    return [r.id for r in found]


def test_the_programs_open_requests_are_revoked() -> None:
    found = [
        request("may", "p1:CCM:2024-05"),
        request("draft", "p1:CCM:2024-06", status="draft"),
        request("held", "p1:CCM:2024-04", status="on-hold"),
        request("done", "p1:CCM:2024-03", status="completed"),
        request("revoked", "p1:CCM:2024-02", status="revoked"),
        request("bhi", "p1:BHI:2024-05"),
        request("pccm", "p1:PCCM:2024-05"),  # a program whose name contains CCM
        request("sms", None, group="p1:CCM:2024-05"),  # the alternative channel of May's
        request("bhi-sms", None, group="p1:BHI:2024-05"),
        request("other", None),  # not carecoord's
    ]
    assert ids(requests_to_revoke(found, "CCM")) == ["may", "draft", "held", "sms"]
    assert ids(requests_to_revoke(found, "BHI")) == ["bhi", "bhi-sms"]


def task(
    tid: str,
    *,
    based_on: list[str] | None = None,
    status: str = "requested",
    focus: str | None = None,
    patient: str = "Patient/p1",
) -> Any:
    body: dict[str, Any] = {
        "id": tid,
        "status": status,
        "intent": "order",
        "for": {"reference": patient},
    }
    if based_on is not None:
        body["basedOn"] = [{"reference": b} for b in based_on]
    if focus is not None:
        body["focus"] = {"reference": focus}
    return build("Task", body)


def test_only_the_plans_open_tasks_are_cancelled() -> None:
    found = [
        task("review", based_on=[PLAN]),
        task("ready", based_on=["ServiceRequest/x", PLAN], status="ready"),
        task("done", based_on=[PLAN], status="completed"),
        task("cancelled", based_on=[PLAN], status="cancelled"),
        task("bhi", based_on=["CarePlan/bhi"]),
        task("referral", based_on=["ServiceRequest/ref1"]),
        task("nothing"),
        task("tcm", based_on=[PLAN], focus="EpisodeOfCare/e1"),  # TCM's reconciliation
        task("focused", based_on=[PLAN], focus="CarePlan/ccm"),
        task("other-patient", based_on=[PLAN], patient="Patient/p2"),
        build("CommunicationRequest", {"id": "cr", "status": "active"}),
    ]
    assert ids(tasks_to_cancel(found, "p1", PLAN)) == ["review", "ready", "focused"]


@pytest.mark.parametrize(
    "status", ["draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"]
)
def test_every_open_status_is_cancelled(status: str) -> None:
    assert ids(tasks_to_cancel([task("t", based_on=[PLAN], status=status)], "p1", PLAN)) == ["t"]
