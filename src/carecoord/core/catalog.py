"""The v1 event catalog (public contract: fields may be added, never renamed or removed).

Each event type maps to a pydantic model of its `data`. Extra fields are allowed (forward
compatibility); the fields below are validated strictly enough that a handler can trust them.
Free text is bounded (the MAX_* limits) and must be a valid FHIR string, since handlers write it
to FHIR: anything else is a MalformedEvent, whose message names the field, never the text.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from carecoord.core.envelope import CloudEvent
from carecoord.core.references import (
    CarePlanRef,
    CommunicationRequestRef,
    ConsentDocumentRef,
    DeviceRef,
    EpisodeOfCareRef,
    PractitionerOrRoleRef,
    PractitionerRef,
    QuestionnaireResponseRef,
    TaskRef,
)
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
    """An event's `data`. A catalog model names its CloudEvents `type` in `event_type`, so a
    handler routes on the model (`@handlers.on(SdohNeedIdentified)`) and emits one
    (`effects.emit(ReferralCreated(...), subject, id=...)`) without spelling the type."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_type: ClassVar[str] = ""
    """The CloudEvents `type` this model is the data of ("" for a part of one)."""


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
    recorded_by: PractitionerOrRoleRef


class PatientEnrolled(EventData):
    event_type: ClassVar[str] = "carecoord.patient.enrolled"

    program: Program
    provider: PractitionerRef
    care_manager: PractitionerRef | None = None
    conditions: list[Token] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    start: date
    consent: Consent | None = None  # without it a program that requires consent is pending


class ConsentRecorded(EventData):
    event_type: ClassVar[str] = "carecoord.consent.recorded"

    program: Program
    date: date
    method: ConsentMethod
    recorded_by: PractitionerOrRoleRef


class PatientDisenrolled(EventData):
    event_type: ClassVar[str] = "carecoord.patient.disenrolled"

    program: Program
    reason: DisenrolmentReason
    effective_date: date | None = None  # default: the last day of the event's month


class PatientDischarged(EventData):
    event_type: ClassVar[str] = "carecoord.patient.discharged"

    discharged_at: datetime
    facility: Token = Field(min_length=1)
    setting: DischargeSetting
    complexity: Literal["moderate", "high"]


class TcmEpisodeEnded(EventData):
    """Produced by the sweeper once a TCM episode's 30 days are over."""

    event_type: ClassVar[str] = "carecoord.tcm.episode-ended"

    episode: EpisodeOfCareRef


class OutreachAttempted(EventData):
    event_type: ClassVar[str] = "carecoord.outreach.attempted"

    channel: Channel
    outcome: Outcome
    attempted_at: datetime
    by: Token
    outreach: CommunicationRequestRef | None = None
    duration_minutes: float | None = Field(default=None, ge=0)


class ConsentToShare(EventData):
    """The patient's authorisation to disclose their SDOH information to the organisations a
    referral goes to (recorded as an SDOHCC Consent)."""

    date: date
    method: ConsentMethod
    recorded_by: PractitionerOrRoleRef
    # The signed form, when there is one.
    document: ConsentDocumentRef | None = None


class SdohNeedIdentified(EventData):
    event_type: ClassVar[str] = "carecoord.sdoh.need-identified"

    domain: Token = Field(min_length=1)
    evidence: Note | None = None
    postal_code: Token = Field(min_length=1)
    language: Token | None = None
    consent_to_contact: bool
    # Added in v1 (optional): without it the referral carries no Consent, as before.
    consent_to_share: ConsentToShare | None = None


class ReferralStatusChanged(EventData):
    event_type: ClassVar[str] = "carecoord.referral.status-changed"

    task: TaskRef
    status: TaskStatus
    reason: Note | None = None
    # The Task version that had `status` (e.g. from a FHIR notification): if the Task has moved
    # on since, the event is stale and changes nothing.
    task_version: Token | None = None
    # Who set the status (Gravity SDOH roles): "owner" = the receiving organisation, "requester"
    # = the referral source. Absent: the requester for draft/requested/entered-in-error, the
    # owner for the other statuses; cancelled (either side) is the requester's only where
    # carecoord made it (Task cancelled with its ServiceRequest revoked), else the owner's.
    set_by: Literal["requester", "owner"] | None = None


class ClinicalQuestion(EventData):
    event_type: ClassVar[str] = "carecoord.clinical.question"

    question: Question = Field(min_length=1)  # PHI: never logged
    urgency: Literal["routine", "urgent"]
    raised_by: Token


class ClinicalOverdue(EventData):
    """A clinical question (`task`, the provider's clinical-review Task) passed its response
    deadline unanswered at escalation `level` (1: covering provider / on-call, 2: clinical lead);
    produced by the sweeper."""

    event_type: ClassVar[str] = "carecoord.clinical.overdue"

    task: TaskRef
    level: int = Field(ge=1, le=2)
    due: datetime | None = None  # the deadline that was missed


