"""Which CareTeams a patient's active plans referenced when this client last read them.

A plan's standalone CareTeam is known only from the plan (`CarePlan.careTeam`). Where the
server can neither include it with the plans (`_include=CarePlan:care-team`) nor search
`CareTeam?patient=` (sekmet indexes neither), a handler that needs the team reads it after the
plans: one more round trip. With the ids the plans referenced last time, the first batch of an
event searches `CareTeam?_id=<those ids>` beside the plans, and the read is answered from it
(carecoord.fhir.event_reads).

A hint only: the plan's own references still decide which team counts (patient_context._teams).
A stale hint (the plan now references another team, or the process restarted) costs one unused
batch entry and the read as before. Kept per client (the reader that owns
`capability_statement`, as carecoord.fhir.capabilities keys its cache: an event's reads forward
it), so one server's ids are never sent to another; at most MAX_PATIENTS per client, the least
recently used dropped first. Ids only: no PHI.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence

MAX_PATIENTS = 10_000


class TeamHints:
    """patient id -> the CareTeam ids their active plans referenced (bounded, thread-safe)."""

    def __init__(self, limit: int = MAX_PATIENTS) -> None:
        self._limit = limit
        self._ids: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, patient_id: str) -> tuple[str, ...]:
        with self._lock:
            ids = self._ids.get(patient_id, ())
            if ids:
                self._ids.move_to_end(patient_id)
            return ids

    def put(self, patient_id: str, team_ids: Sequence[str]) -> None:
        with self._lock:
            if not team_ids:
                self._ids.pop(patient_id, None)
                return
            self._ids[patient_id] = tuple(dict.fromkeys(team_ids))
            self._ids.move_to_end(patient_id)
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)


_BY_CLIENT: weakref.WeakKeyDictionary[object, TeamHints] = weakref.WeakKeyDictionary()
_BY_CLIENT_LOCK = threading.Lock()


def hints_of(fhir: object) -> TeamHints | None:
    """The hints of the client behind `fhir`; None for a reader without a CapabilityStatement
    (it cannot batch either, so a hint would save nothing) or one that cannot be weakly keyed."""
    get = getattr(fhir, "capability_statement", None)
    if not callable(get):
        return None
    owner = getattr(get, "__self__", fhir)
    try:
        with _BY_CLIENT_LOCK:
            hints = _BY_CLIENT.get(owner)
            if hints is None:
                hints = _BY_CLIENT[owner] = TeamHints()
            return hints
    except TypeError:
        return None
