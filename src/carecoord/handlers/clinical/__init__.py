"""Clinical questions routed to the provider (the care manager is not the doctor), their
escalation when unanswered, and the answer brought back to the care manager."""

from typing import Any

from carecoord._moved import forward


def __getattr__(name: str) -> Any:  # 0.1's carecoord.handlers.clinical module; goes in 0.3
    return forward(__name__, "carecoord.handlers.clinical.routing", name)