class TaskStatusChanged(EventData):
    """Any carecoord Task reports its status (from a FHIR notification, or an integration): the
    handlers re-read the Task and act on what the server has. No free text: a provider's reason
    may be clinical, it stays in the Task's statusReason."""

    event_type: ClassVar[str] = "carecoord.task.status-changed"

    task: TaskRef
    status: TaskStatus
    task_version: Token | None = None


class TimeLogged(EventData):
    event_type: ClassVar[str] = "carecoord.time.logged"

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
    billing_practitioner: PractitionerOrRoleRef | None = None
    # RPM: the entry includes a real-time interactive communication with the patient/caregiver.
    interactive: bool = False
    qmb: bool = False  # APCM: the patient is a Qualified Medicare Beneficiary (G0558)


class RpmReading(EventData):
    """An RPM device transmitted a physiologic reading of the patient. Only that it did and when:
    the values stay with the device platform. Billing counts the distinct days with readings in
    each 30-day period of the RPM enrolment (99454 / 99445, 99453)."""

    event_type: ClassVar[str] = "carecoord.rpm.reading"

    device: DeviceRef
    observed_at: datetime  # without an offset: UTC


class OutreachDue(EventData):
    """A month's outreach is due (produced by the sweeper: `stage` nearly-overdue when the
    period's end is near and the patient is not reached yet)."""

    event_type: ClassVar[str] = "carecoord.outreach.due"

    period_start: date
    period_end: date
    stage: Literal["due", "nearly-overdue"] = "due"
    care_plan: CarePlanRef | None = None
    outreach: CommunicationRequestRef | None = None


class TaskOverdue(EventData):
    event_type: ClassVar[str] = "carecoord.task.overdue"

    task: Token


