"""Closed-loop community referrals: a social need to an SDOHCC ServiceRequest and Task, the
directory ranking, consent to share, and the referral's outcome."""

from typing import Any

from carecoord._moved import forward


def __getattr__(name: str) -> Any:  # 0.1's carecoord.handlers.referrals module; goes in 0.3
    return forward(__name__, "carecoord.handlers.referrals.handler", name)
