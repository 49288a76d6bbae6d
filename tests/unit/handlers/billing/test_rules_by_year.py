"""The CMS rules by date of service (billing/rules.py RULE_YEARS): a 2025 month bills by the
2025 rules, a 2026 month by the CY 2026 PFS final rule (CMS-1832-F, 90 FR 49266, Nov 5 2025).
Run through the real processor on the in-memory FHIR server (carecoord.testing)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from carecoord.handlers.billing import handler as billing
from carecoord.handlers.billing.rules import (
    RPM_2026,
    RULE_YEARS,
    Charge,
    apcm_addon_rules,
    next_code,
    next_threshold,
    rules_for,
)
from carecoord.handlers.programs import enrolment
from carecoord.testing import InMemoryFhir, events, run_events

SPECS = [*enrolment.HANDLERS, *billing.HANDLERS]
CONDITIONS = ["Condition/c1", "Condition/c2"]


def enrolled(program: str, start: str, provider: str = "Practitioner/doc", n: int = 2) -> Any:
    return events.patient_enrolled(
        "p1",
        id=f"enrol-{program}-{provider}",
        program=program,
        provider=provider,
        start=start,
        conditions=CONDITIONS[:n],
    )


def logged(program: str, minutes: float, when: str, n: int = 0, **extra: Any) -> Any:
    return events.time_logged(
        "p1",
        id=f"time-{program}-{when}-{minutes}-{n}",
        program=program,
        minutes=minutes,
        performed_at=when,
        **extra,
    )


def billed(fhir: InMemoryFhir) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in fhir.resources("ChargeItem"):
        if item.status == "billable":
            out[item.code.coding[0].code] = int(item.quantity.value)
    return out


def rpm_month(minutes: float, when: str, interactive: bool = True) -> dict[str, int]:
    start = when[:8] + "01"
    run = run_events(
        SPECS,
        enrolled("RPM", start, n=0),
        logged("RPM", minutes, f"{when}T10:00:00Z", interactive=interactive),
    )
    assert run.dead_letters == []
    return billed(run.fhir)


def test_each_rule_row_applies_from_its_effective_date() -> None:
    """PFS-2026: effective January 1, 2026 (90 FR 49266, DATES); earlier months keep the rules
    carecoord billed before (RPM-2021), and a month before the first row uses the first row."""
    assert rules_for(date(2025, 12, 31)) is RULE_YEARS[0]
    assert rules_for(date(2026, 1, 1)) is RULE_YEARS[1]
    assert rules_for(date(2027, 6, 1)) is RULE_YEARS[1]
    assert rules_for(date(2020, 1, 1)) is RULE_YEARS[0]
    assert [r.effective for r in RULE_YEARS] == sorted(r.effective for r in RULE_YEARS)


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (9, {}),
        (10, {"99470": 1}),
        (19, {"99470": 1}),
        (20, {"99457": 1}),
        (40, {"99457": 1, "99458": 1}),
    ],
)
def test_rpm_treatment_management_in_2026(minutes: float, expected: dict[str, int]) -> None:
    """PFS-2026 (CMS-1832-F; Rimidi, Nov 3 2025): 99470 the first 10 minutes in a calendar
    month with a real-time interactive communication; 99457 first 20; 99458 each further 20;
    99470 and 99457 not together (humworld, Dec 3 2025)."""
    assert rpm_month(minutes, "2026-03-04") == expected


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [(9, {}), (10, {}), (19, {}), (20, {"99457": 1}), (40, {"99457": 1, "99458": 1})],
)
def test_rpm_in_2025_has_no_10_minute_code(minutes: float, expected: dict[str, int]) -> None:
    """RPM-2021 (CY 2021 PFS, Foley & Lardner): 99457 from 20 minutes; 99470 did not exist
    before the CY 2026 PFS."""
    assert rpm_month(minutes, "2025-12-04") == expected


def test_99470_needs_a_real_time_interaction() -> None:
    """PFS-2026: 99470 requires at least one real-time interactive communication."""
    assert rpm_month(15, "2026-03-04", interactive=False) == {}


def test_99470_becomes_99457_when_the_month_reaches_20_minutes() -> None:
    """PFS-2026: 99470 is not billed with 99457 in a month; the month bills the one its time
    reaches, the other ChargeItem is set not-billable."""
    run = run_events(
        SPECS,
        enrolled("RPM", "2026-03-01", n=0),
        logged("RPM", 12, "2026-03-04T10:00:00Z", interactive=True),
    )
    assert billed(run.fhir) == {"99470": 1}
    assert [e.data["cpt"] for e in run.emitted if e.type.endswith("threshold-reached")] == ["99470"]
    run = run_events(SPECS, logged("RPM", 8, "2026-03-05T10:00:00Z"), fhir=run.fhir)
    assert billed(run.fhir) == {"99457": 1}
    old = [i for i in run.fhir.resources("ChargeItem") if i.code.coding[0].code == "99470"]
    assert old[0].status == "not-billable" and old[0].note


def test_minutes_to_the_next_rpm_code_use_the_2026_tiers() -> None:
    """PFS-2026: 10 minutes to 99470, then 20 to 99457 (worklist's minutes-to-threshold)."""
    assert (next_threshold(RPM_2026, 0, {}), next_code(RPM_2026, 0)) == (10, "99470")
    assert (next_threshold(RPM_2026, 12, {}), next_code(RPM_2026, 12)) == (8, "99457")
    assert (next_threshold(RPM_2026, 25, {}), next_code(RPM_2026, 25)) == (15, "99458")
    assert (next_threshold(RULE_YEARS[0].rpm, 0, {}), next_code(RULE_YEARS[0].rpm, 0)) == (
        20,
        "99457",
    )


def _apcm_bhi(when: str, bhi_minutes: float, bhi_by: str | None = None) -> Any:
    """APCM and BHI time in one month; BHI billed by the plan's provider unless `bhi_by`."""
    month = when[:8] + "01"
    by = {"billing_practitioner": bhi_by} if bhi_by else {}
    return run_events(
        SPECS,
        enrolled("APCM", month),
        enrolled("BHI", month, n=1),
        logged("APCM", 5, f"{when}T09:00:00Z"),
        logged("BHI", bhi_minutes, f"{when}T10:00:00Z", **by),
    )


def test_apcm_behavioural_health_add_on_in_2026_replaces_99484() -> None:
    """PFS-2026: G0570 (general BHI with APCM; HCPCS 2026 descriptor "per calendar month", no
    minimum time) billed with G0556-G0558 of the same practitioner and month; 99484 is not billed
    with the add-on (FairPath, "APCM Behavioral Health Add-On Rule (2026)")."""
    run = _apcm_bhi("2026-03-04", 25)
    assert run.dead_letters == []
    assert billed(run.fhir) == {"G0557": 1, "G0570": 1}
    assert billed(_apcm_bhi("2026-03-04", 5).fhir) == {"G0557": 1, "G0570": 1}


def test_the_add_on_needs_apcm_by_the_same_practitioner() -> None:
    """PFS-2026: the add-ons are billable only with APCM by the same practitioner in the same
    month; BHI of another practitioner stays 99484 (20 minutes, AAFP-BHI)."""
    assert billed(_apcm_bhi("2026-03-04", 25, "Practitioner/psych").fhir) == {
        "G0557": 1,
        "99484": 1,
    }


def test_in_2025_apcm_and_bhi_bill_99484() -> None:
    """G0568-G0570 were created by the CY 2026 PFS; a 2025 month bills 99484 as before."""
    assert billed(_apcm_bhi("2025-11-04", 25).fhir) == {"G0557": 1, "99484": 1}
    assert billed(_apcm_bhi("2025-11-04", 5).fhir) == {"G0557": 1}


def test_add_on_pairing_and_exclusion_on_any_charges() -> None:
    """PFS-2026 (FairPath): G0568-G0570 only with G0556-G0558 of the same practitioner in the
    month; with an add-on, that practitioner's 99484 and 99492-99494 are not billed; another
    practitioner's are."""

    def charge(cpt: str, by: str) -> Charge:
        return Charge("X", cpt, 1, by, 0, ())

    kept = apcm_addon_rules(
        [
            charge("G0557", "A"),
            charge("G0568", "A"),
            charge("99492", "A"),
            charge("99484", "A"),
            charge("G0570", "B"),  # B bills no APCM: the add-on goes
            charge("99493", "B"),
        ]
    )
    assert [(c.cpt, c.practitioner) for c in kept] == [
        ("G0557", "A"),
        ("G0568", "A"),
        ("99493", "B"),
    ]
    alone = [charge("G0557", "A"), charge("99484", "A")]
    assert apcm_addon_rules(alone) == alone  # no add-on: 99484 stays
