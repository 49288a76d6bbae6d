"""FHIR ids and literal references, written once.

An R4 id is 1 to 64 of `A-Z a-z 0-9 - .` (http://hl7.org/fhir/R4/datatypes.html#id); a literal
relative reference is `Type/id` (http://hl7.org/fhir/R4/references.html#literal).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

FHIR_ID = r"[A-Za-z0-9\-.]{1,64}"
ID = re.compile(rf"^{FHIR_ID}$")


def reference_pattern(*types: str) -> str:
    """The pattern of a relative reference to one of `types`, e.g. `^(Practitioner|…)/<id>$`."""
    if not types:
        raise ValueError("name at least one resource type")
    kinds = types[0] if len(types) == 1 else "(" + "|".join(types) + ")"
    return rf"^{kinds}/{FHIR_ID}$"


def is_reference(value: str, *types: str) -> bool:
    return re.fullmatch(reference_pattern(*types)[1:-1], value) is not None


# The reference types the event catalog and the handlers' settings use.
TaskRef = Annotated[str, Field(pattern=reference_pattern("Task"))]
CarePlanRef = Annotated[str, Field(pattern=reference_pattern("CarePlan"))]
CommunicationRequestRef = Annotated[str, Field(pattern=reference_pattern("CommunicationRequest"))]
EpisodeOfCareRef = Annotated[str, Field(pattern=reference_pattern("EpisodeOfCare"))]
PractitionerRef = Annotated[str, Field(pattern=reference_pattern("Practitioner"))]
DeviceRef = Annotated[str, Field(pattern=reference_pattern("Device"))]
QuestionnaireResponseRef = Annotated[str, Field(pattern=reference_pattern("QuestionnaireResponse"))]
PractitionerOrRoleRef = Annotated[
    str, Field(pattern=reference_pattern("Practitioner", "PractitionerRole"))
]
ConsentDocumentRef = Annotated[
    str,
    Field(
        pattern=reference_pattern(
            "DocumentReference", "QuestionnaireResponse", "Consent", "Contract"
        )
    ),
]
