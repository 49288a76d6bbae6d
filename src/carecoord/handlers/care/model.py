"""What the enrolment, outreach, care-task and sweeper handlers share: periods, business keys,
identifier systems, their configuration, and small helpers for reading resources back.

Business keys are what makes replays harmless: every resource these handlers create carries one
identifier derived from the business key (patient + program [+ month]) or the event id, and is
created conditionally on it.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal

from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ConfigDict, Field

from carecoord.caremodel._build import finish
from carecoord.caremodel.identifiers import identifier_system
from carecoord.caremodel.identifiers import identifier_value as business_value
from carecoord.core.config import HandlerConfig
from carecoord.core.vocabulary import PROGRAMS, Channel
from carecoord.fhir.bundles import version_of as version_of  # the handlers take it from here
from carecoord.fhir.models import model_class
from carecoord.fhir.reading import element, field, items

# Programs that need the patient's consent before they are billed (CCM; PCM, BHI and APCM share
# the CCM consent requirement; RPM: CMS requires consent at the time services are furnished).
# TCM needs none. Sources: billing/rules.py [MLN-CCM].
DEFAULT_CONSENT_REQUIRED = ("CCM", "PCM", "BHI", "APCM", "RPM")

# ---------------------------------------------------------------------------------------------
# Identifier systems of the resources these handlers create (carecoord.caremodel.identifiers kinds).

CARE_PLAN_ID = identifier_system("care-plan")  # <patient>:<program>:<start>
CARE_TEAM_ID = identifier_system("care-team")  # <patient>:<program>:<start>
OUTREACH_REQUEST_ID = identifier_system("outreach-request")  # <patient>:<program>:<YYYY-MM>
OUTREACH_ALTERNATIVE_ID = identifier_system("outreach-alternative")  # <request key>:<channel>
OUTREACH_ATTEMPT_ID = identifier_system("outreach-attempt")  # the attempt event id
OUTREACH_ESCALATION_ID = identifier_system("outreach-escalation")  # CommunicationRequest/<id>
CARE_TASK_ID = identifier_system("care-task")  # <patient>:<task code>:<key>


# ---------------------------------------------------------------------------------------------
# Periods: the calendar month of the event's own date, never the wall clock.


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, when: date | datetime) -> Month:
        return cls(when.year, when.month)

    @classmethod
    def parse(cls, label: str) -> Month:
        year, month = label.split("-")
        return cls(int(year), int(month))

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """The last day of the month (inclusive)."""
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def end_instant(self) -> datetime:
        """The first instant after the month (UTC)."""
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time(), UTC)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)


def outreach_key(patient_id: str, program: str, month: Month) -> str:
    """The business identifier value of a patient's monthly outreach request."""
    return business_value(patient_id, program, month.label)


# ---------------------------------------------------------------------------------------------
# Configuration (one model for all of these handlers; each names the settings it reads with the
# router's `settings=`, which become its default_config).


