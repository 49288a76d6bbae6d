"""`model.referring`: search results re-filtered by resource type and one Reference field."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from carecoord.handlers.care.model import referring


def _task(id: str, focus: str | None) -> Task:
    data: dict[str, Any] = {"id": id, "status": "requested", "intent": "order"}
    if focus is not None:
        data["focus"] = {"reference": focus}
    return Task.model_validate(data)


def test_only_resources_of_the_type_whose_field_references_the_target_in_order() -> None:
    request = ServiceRequest.model_validate(
        {"id": "sr", "status": "active", "intent": "order", "subject": {"reference": "Patient/p"}}
    )
    found = [
        _task("t1", "ServiceRequest/sr"),
        request,  # another type (e.g. an _include)
        _task("t2", "ServiceRequest/other"),
        _task("t3", None),
        _task("t4", "ServiceRequest/sr"),
    ]
    kept = referring(found, "Task", "focus", "ServiceRequest/sr")
    assert [r.id for r in kept] == ["t1", "t4"]
    assert list(referring(found, "Task", "owner", "ServiceRequest/sr")) == []  # field not set
    assert list(referring(found, "ServiceRequest", "subject", "Patient/p")) == [request]
