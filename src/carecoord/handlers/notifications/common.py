"""What every notification translator shares: the events' source and id prefix, the statuses
a Task's owner sets, and when a notified resource changed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from carecoord.caremodel.workflow import SET_BY

SOURCE = "urn:carecoord:fhir-notifications"
ID_PREFIX = "fhir-notification:"

# Statuses the recipient (the Task's owner) may set in a Gravity referral, cancelled included
# (the IG's status table: "Requester or Referral Target").
RECIPIENT_STATUSES: frozenset[str] = frozenset(
    status for status, who in SET_BY.items() if "owner" in who
)


def changed_at(resource: Mapping[str, Any]) -> datetime | None:
    meta = resource.get("meta")
    for value in (
        resource.get("lastModified"),
        meta.get("lastUpdated") if isinstance(meta, Mapping) else None,
    ):
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                continue
    return None
