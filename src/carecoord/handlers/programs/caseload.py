"""Caseload: how many patients a care manager looks after this month, and who takes a new one.

Counting rule: a care manager's caseload for a month is the number of distinct patients whose
monthly outreach CommunicationRequest for that month names them as requester. That is one search
the server answers with standard R4 parameters
(`CommunicationRequest?requester=Practitioner/x&authored=ge<start>&authored=le<end>`; the monthly
request's authoredOn always lies in its month), bounded by the caseload size rather than by the
whole history. Results are re-filtered here because some servers ignore parameters they don't know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from carecoord.core.handler import FhirReader
from carecoord.handlers.care.model import (
    OUTREACH_REQUEST_ID,
    CareConfig,
    Month,
    identifier_value,
    patient_of,
    reference_str,
)

AssignmentReason = Literal["named", "continuity", "most-room", "no-capacity"]


@dataclass(frozen=True)
class Assignment:
    """`care_manager` None means nobody has room: the patient goes to the supervisor/pool."""

    care_manager: str | None
    reason: AssignmentReason


# The CareConfig settings of a handler that assigns care managers: what assign_care_manager reads,
# and the supervisor / pool a patient goes to when every care manager is full.
CASELOAD_SETTINGS = ("capacity", "care_managers", "supervisor", "pool")


def caseload_patients(fhir: FhirReader, care_manager: str, month: Month) -> set[str]:
    """Patient ids in `care_manager`'s caseload for `month` (see the module docstring)."""
    found = fhir.search(
        "CommunicationRequest",
        [
            ("requester", care_manager),
            ("authored", f"ge{month.start.isoformat()}"),
            ("authored", f"le{month.end.isoformat()}"),
        ],
    )
    patients: set[str] = set()
    for cr in found:
        key = identifier_value(cr, OUTREACH_REQUEST_ID)
        if key is None or not key.endswith(f":{month.label}"):
            continue
        if reference_str(getattr(cr, "requester", None)) != care_manager:
            continue
        if getattr(cr, "status", None) == "entered-in-error":
            continue
        pid = patient_of(cr)
        if pid:
            patients.add(pid)
    return patients


def choose_care_manager(
    config: CareConfig,
    loads: Mapping[str, int],
    exclude: Sequence[str] = (),
) -> str | None:
    """The active configured care manager with the most room (capacity - load), ties in config
    order; None if everybody is full. Pure."""
    best: str | None = None
    best_room = 0
    for cm in config.care_managers:
        if not cm.active or cm.reference in exclude:
            continue
        room = config.capacity_of(cm.reference) - loads.get(cm.reference, 0)
        if room > best_room:
            best, best_room = cm.reference, room
    return best


def assign_care_manager(
    fhir: FhirReader,
    config: CareConfig,
    patient_id: str,
    month: Month,
    *,
    named: str | None = None,
    current: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Assignment:
    """Who looks after `patient_id` in `month`.

    A care manager named by the event wins. Else one who already looks after the patient (another
    program, `current`) keeps them, if still active: that adds no patient to anyone's caseload.
    Else the active care manager with the most room. Nobody is overloaded: if all are full the
    answer is None and the caller hands the patient to the supervisor/pool.
    """
    if named:
        return Assignment(named, "named")
    for ref in current:
        if ref not in exclude and config.is_active_care_manager(ref):
            return Assignment(ref, "continuity")
    loads: dict[str, int] = {}
    for cm in config.care_managers:
        if cm.active and cm.reference not in exclude:
            patients = caseload_patients(fhir, cm.reference, month)
            patients.discard(patient_id)
            loads[cm.reference] = len(patients)
    chosen = choose_care_manager(config, loads, exclude)
    return Assignment(chosen, "most-room") if chosen else Assignment(None, "no-capacity")
