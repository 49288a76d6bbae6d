"""An example third-party handler: transitional care management after a hospital discharge.

`acme.patient.discharged` (data: discharged_at) -> a medication-reconciliation Task due
`due_days` after discharge, owned by the configured care-management pool, and an
`acme.tcm.started` event. Install it with an entry point in your package:

    [project.entry-points."carecoord.handlers"]
    acme = "acme_tcm"

or, without packaging, CARECOORD_HANDLER_MODULES=acme_tcm (the module on PYTHONPATH).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from carecoord import (
    CloudEvent,
    Effects,
    EventData,
    HandlerConfig,
    HandlerContext,
    Handlers,
    add_create,
    work_task,
)


class Discharged(EventData):
    discharged_at: datetime


class AcmeConfig(HandlerConfig):
    config_name: ClassVar[str] = "acme-tcm"

    owner: str = "Organization/care-management-pool"
    due_days: int = 2


handlers = Handlers("acme-tcm", config=AcmeConfig, description="TCM after a hospital discharge")


@handlers.on("acme.patient.discharged", data=Discharged)  # invalid data -> MalformedEvent
def on_discharge(
    event: CloudEvent, data: Discharged, ctx: HandlerContext, config: AcmeConfig
) -> Effects:
    subject = f"Patient/{event.patient_id}"  # the router requires a Patient subject
    due = (data.discharged_at + timedelta(days=config.due_days)).date()
    effects = Effects()
    task = work_task(
        key=f"tcm:{event.id}",  # deterministic: a redelivered event creates nothing new
        patient=subject,
        work="medication-reconciliation",
        owner=config.owner,
        due=due,
        priority="urgent",
        authored_on=ctx.now(),
    )
    add_create(effects, task)
    effects.emit("acme.tcm.started", subject, {"due": str(due)}, id=f"acme:tcm-started:{event.id}")
    return effects


HANDLERS = handlers  # a Handlers router, a HandlerSpec or a list of them
