"""Billable time under Medicare's program rules: one ChargeItem per code and month (quantity =
units), add-on caps, complex CCM per month, staff vs practitioner codes, consent, disenrolment,
exclusivity, APCM bundling, BHI, the RPM interaction gate; no minute counted twice."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from carecoord.handlers.billing.handler import HANDLERS, LADDERS, units_reached
from support.billing import enrol
from support.handler_context import FakeFhir, ctx, event

handle = HANDLERS[0].handle


def log_time(
    fhir: FakeFhir,
    minutes: float,
    program: str = "CCM",
    when: str = "2025-03-05T10:00:00+00:00",
    id_: str | None = None,
    config: dict[str, Any] | None = None,
    **extra: Any,
) -> list[dict[str, Any]]:
    data = {
        "program": program,
        "minutes": minutes,
        "activity": "care coordination",
        "by": "Practitioner/cm-1",
        "performed_at": when,
        **extra,
    }
    fx = handle(event("carecoord.time.logged", "p1", data, id_), ctx(fhir, config))
    fhir.apply(fx)
    return [{"id": e.id, **e.data} for e in fx.emits]


def billed(fhir: FakeFhir) -> dict[str, int]:
    """code -> units of the billable ChargeItems."""
    out: dict[str, int] = {}
    for c in fhir.all("ChargeItem"):
        if c.status == "billable":
            code = c.code.coding[0].code
            assert code not in out, "one ChargeItem per code and month"
            out[code] = int(c.quantity.value)
    return out


@pytest.fixture
def fhir() -> FakeFhir:
    f = FakeFhir()
    enrol(f)
    return f


@pytest.mark.parametrize(
    ("program", "minutes", "expected"),
    [
        ("CCM", 19.5, []),
        ("CCM", 20, [("99490", 1)]),
        ("CCM", 59, [("99490", 1), ("99439", 1)]),
        ("CCM", 60, [("99490", 1), ("99439", 1), ("99439", 2)]),
        ("PCM", 30, [("99426", 1)]),
        ("RPM", 40, [("99457", 1), ("99458", 1)]),
    ],
)
def test_ladders(program: str, minutes: float, expected: list[tuple[str, int]]) -> None:
    assert units_reached(LADDERS[program], minutes) == expected


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (19, {}),
        (20, {"99490": 1}),
        (39, {"99490": 1}),
        (40, {"99490": 1, "99439": 1}),
        (59, {"99490": 1, "99439": 1}),
        (60, {"99490": 1, "99439": 2}),
        (80, {"99490": 1, "99439": 2}),  # CMS: at most two units of 99439 a month
        (100, {"99490": 1, "99439": 2}),  # the audit finding: was 99490 + four 99439
    ],
)
def test_ccm_clinical_staff_edges_and_the_99439_cap(
    fhir: FakeFhir, minutes: int, expected: dict[str, int]
) -> None:
    log_time(fhir, minutes)
    assert billed(fhir) == expected


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (19, {}),
        (20, {"99490": 1}),  # a complex month under 60 minutes still bills CCM
        (59, {"99490": 1, "99439": 1}),
        (60, {"99487": 1}),
        (80, {"99487": 1}),
        (90, {"99487": 1, "99489": 1}),
    ],
)
def test_complex_ccm_is_decided_per_month_by_the_entry(
    fhir: FakeFhir, minutes: int, expected: dict[str, int]
) -> None:
    log_time(fhir, minutes, complex=True)
    assert billed(fhir) == expected


def test_a_month_becomes_complex_and_the_standard_codes_stop_being_billable(
    fhir: FakeFhir,
) -> None:
    log_time(fhir, 40)
    assert billed(fhir) == {"99490": 1, "99439": 1}
    log_time(fhir, 25, complex=True)  # 65 minutes, care plan substantially revised
    assert billed(fhir) == {"99487": 1}
    superseded = [c for c in fhir.all("ChargeItem") if c.code.coding[0].code == "99490"]
    assert superseded[0].status == "not-billable" and superseded[0].note
    # The next month is not complex unless an entry says so.
    log_time(fhir, 60, when="2025-04-02T10:00:00+00:00")
    april = {
        c.code.coding[0].code
        for c in fhir.all("ChargeItem")
        if c.status == "billable" and str(c.occurrencePeriod.start).startswith("2025-04")
    }
    assert april == {"99490", "99439"}


def test_global_complex_default_never_leaves_20_to_59_minutes_unbilled(fhir: FakeFhir) -> None:
    log_time(fhir, 45, config={"complex_ccm": True})
    assert billed(fhir) == {"99490": 1, "99439": 1}


def test_one_charge_item_per_code_with_quantity_updated_as_units_accrue(fhir: FakeFhir) -> None:
    assert log_time(fhir, 15) == []
    (first,) = log_time(fhir, 10)
    assert (first["cpt"], first["unit"], first["total_minutes"]) == ("99490", 1, 25)
    (addon,) = log_time(fhir, 15)  # 40
    assert (addon["cpt"], addon["unit"]) == ("99439", 1)
    (second,) = log_time(fhir, 20)  # 60
    assert (second["cpt"], second["unit"]) == ("99439", 2)
    assert log_time(fhir, 30) == []  # capped
    assert billed(fhir) == {"99490": 1, "99439": 2}
    item = next(c for c in fhir.all("ChargeItem") if c.code.coding[0].code == "99439")
    assert item.identifier[0].value == "p1:CCM:2025-03:99439"
    assert item.meta.versionId != "1"  # created at one unit, then updated in place


def test_practitioner_time_bills_its_own_codes(fhir: FakeFhir) -> None:
    log_time(fhir, 30, role="practitioner")
    assert billed(fhir) == {"99491": 1}
    log_time(fhir, 30, role="practitioner")
    assert billed(fhir) == {"99491": 1, "99437": 1}


def test_pcm_staff_and_practitioner_codes() -> None:
    fhir = FakeFhir()
    enrol(fhir, program="PCM", conditions=1)
    log_time(fhir, 30, program="PCM")
    assert billed(fhir) == {"99426": 1}
    fhir2 = FakeFhir()
    enrol(fhir2, program="PCM", conditions=1)
    log_time(fhir2, 30, program="PCM", role="practitioner")
    assert billed(fhir2) == {"99424": 1}


def test_bhi_99484_at_20_minutes_alongside_ccm(fhir: FakeFhir) -> None:
    enrol(fhir, program="BHI", conditions=1)
    log_time(fhir, 19, program="BHI")
    assert billed(fhir) == {}
    log_time(fhir, 1, program="BHI")
    log_time(fhir, 20, program="CCM")
    assert billed(fhir) == {"99484": 1, "99490": 1}  # BHI and CCM may share a month


def test_rpm_needs_an_interactive_communication_in_the_month(fhir: FakeFhir) -> None:
    enrol(fhir, program="RPM", conditions=0)
    log_time(fhir, 25, program="RPM")
    assert billed(fhir) == {}
    log_time(fhir, 1, program="RPM", interactive=True)
    assert billed(fhir) == {"99457": 1}


def test_rpm_interaction_from_an_answered_call_that_month(fhir: FakeFhir) -> None:
    enrol(fhir, program="RPM", conditions=0)
    fhir.put(
        {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "sent": "2025-03-03T10:00:00+00:00",
        }
    )
    log_time(fhir, 20, program="RPM")
    assert billed(fhir) == {"99457": 1}


def test_nothing_is_billed_without_consent_or_enrolment() -> None:
    fhir = FakeFhir()
    log_time(fhir, 30)  # not enrolled at all
    enrol(fhir, patient="p1", program="CCM", consent=None)
    log_time(fhir, 30)
    assert billed(fhir) == {}
    entries = [c for c in fhir.all("ChargeItem") if c.status == "not-billable"]
    assert len(entries) == 2  # the time is kept


def test_consent_mid_month_bills_only_the_time_after_it() -> None:
    fhir = FakeFhir()
    enrol(fhir, consent=date(2025, 3, 15))
    log_time(fhir, 15, when="2025-03-10T10:00:00+00:00")  # before consent: kept, not billed
    log_time(fhir, 10, when="2025-03-16T10:00:00+00:00")
    assert billed(fhir) == {}
    log_time(fhir, 10, when="2025-03-20T10:00:00+00:00")
    assert billed(fhir) == {"99490": 1}
    entry = next(
        c for c in fhir.all("ChargeItem") if str(c.occurrenceDateTime).startswith("2025-03-10")
    )
    assert any(e.valueCode == "no-consent" for e in entry.extension if e.valueCode)


def test_disenrolment_mid_month_stops_billing_after_the_effective_date() -> None:
    fhir = FakeFhir()
    enrol(fhir, end=date(2025, 3, 15))
    log_time(fhir, 15, when="2025-03-10T10:00:00+00:00")
    log_time(fhir, 10, when="2025-03-20T10:00:00+00:00")
    assert billed(fhir) == {}


def test_ccm_needs_two_chronic_conditions() -> None:
    fhir = FakeFhir()
    enrol(fhir, conditions=1)
    log_time(fhir, 20)
    assert billed(fhir) == {}


def test_ccm_and_pcm_exclusive_per_billing_practitioner(fhir: FakeFhir) -> None:
    enrol(fhir, program="PCM", conditions=1)
    assert [e["cpt"] for e in log_time(fhir, 20, program="CCM")] == ["99490"]
    log_time(fhir, 30, program="PCM")  # same practitioner: PCM has more minutes, it is billed
    assert billed(fhir) == {"99426": 1}
    log_time(fhir, 20, program="RPM", interactive=True)
    assert billed(fhir) == {"99426": 1}  # RPM not enrolled here


def test_ccm_and_pcm_by_different_practitioners_are_both_billed(fhir: FakeFhir) -> None:
    enrol(fhir, program="PCM", conditions=1, provider="Practitioner/cardio")
    log_time(fhir, 20, program="CCM")
    log_time(fhir, 30, program="PCM")
    assert billed(fhir) == {"99490": 1, "99426": 1}


def test_apcm_bundles_ccm_of_the_same_practitioner(fhir: FakeFhir) -> None:
    enrol(fhir, program="APCM", conditions=2)
    log_time(fhir, 20, program="CCM")
    assert billed(fhir) == {"99490": 1}
    log_time(fhir, 5, program="APCM")
    assert billed(fhir) == {"G0557": 1}


def test_charge_item_carries_performer_enterer_billing_practitioner_and_reasons(
    fhir: FakeFhir,
) -> None:
    log_time(fhir, 20)
    (item,) = [c for c in fhir.all("ChargeItem") if c.status == "billable"]
    functions = {p.function.coding[0].code: p.actor.reference for p in item.performer}
    assert functions == {
        "clinical-staff": "Practitioner/cm-1",
        "billing-practitioner": "Practitioner/dr-1",
    }
    assert item.enterer.reference == "Practitioner/cm-1"
    assert [r.coding[0].code for r in item.reason] == ["E11.0", "E11.1"]
    supporting = {s.reference for s in item.supportingInformation}
    assert {"Condition/p1-c0", "Condition/p1-c1"} <= supporting


def test_a_duplicate_time_event_never_counts_twice(fhir: FakeFhir) -> None:
    first = log_time(fhir, 12, id_="t-1")
    again = log_time(fhir, 12, id_="t-1")
    assert first == again == []
    assert log_time(fhir, 7) == []  # 19 minutes, not 31
    emitted = log_time(fhir, 1, id_="t-3")
    replay = log_time(fhir, 1, id_="t-3")
    assert [e["id"] for e in emitted] == [e["id"] for e in replay]  # same id: announced once
    assert billed(fhir) == {"99490": 1}
    assert len([c for c in fhir.all("ChargeItem") if c.status == "not-billable"]) == 3


def test_minutes_count_only_for_their_own_program_and_month(fhir: FakeFhir) -> None:
    enrol(fhir, program="RPM", conditions=0)
    log_time(fhir, 15, program="RPM", interactive=True)
    log_time(fhir, 15, program="CCM")
    log_time(fhir, 15, program="CCM", when="2025-04-01T09:00:00+00:00")
    assert billed(fhir) == {}


def test_a_late_entry_for_a_past_month_ignores_the_later_months_time(fhir: FakeFhir) -> None:
    """Only the month's lower date bound goes to the server (billing_reads), so a late March
    entry reads April's too: March must still total its own minutes only (10, under 99490)."""
    enrol(fhir)
    log_time(fhir, 15, when="2025-04-02T09:00:00+00:00")
    log_time(fhir, 10, when="2025-03-28T09:00:00+00:00")
    assert billed(fhir) == {}
    log_time(fhir, 10, when="2025-03-29T09:00:00+00:00")  # March reaches 20
    assert billed(fhir) == {"99490": 1}


