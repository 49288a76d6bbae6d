"""The v1 event catalog (public contract: fields may be added, never renamed or removed).

Each event type maps to a pydantic model of its `data`. Extra fields are allowed (forward
compatibility); the fields below are validated strictly enough that a handler can trust them.
Free text is bounded (the MAX_* limits) and must be a valid FHIR string, since handlers write it
to FHIR: anything else is a MalformedEvent, whose message names the field, never the text.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from carecoord.core.envelope import CloudEvent
from carecoord.core.vocabulary import Channel, Outcome, Program, TaskStatus
from carecoord.errors import MalformedEvent, describe_validation

# Size limits of free text, in characters: far above real use, far below FHIR's 1 MB guidance
# for a string (http://hl7.org/fhir/R4/datatypes.html#string).
MAX_QUESTION_CHARS = 10_000  # a clinical question
MAX_NOTE_CHARS = 2_000  # a reason, evidence, an activity
MAX_TOKEN_CHARS = 256  # names, codes, references, versions
MAX_LIST_ITEMS = 100  # e.g. conditions of an enrolment

# FHIR R4 string: no Unicode character points below 32 except tab, CR and LF
# (http://hl7.org/fhir/R4/datatypes.html#string). DEL, C1 controls and lone surrogates (not
# Unicode characters) are refused as well.
_NOT_FHIR_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _fhir_text(value: str) -> str:
    if _NOT_FHIR_TEXT.search(value):
        raise ValueError("must not contain control characters other than tab, CR and LF")
    return value


# The length is checked first (by pydantic-core), so a huge value is never scanned.
Question = Annotated[str, Field(max_length=MAX_QUESTION_CHARS), AfterValidator(_fhir_text)]
Note = Annotated[str, Field(max_length=MAX_NOTE_CHARS), AfterValidator(_fhir_text)]
Token = Annotated[str, Field(max_length=MAX_TOKEN_CHARS), AfterValidator(_fhir_text)]


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


_PRACTITIONER_REF = r"^Practitioner/[A-Za-z0-9\-.]{1,64}$"
_PRACTITIONER_OR_ROLE_REF = r"^(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}$"
ConsentMethod = Literal["verbal", "written"]
DisenrolmentReason = Literal["patient-request", "deceased", "moved", "ineligible", "unreachable"]
DischargeSetting = Literal[
    "inpatient", "inpatient-psychiatric", "inpatient-rehabilitation", "long-term-care-hospital",
    "snf", "observation", "partial-hospitalization",
]  # fmt: skip
TimeRole = Literal["clinical-staff", "practitioner"]


class Consent(EventData):
    """The patient's consent to a program (CMS: verbal or written, documented before the
    program's services start)."""

    date: date
    method: ConsentMethod
    recorded_by: str = Field(pattern=_PRACTITIONER_OR_ROLE_REF)


