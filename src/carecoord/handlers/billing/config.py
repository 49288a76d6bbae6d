"""The billing handler's configuration (defaults: CMS, see docs/billing-rules.md) and the marks
of the ChargeItems it writes, shared by its time route (billing/handler.py) and its
device-reading route (billing/devices.py)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import identifier_system
from carecoord.core.config import HandlerConfig
from carecoord.handlers.billing.rules import (
    CCM_STAFF,
    COMPLEX_CCM,
    DEFAULT_ADDON_LIMITS,
    DEFAULT_MIN_CONDITIONS,
    PCM_STAFF,
    RPM,
    Ladder,
    Rules,
    rules_for,
)
from carecoord.handlers.care.model import DEFAULT_CONSENT_REQUIRED

LADDERS: dict[str, Ladder] = {"CCM": CCM_STAFF, "PCM": PCM_STAFF, "RPM": RPM}
# Every ChargeItem of either route: its identifier system and the extension naming its program.
CHARGE_ITEM_ID = identifier_system("charge-item")
PROGRAM_EXTENSION = f"{t.CARECOORD_BASE}/StructureDefinition/care-program"


class BillingConfig(HandlerConfig):
    """Configuration of the "billing" handler (defaults: CMS, see docs/billing-rules.md)."""

    config_name: ClassVar[str] = "billing"

    # The default for a month no entry flags: bill CCM as complex CCM (99487/99489) when staff
    # time reaches 60 minutes (below that the month bills 99490/99439).
    complex_ccm: bool = False
    # CPT -> max units a month, over the CMS defaults (DEFAULT_ADDON_LIMITS)
    addon_limits: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_ADDON_LIMITS))
    exclusive_programs: list[list[str]] = Field(default_factory=lambda: [["CCM", "PCM"]])
    consent_required: list[str] = Field(default_factory=lambda: list(DEFAULT_CONSENT_REQUIRED))
    min_conditions: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_MIN_CONDITIONS))
    rpm_requires_interaction: bool = True
    apcm_bundles: bool = True
    billing_practitioner: str | None = None  # when neither the entry nor the plan names one
    # The practice's time zone (IANA name): RPM device readings count by their day there. UTC
    # unless set.
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'America/Chicago'"
            ) from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ladder(self, program: str, day: date | None = None) -> Ladder | None:
        """The program's ladder under the CMS rules in force on `day` (default: the oldest)."""
        if program == "CCM" and self.complex_ccm:
            return COMPLEX_CCM
        if program == "RPM" and day is not None:
            return rules_for(day).rpm
        return LADDERS.get(program)

    def rules(self) -> Rules:
        return Rules(
            addon_limits={**DEFAULT_ADDON_LIMITS, **self.addon_limits},
            exclusive=[tuple(g) for g in self.exclusive_programs],
            consent_required=tuple(self.consent_required),
            min_conditions=dict(self.min_conditions),
            complex_default=self.complex_ccm,
            rpm_requires_interaction=self.rpm_requires_interaction,
            apcm_bundles=self.apcm_bundles,
        )
