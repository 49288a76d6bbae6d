"""Billable care-management time: CMS rules by program and code, the month's reads, the
ChargeItems."""

from typing import Any

from carecoord._moved import forward


def __getattr__(name: str) -> Any:  # 0.1's carecoord.handlers.billing module; goes in 0.3
    return forward(__name__, "carecoord.handlers.billing.handler", name)