class PatientEnrolled(EventData):
    program: Program
    provider: str = Field(pattern=r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
    care_manager: str | None = Field(default=None, pattern=r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
    conditions: list[Token] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    start: date
    consent: Consent | None = None  # without it a program that requires consent is pending


class ConsentRecorded(EventData):
    program: Program
    date: date
    method: ConsentMethod
    recorded_by: str = Field(pattern=_PRACTITIONER_OR_ROLE_REF)


class PatientDisenrolled(EventData):
    program: Program
    reason: DisenrolmentReason
    effective_date: date | None = None  # default: the last day of the event's month


class PatientDischarged(EventData):
    discharged_at: datetime
    facility: Token = Field(min_length=1)
    setting: DischargeSetting
    complexity: Literal["moderate", "high"]


class TcmEpisodeEnded(EventData):
    """Produced by the sweeper once a TCM episode's 30 days are over."""

    episode: str = Field(pattern=r"^EpisodeOfCare/[A-Za-z0-9\-.]{1,64}$")


class OutreachAttempted(EventData):
    channel: Channel
    outcome: Outcome
    attempted_at: datetime
    by: Token
    outreach: str | None = Field(
        default=None, pattern=r"^CommunicationRequest/[A-Za-z0-9\-.]{1,64}$"
    )
    duration_minutes: float | None = Field(default=None, ge=0)


class ConsentToShare(EventData):
    """The patient's authorisation to disclose their SDOH information to the organisations a
    referral goes to (recorded as an SDOHCC Consent)."""

    date: date
    method: ConsentMethod
    recorded_by: str = Field(pattern=_PRACTITIONER_OR_ROLE_REF)
    # The signed form, when there is one.
    document: str | None = Field(
        default=None,
        pattern=r"^(DocumentReference|QuestionnaireResponse|Consent|Contract)/[A-Za-z0-9\-.]{1,64}$",
    )


class SdohNeedIdentified(EventData):
    domain: Token = Field(min_length=1)
    evidence: Note | None = None
    postal_code: Token = Field(min_length=1)
    language: Token | None = None
    consent_to_contact: bool
    # Added in v1 (optional): without it the referral carries no Consent, as before.
    consent_to_share: ConsentToShare | None = None


class ReferralStatusChanged(EventData):
    task: str = Field(pattern=r"^Task/[A-Za-z0-9\-.]{1,64}$")
    status: TaskStatus
    reason: Note | None = None
    # The Task version that had `status` (e.g. from a FHIR notification): if the Task has moved
    # on since, the event is stale and changes nothing.
    task_version: Token | None = None
    # Who set the status (Gravity SDOH roles): "owner" = the receiving organisation, "requester"
    # = the referral source. Absent: the requester for draft/requested/entered-in-error/cancelled,
    # the owner for the other statuses.
    set_by: Literal["requester", "owner"] | None = None


class ClinicalQuestion(EventData):
    question: Question = Field(min_length=1)  # PHI: never logged
    urgency: Literal["routine", "urgent"]
    raised_by: Token


class ClinicalOverdue(EventData):
    """A clinical question (`task`, the provider's clinical-review Task) passed its response
    deadline unanswered at escalation `level` (1: covering provider / on-call, 2: clinical lead);
    produced by the sweeper."""

    task: str = Field(pattern=r"^Task/[A-Za-z0-9\-.]{1,64}$")
    level: int = Field(ge=1, le=2)
    due: datetime | None = None  # the deadline that was missed


class TaskStatusChanged(EventData):
    """Any carecoord Task reports its status (from a FHIR notification, or an integration): the
    handlers re-read the Task and act on what the server has. No free text: a provider's reason
    may be clinical, it stays in the Task's statusReason."""

    task: str = Field(pattern=r"^Task/[A-Za-z0-9\-.]{1,64}$")
    status: TaskStatus
    task_version: Token | None = None


class TimeLogged(EventData):
    program: Program
    minutes: float = Field(gt=0, le=24 * 60)
    activity: Note
    by: Token
    performed_at: datetime
    # Who did the work: clinical staff time and physician/QHP time bill different codes.
    role: TimeRole = "clinical-staff"
    # This month is complex CCM (moderate/high MDM, care plan established or substantially
    # revised); None: the billing handler's `complex_ccm` default.
    complex: bool | None = None
    # The practitioner who bills the month (default: the care plan's provider).
    billing_practitioner: str | None = Field(default=None, pattern=_PRACTITIONER_OR_ROLE_REF)
    # RPM: the entry includes a real-time interactive communication with the patient/caregiver.
    interactive: bool = False
    qmb: bool = False  # APCM: the patient is a Qualified Medicare Beneficiary (G0558)


class OutreachDue(EventData):
    period_start: date
    period_end: date


class TaskOverdue(EventData):
    task: Token


class CareManagerReassign(EventData):
    """Move one patient away from `care_manager` (emitted by the sweeper, or by an HR/EHR
    integration when a care manager leaves)."""

    care_manager: str = Field(pattern=r"^Practitioner/[A-Za-z0-9\-.]{1,64}$")
    reason: Literal["left", "over-capacity"]
    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")  # YYYY-MM


T = TypeVar("T", bound="EventData")

INBOUND: dict[str, type[EventData]] = {
    "carecoord.patient.enrolled": PatientEnrolled,
    "carecoord.outreach.attempted": OutreachAttempted,
    "carecoord.sdoh.need-identified": SdohNeedIdentified,
    "carecoord.referral.status-changed": ReferralStatusChanged,
    "carecoord.clinical.question": ClinicalQuestion,
    "carecoord.clinical.overdue": ClinicalOverdue,
    "carecoord.task.status-changed": TaskStatusChanged,
    "carecoord.time.logged": TimeLogged,
    "carecoord.outreach.due": OutreachDue,
    "carecoord.task.overdue": TaskOverdue,
    "carecoord.care-manager.reassign": CareManagerReassign,
    "carecoord.consent.recorded": ConsentRecorded,
    "carecoord.patient.disenrolled": PatientDisenrolled,
    "carecoord.patient.discharged": PatientDischarged,
    "carecoord.tcm.episode-ended": TcmEpisodeEnded,
}

OUTBOUND_TYPES = (
    "carecoord.outreach.escalated",
    "carecoord.referral.created",
    "carecoord.referral.unmatched",
    "carecoord.clinical.routed",
    "carecoord.clinical.escalated",
    "carecoord.clinical.answered",
    "carecoord.clinical.visit-requested",
    "carecoord.billing.threshold-reached",
    "carecoord.care-manager.reassigned",
    "carecoord.tcm.billable",
)


def known_type(event_type: str) -> str | None:
    """`event_type` if the catalog defines it, else None: an unknown type may be free text (PHI)
    and must not reach messages, logs or dead-letter headers."""
    return event_type if event_type in INBOUND or event_type in OUTBOUND_TYPES else None


def parse_data(event: CloudEvent, model: type[T]) -> T:
    """Validate `event.data`; raise MalformedEvent naming the bad fields (never their values)."""
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        fields = describe_validation(exc)
        etype = known_type(event.type)
        raise MalformedEvent(
            f"invalid data for {etype or model.__name__}: {fields}",
            event_id=event.id,
            event_type=etype,
        ) from exc


def require_patient(event: CloudEvent) -> str:
    pid = event.patient_id
    if not pid:
        raise MalformedEvent(
            "subject must be 'Patient/<id>'", event_id=event.id, event_type=known_type(event.type)
        )
    return pid
