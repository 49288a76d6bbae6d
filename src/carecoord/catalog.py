"""The v1 event catalog, public: each event type's data model, inbound and outbound.

    from carecoord.catalog import OUTBOUND, ReferralCreated

    model = OUTBOUND[event["type"]].model_validate(event["data"])   # a consumer's check

Every model names its CloudEvents type in `event_type`; `INBOUND` and `OUTBOUND` map each type
to its model. The definitions live in `carecoord.core.catalog`; `carecoord catalog asyncapi`
prints them as an AsyncAPI 3.0 document.
"""

from __future__ import annotations

from carecoord.core.catalog import (
    INBOUND,
    INBOUND_MODELS,
    OUTBOUND,
    OUTBOUND_MODELS,
    AssessmentCompleted,
    AssessmentIgnored,
    AssessmentScored,
    BillingThresholdReached,
    CareManagerReassign,
    CareManagerReassigned,
    ClinicalAnswered,
    ClinicalEscalated,
    ClinicalOverdue,
    ClinicalQuestion,
    ClinicalRouted,
    ClinicalVisitRequested,
    Consent,
    ConsentRecorded,
    ConsentToShare,
    EventData,
    OutreachAttempted,
    OutreachDue,
    OutreachEscalated,
    PatientDischarged,
    PatientDisenrolled,
    PatientEnrolled,
    ReferralCreated,
    ReferralStatusChanged,
    ReferralUnmatched,
    RpmReading,
    SdohNeedIdentified,
    TaskOverdue,
    TaskStatusChanged,
    TcmBillable,
    TcmEpisodeEnded,
    TimeLogged,
    wire_data,
)

__all__ = [
    "INBOUND",
    "INBOUND_MODELS",
    "OUTBOUND",
    "OUTBOUND_MODELS",
    "AssessmentCompleted",
    "AssessmentIgnored",
    "AssessmentScored",
    "BillingThresholdReached",
    "CareManagerReassign",
    "CareManagerReassigned",
    "ClinicalAnswered",
    "ClinicalEscalated",
    "ClinicalOverdue",
    "ClinicalQuestion",
    "ClinicalRouted",
    "ClinicalVisitRequested",
    "Consent",
    "ConsentRecorded",
    "ConsentToShare",
    "EventData",
    "OutreachAttempted",
    "OutreachDue",
    "OutreachEscalated",
    "PatientDischarged",
    "PatientDisenrolled",
    "PatientEnrolled",
    "ReferralCreated",
    "ReferralStatusChanged",
    "ReferralUnmatched",
    "RpmReading",
    "SdohNeedIdentified",
    "TaskOverdue",
    "TaskStatusChanged",
    "TcmBillable",
    "TcmEpisodeEnded",
    "TimeLogged",
    "wire_data",
]
