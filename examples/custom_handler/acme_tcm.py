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

from carecoord import CloudEvent, Effects, HandlerContext, HandlerSpec
from carecoord.core.catalog import EventData, parse_data, require_patient
from carecoord.core.config import HandlerConfig
from carecoord.fhir.care import work_task
from carecoord.fhir.identifiers import add_create


class Discharged(EventData):
    discharged_at: datetime


class AcmeConfig(HandlerConfig):
    config_name: ClassVar[str] = "acme-tcm"

    owner: str = "Organization/care-management-pool"
    due_days: int = 2


def on_discharge(event: CloudEvent, ctx: HandlerContext) -> Effects:
    patient = require_patient(event)  # no Patient subject -> MalformedEvent -> dead letter
    data = parse_data(event, Discharged)  # invalid data -> MalformedEvent -> dead letter
    config = AcmeConfig.of(ctx.config)  # a bad value -> ConfigError naming the key
    effects = Effects()
    task = work_task(
        key=f"tcm:{event.id}",  # deterministic: a redelivered event creates nothing new
        patient=f"Patient/{patient}",
        work="medication-reconciliation",
        owner=config.owner,
        due=(data.discharged_at + timedelta(days=config.due_days)).date(),
        priority="urgent",
        authored_on=ctx.now(),
    )
    add_create(effects, task)
    effects.emit(
        "acme.tcm.started",
        f"Patient/{patient}",
        {"due": str((data.discharged_at + timedelta(days=config.due_days)).date())},
        id=f"acme:tcm-started:{event.id}",
    )
    return effects


HANDLERS = [
    HandlerSpec(
        name="acme-tcm",
        event_types=("acme.patient.discharged",),
        handle=on_discharge,
        default_config=AcmeConfig().model_dump(),
        description="Medication reconciliation within two days of discharge",
    )
]
