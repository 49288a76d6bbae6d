"""Scope of practice: a clinical question is routed to the provider, never answered.

carecoord.clinical.question -> a Task for the patient's provider (clinical review; priority stat
when urgent, else routine; status requested; owner the provider of the patient's active CareTeam,
else the configured `provider`; basedOn the active CarePlan) and carecoord.clinical.routed.
The question text (PHI) is kept only in Task.input on the FHIR server: never in logs, errors or the
emitted event. carecoord produces no clinical advice.

The Task's restriction.period.end is the response deadline (urgent: business hours, routine:
business days, carecoord.handlers.clinical.loop.response_due). The rest of the loop — escalation
when the deadline passes, the provider's answer or request for a visit — is
carecoord.handlers.clinical.loop, run by this same handler (one configuration).
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

from pydantic import Field

from carecoord.caremodel.builders import clinical_review_task
from carecoord.caremodel.identifiers import add_create, carecoord_identifier
from carecoord.core.catalog import ClinicalQuestion, ClinicalRouted
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerSpec
from carecoord.core.router import Delivery, Handlers
from carecoord.errors import HandlerError
from carecoord.handlers.care.event_ids import derived_id
from carecoord.handlers.care.patient_context import active_care_plan, patient_team
from carecoord.handlers.clinical import loop as clinical_loop
from carecoord.handlers.clinical.loop import ClinicalLoopConfig, response_due

log = logging.getLogger(__name__)

QUESTION = ClinicalQuestion.event_type
ROUTED = ClinicalRouted.event_type
_PRACTITIONER = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$"


class ClinicalConfig(ClinicalLoopConfig):
    """Configuration of the "clinical-routing" handler (response times and escalation targets:
    ClinicalLoopConfig)."""

    config_name: ClassVar[str] = "clinical-routing"

    # Provider who reviews questions about patients without an active CareTeam provider.
    provider: str | None = Field(default=None, pattern=_PRACTITIONER)


handlers = Handlers(
    "clinical-routing",
    config=ClinicalConfig,
    description="Route clinical questions to the provider as a clinical-review Task with a "
    "response deadline; escalate unanswered ones; bring the answer back to the care manager",
)


@handlers.on(ClinicalQuestion)
def handle_question(d: Delivery[ClinicalQuestion, ClinicalConfig]) -> Effects:
    team = patient_team(d.fhir, d.patient_id)
    provider = team.provider or d.config.provider
    if provider is None:
        raise HandlerError(
            "no provider to route the clinical question to: the patient has no active care team "
            "provider and clinical-routing has no 'provider' configured",
            event_id=d.event.id,
            patient=d.patient_id,
        )
    raised_by = d.data.raised_by if re.match(_PRACTITIONER, d.data.raised_by) else team.care_manager
    plan = active_care_plan(d.fhir, d.patient_id)
    urgent = d.data.urgency == "urgent"
    asked_at = d.event.time or d.ctx.now()
    due = response_due(d.config, d.data.urgency, asked_at)
    task = clinical_review_task(
        key=d.event.id,
        patient=d.patient,
        provider=provider,
        question=d.data.question,
        urgent=urgent,
        raised_by=raised_by,
        care_plan=f"CarePlan/{plan.id}" if plan is not None else None,
        authored_on=asked_at,
        due=due,
    )
    fx = Effects()
    add_create(fx, task)
    ident = carecoord_identifier(task)
    fx.emit(
        ClinicalRouted(
            task_identifier=f"{ident[0]}|{ident[1]}" if ident else "",
            provider=provider,
            priority="stat" if urgent else "routine",
            urgency=d.data.urgency,
            due=due.isoformat(),
        ),
        d.patient,
        id=derived_id(d.event.id, ROUTED),
    )
    log.info(
        "clinical question routed to provider",
        extra={"provider": provider, "urgent": urgent},
    )
    return fx


# The rest of the loop (overdue, the provider's reply), one configuration for all of it.
handlers.include(clinical_loop.handlers)

HANDLERS: list[HandlerSpec] = [handlers.spec]
