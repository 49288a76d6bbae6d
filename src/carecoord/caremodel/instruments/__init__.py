"""Standard assessment instruments as FHIR R4 Questionnaires (this folder's *.json, package data),
how a QuestionnaireResponse is recognised as one of them, and how it is scored.

`definitions` loads the Questionnaires (every item and answer code in them comes from a source
named in the file's `description` and in docs/assessments.md); `scoring` scores a response.
"""

from __future__ import annotations

from carecoord.caremodel.instruments.definitions import (
    AHC_HRSN,
    CANONICAL_BASE,
    CHECK_IN,
    CHECK_IN_SYSTEM,
    GAD7,
    HVS,
    INSTRUMENTS,
    PHQ9,
    AnswerOption,
    Instrument,
    Item,
    questionnaires,
    recognise,
)
from carecoord.caremodel.instruments.publish import publish_questionnaires
from carecoord.caremodel.instruments.scoring import Assessment, Finding, score_response

__all__ = [
    "AHC_HRSN",
    "CANONICAL_BASE",
    "CHECK_IN",
    "CHECK_IN_SYSTEM",
    "GAD7",
    "HVS",
    "INSTRUMENTS",
    "PHQ9",
    "AnswerOption",
    "Assessment",
    "Finding",
    "Instrument",
    "Item",
    "publish_questionnaires",
    "questionnaires",
    "recognise",
    "score_response",
]