def test_the_month_is_the_entrys_own_calendar_month_not_utcs(fhir: FakeFhir) -> None:
    # 21:00 on 31 March in Chicago is already 1 April in UTC: it is March time.
    assert log_time(fhir, 15, when="2025-03-05T10:00:00-05:00") == []
    (first,) = log_time(fhir, 10, when="2025-03-31T21:00:00-05:00")
    assert (first["cpt"], first["month"], first["total_minutes"]) == ("99490", "2025-03", 25)
    # And 08:00 on 1 April in Sydney is still 31 March in UTC: it is April time.
    assert log_time(fhir, 20, when="2025-04-01T08:00:00+10:00")[0]["month"] == "2025-04"


def test_a_partial_date_on_another_writers_charge_item_is_skipped_not_a_crash(
    fhir: FakeFhir,
) -> None:
    """R4 allows "2025-03" as a dateTime. A time-entry ChargeItem whose date was rewritten to
    one (by another system) used to crash every later time.logged of the patient with a
    ValueError; now it is not counted (no day to bill it on) and the rest bills as before."""
    log_time(fhir, 15, id_="first")
    [item] = [c for c in fhir.all("ChargeItem")]
    tampered = item.model_dump(mode="json", exclude_none=True)
    tampered["occurrenceDateTime"] = "2025-03"
    fhir.put(tampered)
    log_time(fhir, 10, id_="second")
    assert billed(fhir) == {}  # 10 countable minutes: under 99490's 20
    log_time(fhir, 10, id_="third")
    assert billed(fhir) == {"99490": 1}


def test_two_time_entries_whose_event_ids_differ_only_in_a_search_character_both_count(
    fhir: FakeFhir,
) -> None:
    """Event ids are free-form (CloudEvents): "visit|7" and "visit,7" are two entries. Their
    identifiers used to be cleaned to the same "visit_7", so the second was dropped as a replay
    and its minutes never billed."""
    log_time(fhir, 10, id_="visit|7")
    log_time(fhir, 10, id_="visit,7")
    assert billed(fhir) == {"99490": 1}