class CareManagerReassign(EventData):
    """Move one patient away from `care_manager` (emitted by the sweeper, or by an HR/EHR
    integration when a care manager leaves)."""

    event_type: ClassVar[str] = "carecoord.care-manager.reassign"

    care_manager: PractitionerRef
    reason: Literal["left", "over-capacity"]
    month: str | None = Field(default=None, pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")  # YYYY-MM


class AssessmentCompleted(EventData):
    """A QuestionnaireResponse was completed (e.g. found by a poller of the FHIR server): carecoord
    reads it, scores it if it is an instrument it knows (docs/assessments.md), writes the results
    as Observations and routes what they call for."""

    event_type: ClassVar[str] = "carecoord.assessment.completed"

    questionnaire_response: QuestionnaireResponseRef


T = TypeVar("T", bound="EventData")

INBOUND_MODELS: tuple[type[EventData], ...] = (
    PatientEnrolled, OutreachAttempted, SdohNeedIdentified, ReferralStatusChanged,
    ClinicalQuestion, ClinicalOverdue, TaskStatusChanged, TimeLogged, OutreachDue, TaskOverdue,
    CareManagerReassign, ConsentRecorded, PatientDisenrolled, PatientDischarged, TcmEpisodeEnded,
    RpmReading,
    AssessmentCompleted,
)  # fmt: skip
INBOUND: dict[str, type[EventData]] = {m.event_type: m for m in INBOUND_MODELS}
# Inbound types a built-in handler emits as follow-ups for another domain (the assessments
# handler); the runtime produces any emitted inbound type to the input topic.
FOLLOW_UPS: tuple[str, ...] = (ClinicalQuestion.event_type, SdohNeedIdentified.event_type)


# Outbound: what carecoord emits on its outbound topic. Values are as they go on the wire (times
# and dates as ISO 8601 strings); a field a handler leaves unset is not sent.

_DateTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
_Date = Annotated[str, Field(json_schema_extra={"format": "date"})]
_Month = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
_Identifier = Annotated[str, Field(description="a business identifier, `system|value`")]


class OutreachEscalated(EventData):
    """A month's outreach went unanswered: an escalation Task was created for `owner`."""

    event_type: ClassVar[str] = "carecoord.outreach.escalated"

    outreach: CommunicationRequestRef
    care_plan: CarePlanRef | None
    owner: str
    reason: str
    unanswered_attempts: int
    period_end: _Date | None
    escalation: dict[str, str] = Field(description="the escalation Task's identifier (FHIR JSON)")
    alternative_channel: str | None


class ReferralCreated(EventData):
    """A referral attempt went to a community organisation (or, replayed, is still there)."""

    event_type: ClassVar[str] = "carecoord.referral.created"

    domain: str
    service_request_identifier: _Identifier
    service_request: str | None = None
    task: TaskRef | None = None
    task_identifier: _Identifier | None = None
    healthcare_service: str | None = None
    organization: str | None = None
    attempt: int | None = None


class ReferralUnmatched(EventData):
    """No organisation could take the referral: a manual-referral Task for the care manager."""

    event_type: ClassVar[str] = "carecoord.referral.unmatched"

    domain: str
    service_request_identifier: _Identifier
    manual_task_identifier: _Identifier
    tried: list[str]
    reason: Literal["all-candidates-declined", "no-candidates"]
    service_request: str | None = None


class ClinicalRouted(EventData):
    """A clinical question went to the provider as a clinical-review Task."""

    event_type: ClassVar[str] = "carecoord.clinical.routed"

    task_identifier: _Identifier
    provider: str
    priority: Literal["stat", "routine"]
    urgency: Literal["routine", "urgent"]
    due: _DateTime


class ClinicalEscalated(EventData):
    """An unanswered clinical question went to the next level (covering provider, lead)."""

    event_type: ClassVar[str] = "carecoord.clinical.escalated"

    task: TaskRef
    level: int
    escalated_to: str
    escalation_task_identifier: _Identifier
    priority: str
    urgency: str
    missed_due: _DateTime
    due: _DateTime


class ClinicalAnswered(EventData):
    """The provider answered: the care manager has a relay Task and the patient a request."""

    event_type: ClassVar[str] = "carecoord.clinical.answered"

    task: TaskRef
    replied_task: TaskRef
    provider: str
    answer: str = Field(description="where the answer is: communication, task or none")
    relay_task_identifier: _Identifier
    communication_request_identifier: _Identifier


class ClinicalVisitRequested(EventData):
    """The provider asked for a visit: the care manager has a Task to schedule it."""

    event_type: ClassVar[str] = "carecoord.clinical.visit-requested"

    task: TaskRef
    replied_task: TaskRef
    provider: str
    visit_task_identifier: _Identifier


class BillingThresholdReached(EventData):
    """A month's time crossed a billing code's threshold (one more unit), or an RPM 30-day
    period's device readings reached a device-supply code (`days`; `month`: the period's last
    day's)."""

    event_type: ClassVar[str] = "carecoord.billing.threshold-reached"

    program: str
    month: _Month
    cpt: str
    unit: int
    charge_item_identifier: _Identifier
    charge_item: str | None = None
    total_minutes: float | None = None
    days: int | None = None  # RPM device supply: days with readings in the 30-day period


class CareManagerReassigned(EventData):
    """A patient's care moved from `previous` to `care_manager`."""

    event_type: ClassVar[str] = "carecoord.care-manager.reassigned"

    care_manager: str
    previous: str
    reason: str
    assignment: str
    month: _Month
    care_plans: list[str]
    outreach: list[str]
    tasks: list[str]


class TcmBillable(EventData):
    """A TCM episode met its deadlines and was billed."""

    event_type: ClassVar[str] = "carecoord.tcm.billable"

    episode: EpisodeOfCareRef
    cpt: str
    date_of_service: _Date


class AssessmentScored(EventData):
    """A completed QuestionnaireResponse was scored: its Observations are on the server and what
    it calls for was routed (no scores or answers here: they stay on the FHIR server)."""

    event_type: ClassVar[str] = "carecoord.assessment.scored"

    questionnaire_response: str
    response_version: str
    instrument: str = Field(description="the LOINC panel code, or carecoord-check-in")
    observations: list[_Identifier]
    routed: list[str] = Field(
        description="what was routed: clinical-question:<urgency>, sdoh-need:<domain>"
    )


class AssessmentIgnored(EventData):
    """A QuestionnaireResponse carecoord does not score: not an instrument it knows, or not
    completed. Nothing was written."""

    event_type: ClassVar[str] = "carecoord.assessment.ignored"

    questionnaire_response: str
    reason: Literal["unknown-instrument", "not-completed"]


OUTBOUND_MODELS: tuple[type[EventData], ...] = (
    OutreachEscalated, ReferralCreated, ReferralUnmatched, ClinicalRouted, ClinicalEscalated,
    ClinicalAnswered, ClinicalVisitRequested, BillingThresholdReached, CareManagerReassigned,
    TcmBillable, AssessmentScored, AssessmentIgnored,
)  # fmt: skip
OUTBOUND: dict[str, type[EventData]] = {m.event_type: m for m in OUTBOUND_MODELS}
OUTBOUND_TYPES = tuple(OUTBOUND)


def wire_data(data: EventData) -> dict[str, Any]:
    """`data` as it goes on the wire: JSON values, the fields that were set (None included)."""
    return data.model_dump(mode="json", exclude_unset=True)


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