class CareManager(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str = Field(pattern=r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
    capacity: int | None = Field(default=None, ge=0)
    active: bool = True


DEFAULT_ENROLMENT_TASKS: dict[str, list[str]] = {
    "CCM": ["assessment", "medication-reconciliation"],
    "PCM": ["assessment", "medication-reconciliation"],
    "TCM": ["medication-reconciliation"],
    "BHI": ["assessment"],
    "APCM": ["assessment", "medication-reconciliation"],
    "RPM": [],
}
DEFAULT_MONTHLY_TASKS: dict[str, list[str]] = {p: ["care-plan-review"] for p in PROGRAMS}
DEFAULT_TASK_DUE_DAYS: dict[str, int] = {"assessment": 14, "medication-reconciliation": 7}


class CareConfig(HandlerConfig):
    """Configuration of enrolment, caseload, outreach, care tasks and the sweeper."""

    config_name: ClassVar[str] = "care-coordination"

    # caseload
    capacity: int = Field(default=250, ge=0)  # patients a month per care manager
    care_managers: list[CareManager] = Field(default_factory=list)
    supervisor: str | None = None  # e.g. "Practitioner/sup"; owner of pool and overdue Tasks
    pool: str | None = None  # e.g. "Group/care-coordinators"; preferred owner of assignment Tasks
    # outreach
    outreach_channel: Channel = "phone"
    max_unanswered: int = Field(default=3, ge=1)
    escalation_owner: Literal["lead-care-manager", "provider"] = "lead-care-manager"
    lead_care_manager: str | None = None
    alternative_channels: list[Channel] = Field(default_factory=lambda: _channels("sms", "letter"))
    # sweeper
    days_before_period_end: int = Field(default=5, ge=0)
    # care-management tasks per program
    enrolment_tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_ENROLMENT_TASKS.items()}
    )
    monthly_tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_MONTHLY_TASKS.items()}
    )
    task_due_days: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_TASK_DUE_DAYS))
    # program rules (docs/billing-rules.md): programs enrolled as pending until consent is
    # recorded, and the due date of the "obtain consent" Task
    consent_required: list[str] = Field(default_factory=lambda: list(DEFAULT_CONSENT_REQUIRED))
    consent_due_days: int = Field(default=14, ge=0)
    # an unreachable patient: months without an answered outreach before a review Task
    unreachable_months: int = Field(default=3, ge=1)

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> CareConfig:
        return cls.of(config)

    def capacity_of(self, reference: str) -> int:
        for cm in self.care_managers:
            if cm.reference == reference:
                return self.capacity if cm.capacity is None else cm.capacity
        return self.capacity

    def is_active_care_manager(self, reference: str) -> bool:
        """Care managers not listed count as active (named explicitly by an event)."""
        return all(cm.active for cm in self.care_managers if cm.reference == reference)

    def default_config(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# Reading resources back


def _channels(*names: Channel) -> list[Channel]:
    return list(names)


def build(resource_type: str, data: dict[str, Any]) -> Resource:
    """A validated fhir.resources object from plain JSON (on the handlers' lean path, the JSON
    itself: caremodel._build.finish)."""
    return finish(model_class(resource_type), {"resourceType": resource_type, **data}, "R4")


def ref_of(resource: Resource) -> str:
    return f"{resource.get_resource_type()}/{resource.id}"


def identifier_value(resource: Resource, system: str) -> str | None:
    for ident in items(element(resource, "identifier")):
        if field(ident, "system") == system and (value := field(ident, "value")):
            return str(value)
    return None


def reference_str(value: Any) -> str | None:
    """The `reference` string of a Reference (a model, its JSON or None)."""
    ref = field(value, "reference")
    return ref if isinstance(ref, str) else None


def references(resource: Any, name: str) -> list[str]:
    """The reference strings of a 0..* Reference element (`basedOn`, `careTeam`), in order."""
    return [r for r in (reference_str(v) for v in items(element(resource, name))) if r]


def referring(found: Iterable[Any], resource_type: str, name: str, reference: str) -> Iterator[Any]:
    """The `resource_type` resources among search results whose element `name` references
    `reference`: results re-filtered, as a server may add other types (_include) or match more
    loosely."""
    for resource in found:
        if (
            resource.get_resource_type() == resource_type
            and reference_str(element(resource, name)) == reference
        ):
            yield resource


def codings(concept: Any) -> list[Any]:
    return list(items(field(concept, "coding")))


def has_code(concept: Any, system: str, code: str) -> bool:
    return any(field(c, "system") == system and field(c, "code") == code for c in codings(concept))


def as_date(value: Any) -> date | None:
    """A FHIR date/dateTime (str, date or datetime) as a date; None for a partial one ("2025",
    "2025-03": R4 allows them, https://hl7.org/fhir/R4/datatypes.html#dateTime), which has no
    day. carecoord writes full dates; a partial one comes from another writer, and callers skip
    that resource rather than guess a day (or crash the event, as `fromisoformat` did)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value)
    if len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def as_instant(value: Any) -> datetime | None:
    """A FHIR date/dateTime as an aware datetime (dates mean the end of that day, UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value + timedelta(days=1), datetime.min.time(), UTC)
    text = str(value)
    if len(text) <= 10:
        return as_instant(date.fromisoformat(text))
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def patient_of(resource: Resource) -> str | None:
    """The Patient id a resource is about (subject / for)."""
    for name in ("subject", "for_fhir"):
        ref = reference_str(element(resource, name))
        if ref and ref.startswith("Patient/"):
            return ref.removeprefix("Patient/")
    return None
