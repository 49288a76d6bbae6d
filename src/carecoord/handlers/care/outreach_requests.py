"""A patient's outreach requests: the monthly CommunicationRequests (and their alternative-channel
follow-ups) carecoord keeps per program and month, how they are searched and picked, and the
work Task about one. Outreach, disenrolment, reassignment and the worklist share this view."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create
from carecoord.core.effects import Effects
from carecoord.core.handler import FhirReader
from carecoord.fhir.batch_reads import Search
from carecoord.fhir.models import to_json
from carecoord.handlers.care.model import (
    OUTREACH_ALTERNATIVE_ID,
    OUTREACH_REQUEST_ID,
    Month,
    build,
    identifier_value,
    patient_of,
    ref_of,
    reference_str,
)


def requests_search(
    patient_id: str, month: Month | None = None, revinclude: Sequence[str] = ()
) -> Search:
    """The search `patient_requests` makes (see there)."""
    params = [("patient", f"Patient/{patient_id}")]
    if month is not None:
        params.append(("authored", f"ge{(month.start - timedelta(days=1)).isoformat()}"))
    params += [("_revinclude", spec) for spec in revinclude]
    return ("CommunicationRequest", params)


def patient_requests(
    fhir: FhirReader,
    patient_id: str,
    month: Month | None = None,
    *,
    revinclude: Sequence[str] = (),
) -> list[Any]:
    """The carecoord outreach requests (monthly and alternative) of a patient: all of them, or
    with `month` those authored since the day before it starts (a monthly request's authoredOn
    lies in its month, an alternative's is its escalation; the day absorbs UTC offsets) — so the
    search does not grow with the patient's history. Callers pick the month's requests by key;
    a server ignoring `authored` returns more, never less. With `revinclude` the resources the
    server includes come back after the requests (the caller asked for them)."""
    found = fhir.search(*requests_search(patient_id, month, revinclude))
    return [
        cr
        for cr in found
        if cr.get_resource_type() == "CommunicationRequest"
        and patient_of(cr) == patient_id
        and (identifier_value(cr, OUTREACH_REQUEST_ID) or group_key(cr))
    ] + [r for r in found if r.get_resource_type() != "CommunicationRequest"]


def group_key(cr: Any) -> str | None:
    """The monthly request key an alternative-channel request belongs to."""
    if identifier_value(cr, OUTREACH_ALTERNATIVE_ID) is None or cr.groupIdentifier is None:
        return None
    return str(cr.groupIdentifier.value) if cr.groupIdentifier.value else None


def monthly_for(requests: Sequence[Any], month: Month) -> list[Any]:
    """The monthly requests of `month`, active ones first, then by key (deterministic)."""
    mine = [
        cr
        for cr in requests
        if (identifier_value(cr, OUTREACH_REQUEST_ID) or "").endswith(f":{month.label}")
    ]
    return sorted(
        mine,
        key=lambda cr: (cr.status != "active", identifier_value(cr, OUTREACH_REQUEST_ID) or ""),
    )


def alternatives_of(requests: Sequence[Any], main: Any) -> list[Any]:
    key = identifier_value(main, OUTREACH_REQUEST_ID)
    return [cr for cr in requests if key and group_key(cr) == key]


def request_work_task(
    effects: Effects,
    cr: Any,
    patient_id: str,
    at: datetime,
    work: t.Code,
    due_days: int,
    reason: t.Code | None = None,
) -> None:
    """A work Task about an outreach request for its requester (the care manager), focus → the
    request, due `due_days` after `at`; nothing when the request names no requester."""
    owner = reference_str(cr.requester)
    if owner is None:
        return
    plans = [reference_str(b) for b in cr.basedOn or []]
    task = care.work_task(
        key=ref_of(cr),
        patient=f"Patient/{patient_id}",
        work=work,
        owner=owner,
        due=at.date() + timedelta(days=due_days),
        care_plan=next((p for p in plans if p and p.startswith("CarePlan/")), None),
        authored_on=at,
    )
    body = to_json(task)
    body["focus"] = {"reference": ref_of(cr)}
    if reason is not None:
        body["reasonCode"] = reason.concept_json()
    add_create(effects, build("Task", body))
