"""Connecting a FHIR server's Subscription notifications to carecoord.

A community organisation updates the referral Task on the FHIR server; the server's rest-hook
Subscription tells carecoord, which re-reads the Task and moves the referral on. carecoord side:

    CARECOORD_NOTIFICATIONS_ENABLED=true
    CARECOORD_NOTIFICATIONS_TOKEN=<a long random secret>
    CARECOORD_NOTIFICATIONS_HOST=0.0.0.0 CARECOORD_NOTIFICATIONS_PORT=8081   # its own listener
    carecoord run

FHIR side: `subscription(...)` below — an R4 Subscriptions Backport rest-hook on referral Tasks
(a topic canonical the server defines, filtered to `Task?code=…|fulfill`), id-only payload, with
the token in `channel.header`. Expose the listener through a TLS-terminating ingress that routes
only `/fhir/notifications`.

    python examples/fhir_subscription.py https://fhir.example.org/r4 \
        https://carecoord.example.org/fhir/notifications "$CARECOORD_NOTIFICATIONS_TOKEN"

(tested end to end with the embedded FHIR server delivering real notifications in
tests/integration/test_example_fhir_subscription.py)
"""

from __future__ import annotations

import sys
from typing import Any

import httpx

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
PROFILE = f"{BACKPORT}/StructureDefinition/backport-subscription"
REFERRAL_TASKS = "Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill"
# The server's SubscriptionTopic for Task changes (each server names its own).
CONTENT = f"{BACKPORT}/StructureDefinition/backport-payload-content"
DEFAULT_TOPIC = "https://carecoord.dev/fhir/SubscriptionTopic/referral-task-changed"


def subscription(endpoint: str, token: str, *, topic: str = DEFAULT_TOPIC) -> dict[str, Any]:
    """The Subscription resource to create on the FHIR server."""
    if not token:
        raise ValueError("a notification token is required (carecoord refuses an empty one)")
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [PROFILE]},
        "status": "requested",
        "reason": "carecoord: community organisations' updates of referral Tasks",
        "criteria": topic,
        "_criteria": {
            "extension": [{"url": f"{BACKPORT}/StructureDefinition/backport-filter-criteria",
                           "valueString": REFERRAL_TASKS}]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": CONTENT, "valueCode": "id-only"}]},
            "header": [f"Authorization: Bearer {token}"],
        },
    }  # fmt: skip


def register(fhir_base_url: str, endpoint: str, token: str, **kwargs: Any) -> str:
    """Create the Subscription; returns its id."""
    response = httpx.post(
        f"{fhir_base_url.rstrip('/')}/Subscription",
        json=subscription(endpoint, token, **kwargs),
        headers={"Content-Type": "application/fhir+json"},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["id"])


if __name__ == "__main__":
    base, endpoint, secret = sys.argv[1:4]
    print("Subscription/" + register(base, endpoint, secret))
