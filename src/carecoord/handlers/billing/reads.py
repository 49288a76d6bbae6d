"""What `carecoord.time.logged` reads, in ONE round trip where the server allows it.

The billing handler needs, for the patient and the month of the entry: the month's ChargeItems
(time entries and billed codes), the patient's CarePlans and Consents (enrolment and consent
state), the month's Communications (RPM's interactive-communication rule) and the Conditions
the care plans address (the ChargeItem's `reason`). Where the server declares the `batch`
interaction these are ONE batch of searches (carecoord.fhir.batch_reads):

    ChargeItem?subject=Patient/p&occurrence=ge<month start - 1 day>
    CarePlan?patient=Patient/p
    Consent?patient=Patient/p
    Communication?patient=Patient/p&sent=ge<month start - 1 day>
    Condition?patient=Patient/p

Elsewhere each is searched on first use only (a duplicate entry reads its ChargeItems and
nothing else), and Conditions are read one by one, as before. Either way every result is
re-filtered here (patient, month), so a server ignoring `occurrence` or `sent` costs bytes, not
correctness; a day either side of the month absorbs UTC offsets.

Only the lower bound goes to the server. On a date index a two-sided range is a scan from one
end: `lt` reads every older entry of the type (every patient's history), while `ge` from a
recent day reads little. The month's own end is applied here; entries later than the month
exist only when an event arrives for an earlier month, and are bounded by that delay.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from carecoord.core.handler import FhirReader
from carecoord.fhir.batch_reads import Search, declares_batch, search_together
from carecoord.fhir.errors import FhirGone, FhirNotFound
from carecoord.fhir.reading import element
from carecoord.handlers.care.enrolment_state import carecoord_consents, carecoord_plans, states_of
from carecoord.handlers.care.model import Month, as_date, reference_str


def month_bounds(param: str, day: date) -> list[tuple[str, str]]:
    """`param` from the day before the month of `day`; no upper bound (see above)."""
    return [(param, f"ge{(Month.of(day).start - timedelta(days=1)).isoformat()}")]


def charge_item_search(patient: str, day: date | None) -> Search:
    params = [("subject", patient)]
    return "ChargeItem", params + (month_bounds("occurrence", day) if day is not None else [])


def _of_patient(found: Sequence[Any], resource_type: str, attr: str, patient: str) -> list[Any]:
    return [
        r
        for r in found
        if r.get_resource_type() == resource_type and reference_str(element(r, attr)) == patient
    ]


class MonthReads:
    """One patient's billing inputs for the month of `day` (see the module docstring)."""

    def __init__(self, fhir: FhirReader, patient_id: str, day: date) -> None:
        self.fhir = fhir
        self.patient_id = patient_id
        self.patient = f"Patient/{patient_id}"
        self.month = Month.of(day)
        self._searches: dict[str, Search] = {
            "ChargeItem": charge_item_search(self.patient, day),
            "CarePlan": ("CarePlan", [("patient", self.patient)]),
            "Consent": ("Consent", [("patient", self.patient)]),
            "Communication": (
                "Communication",
                [("patient", self.patient), *month_bounds("sent", day)],
            ),
            "Condition": ("Condition", [("patient", self.patient)]),
        }
        self._found: dict[str, list[Any]] = {}
        self.batched = declares_batch(fhir)
        if self.batched:
            keys = list(self._searches)
            answers = search_together(fhir, [self._searches[k] for k in keys])
            self._found = dict(zip(keys, answers, strict=True))

    def _search(self, key: str) -> list[Any]:
        if key not in self._found:
            rtype, params = self._searches[key]
            self._found[key] = list(self.fhir.search(rtype, list(params)))
        return self._found[key]

    @cached_property
    def charge_items(self) -> list[Any]:
        """The patient's ChargeItems around the month (callers pick the month's own)."""
        return _of_patient(self._search("ChargeItem"), "ChargeItem", "subject", self.patient)

    @cached_property
    def plans(self) -> list[Any]:

        return carecoord_plans(self._search("CarePlan"), self.patient_id)

    @cached_property
    def consents(self) -> list[Any]:

        return carecoord_consents(self._search("Consent"), self.patient_id)

    def states(self) -> dict[str, Any]:
        """Per program, the enrolment state (carecoord.handlers.programs.consent.ProgramState)."""

        return states_of(self.plans, self.consents)

    def interaction_in_month(self) -> bool:
        """An answered outreach (completed Communication) with the patient in the month."""
        for comm in _of_patient(
            self._search("Communication"), "Communication", "subject", self.patient
        ):
            if comm.status != "completed" or comm.sent is None:
                continue
            day = as_date(comm.sent)
            if day is not None and Month.of(day) == self.month:
                return True
        return False

    def condition(self, reference: str) -> Any | None:
        """A Condition the care plan addresses: from the batch, else read (None if gone)."""
        rtype, _, rid = reference.partition("/")
        if rtype != "Condition" or not rid:
            return None
        if self.batched:
            for found in self._found.get("Condition", []):
                if found.get_resource_type() == "Condition" and found.id == rid:
                    return found
        try:
            return self.fhir.read("Condition", rid)
        except (FhirNotFound, FhirGone):
            return None
