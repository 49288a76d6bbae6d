"""The call list's order in detail: a reason without a due date, ties, and rows built from a
patient's resources (worklist.rank, worklist.patient_row; no FHIR server)."""

from __future__ import annotations

import time as time_module
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from carecoord.caremodel import terminology as t
from carecoord.handlers.billing.handler import BillingConfig, LoggedTime
from carecoord.handlers.care.model import (
    CARE_PLAN_ID,
    OUTREACH_ATTEMPT_ID,
    OUTREACH_ESCALATION_ID,
    OUTREACH_REQUEST_ID,
    build,
)
from carecoord.handlers.clinical.loop import ClinicalItem
from carecoord.handlers.jobs import worklist as worklist_module
from carecoord.handlers.jobs.worklist import (
    PatientReads,
    Reason,
    Worklist,
    WorklistRow,
    as_of,
    patient_row,
    rank,
    table,
)

CM = "Practitioner/cm1"
DAY = date(2026, 3, 4)


def row(patient: str, *reasons: Reason, minutes: int | None = None) -> WorklistRow:
    return WorklistRow(f"Patient/{patient}", ("CCM",), tuple(reasons), 0, None, minutes)


def order(*rows: WorklistRow) -> list[str]:
    return [r.patient.removeprefix("Patient/") for r in rank(rows)]


def test_a_reason_without_a_due_date_comes_after_the_same_reason_with_one() -> None:
    undated = row("undated", Reason("escalation", "x"))
    dated = row("dated", Reason("escalation", "x", date(2026, 3, 20)))
    assert order(undated, dated) == ["dated", "undated"]
    assert order(dated, undated) == ["dated", "undated"]


def test_within_a_row_an_undated_reason_follows_the_dated_one_of_its_kind() -> None:
    [ranked] = rank([row("p", Reason("escalation", "b"), Reason("escalation", "a", DAY))])
    assert [r.due for r in ranked.reasons] == [DAY, None]


def test_an_undated_reason_still_outranks_a_less_urgent_kind() -> None:
    undated = row("undated", Reason("escalation", "x"))
    later_kind = row("later-kind", Reason("tcm-due-today", "x", DAY))
    assert order(later_kind, undated) == ["undated", "later-kind"]


def test_ties_break_on_minutes_then_patient() -> None:
    a = row("a", Reason("minutes-to-threshold", "x"), minutes=5)
    b = row("b", Reason("minutes-to-threshold", "x"), minutes=5)
    c = row("c", Reason("minutes-to-threshold", "x"), minutes=2)
    unknown = row("0", Reason("minutes-to-threshold", "x"))
    assert order(b, unknown, a, c) == ["c", "a", "b", "0"]


def test_reasons_of_one_kind_and_day_sort_by_detail() -> None:
    [ranked] = rank([row("p", Reason("escalation", "b", DAY), Reason("escalation", "a", DAY))])
    assert [r.detail for r in ranked.reasons] == ["a", "b"]


def test_an_unknown_kind_ranks_after_the_known_ones_but_before_nothing_to_do() -> None:
    assert order(
        row("idle"), row("odd", Reason("odd", "x")), row("m", Reason("minutes-to-threshold", "x"))
    ) == ["m", "odd", "idle"]


def test_an_unknown_kind_within_a_row_sorts_last() -> None:
    [ranked] = rank([row("p", Reason("odd", "x"), Reason("escalation", "y"))])
    assert [r.kind for r in ranked.reasons] == ["escalation", "odd"]


def test_rank_keeps_the_rows_fields() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    original = WorklistRow("Patient/p", ("BHI", "CCM"), (Reason("escalation", "x"),), 3, when, 7)
    assert rank([original]) == [original]


# -- patient_row -------------------------------------------------------------------------------


def plan(program: str = "CCM", status: str = "active", manager: str = CM, pid: str = "p1") -> Any:
    return build(
        "CarePlan",
        {
            "id": f"plan-{program}",
            "status": status,
            "intent": "plan",
            "identifier": [{"system": CARE_PLAN_ID, "value": f"{pid}:{program}"}],
            "subject": {"reference": f"Patient/{pid}"},
            "category": [t.PROGRAMS[program].concept_json()],
            "contained": [
                {
                    "resourceType": "CareTeam",
                    "id": "team",
                    "participant": [
                        {
                            "role": [t.ROLE_CARE_COORDINATOR.concept_json()],
                            "member": {"reference": manager},
                        }
                    ],
                }
            ],
            "careTeam": [{"reference": "#team"}],
        },
    )


def task(
    tid: str,
    work: t.Code,
    due: str | None,
    *,
    focus: str | None = None,
    status: str = "requested",
    pid: str = "p1",
    **extra: Any,
) -> Any:
    body: dict[str, Any] = {
        "id": tid,
        "status": status,
        "intent": "order",
        "code": work.concept_json(),
        "for": {"reference": f"Patient/{pid}"},
        **extra,
    }
    if due is not None:
        body["restriction"] = {"period": {"end": due}}
    if focus is not None:
        body["focus"] = {"reference": focus}
    return build("Task", body)


def kinds(reads: PatientReads, day: date = DAY) -> list[tuple[str, date | None]]:
    r = patient_row("p1", CM, day, reads, BillingConfig())
    return [(x.kind, x.due) for x in r.reasons]


def test_tcm_tasks_overdue_and_due_today() -> None:
    ep = "EpisodeOfCare/e1"
    reads = PatientReads(
        tasks=[
            task("late", t.TASK_TCM_FACE_TO_FACE, "2026-03-03", focus=ep),
            task("today", t.TASK_TCM_INTERACTIVE_CONTACT, "2026-03-04", focus=ep),
            task("later", t.TASK_MEDICATION_RECONCILIATION, "2026-03-05", focus=ep),
            task("done", t.TASK_TCM_FACE_TO_FACE, "2026-03-01", focus=ep, status="completed"),
            task("ccm", t.TASK_MEDICATION_RECONCILIATION, "2026-03-01", focus="CarePlan/x"),
            task("nodue", t.TASK_TCM_FACE_TO_FACE, None, focus=ep),
            task("other", t.TASK_TCM_FACE_TO_FACE, "2026-03-01", focus=ep, pid="p2"),
        ]
    )
    assert kinds(reads) == [("tcm-overdue", date(2026, 3, 3)), ("tcm-due-today", DAY)]
    r = patient_row("p1", CM, DAY, reads)
    assert r.reasons[0].reference == "Task/late"
    assert r.reasons[0].detail == "TCM face-to-face visit due 2026-03-03"


def test_escalation_and_consent_tasks() -> None:
    escalation = task(
        "esc",
        t.TASK_OBTAIN_CONSENT,
        "2026-03-09",
        identifier=[{"system": OUTREACH_ESCALATION_ID, "value": "p1:CCM:2026-03"}],
    )
    consent = task("consent", t.TASK_OBTAIN_CONSENT, "2026-03-11")
    r = patient_row("p1", CM, DAY, PatientReads(tasks=[escalation, consent]))
    assert [(x.kind, x.detail, x.due, x.reference) for x in r.reasons] == [
        ("escalation", "unanswered outreach escalated", date(2026, 3, 9), "Task/esc"),
        ("obtain-consent", "obtain program consent", date(2026, 3, 11), "Task/consent"),
    ]


def local_zone(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Run as on a machine whose local time zone is `name` (undone by the fixture's teardown)."""
    monkeypatch.setenv("TZ", name)
    time_module.tzset()


@pytest.fixture
def chicago_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    local_zone(monkeypatch, "America/Chicago")
    yield
    monkeypatch.delenv("TZ")
    time_module.tzset()


def test_clinical_items_of_the_patient(chicago_machine: None) -> None:
    due = datetime.fromisoformat("2026-03-03T23:00:00-06:00")  # 4 March in UTC
    items = [
        ClinicalItem("overdue-question", "Patient/p2", "Task/o", "Task/o", "urgent", due),
        ClinicalItem("overdue-question", "Patient/p1", "Task/q", "Task/q", "urgent", due),
        ClinicalItem("relay-answer", "Patient/p1", "Task/a", "Task/q2", "routine", None),
        ClinicalItem("schedule-visit", "Patient/p1", "Task/v", "Task/q3", "routine", None),
    ]
    r = patient_row("p1", CM, DAY, PatientReads(clinical=items))
    assert [(x.kind, x.detail, x.due, x.reference) for x in r.reasons] == [
        ("overdue-question", "urgent question unanswered", DAY, "Task/q"),
        ("relay-answer", "relay the answer to the patient", None, "Task/a"),
        ("schedule-visit", "schedule the visit", None, "Task/v"),
    ]


def request(key: str, status: str = "active", requester: str = CM, pid: str = "p1") -> Any:
    return build(
        "CommunicationRequest",
        {
            "id": f"cr-{key.replace(':', '-')}-{status}",
            "status": status,
            "identifier": [{"system": OUTREACH_REQUEST_ID, "value": key}],
            "subject": {"reference": f"Patient/{pid}"},
            "requester": {"reference": requester},
        },
    )


def test_a_request_key_without_a_program_names_none() -> None:
    r = patient_row("p1", CM, DAY, PatientReads(requests=[request("p1:2026-03")]))
    assert [x.detail for x in r.reasons] == [" outreach not reached"]


def test_outreach_due_is_this_months_open_request_of_the_care_manager() -> None:
    reads = PatientReads(
        requests=[
            request("p1:CCM:2026-03"),
            request("p1:BHI:2026-03", status="completed"),
            request("p1:CCM:2026-02"),
            request("p1:PCM:2026-03", requester="Practitioner/cm2"),
            request("p2:CCM:2026-03", pid="p2"),
        ]
    )
    r = patient_row("p1", CM, DAY, reads)
    assert [(x.kind, x.detail, x.due, x.reference) for x in r.reasons] == [
        (
            "outreach-due",
            "CCM outreach not reached",
            date(2026, 3, 31),
            "CommunicationRequest/cr-p1-CCM-2026-03-active",
        ),
    ]


def attempt(n: int, sent: str, status: str = "not-done", pid: str = "p1") -> Any:
    return build(
        "Communication",
        {
            "id": f"a{n}",
            "status": status,
            "subject": {"reference": f"Patient/{pid}"},
            "sent": sent,
            "identifier": [{"system": OUTREACH_ATTEMPT_ID, "value": f"{pid}:{n}"}],
        },
    )


def test_attempts_this_month_and_the_last_answered_contact(chicago_machine: None) -> None:
    comms = [
        build(
            "Communication",
            {
                "id": "x",
                "status": "completed",
                "sent": "2026-03-04T09:00:00Z",
                "subject": {"reference": "Patient/p1"},
            },
        ),  # not an outreach attempt
        attempt(5, "2026-03-01T10:00:00Z", pid="p2"),
        build(
            "Communication",
            {
                "id": "nosent",
                "status": "not-done",
                "subject": {"reference": "Patient/p1"},
                "identifier": [{"system": OUTREACH_ATTEMPT_ID, "value": "p1:0"}],
            },
        ),
        attempt(1, "2026-02-20T10:00:00Z", "completed"),
        attempt(2, "2026-03-02T10:00:00Z"),
        attempt(3, "2026-03-03T10:00:00Z", "completed"),
        attempt(4, "2026-02-27T10:00:00Z", "completed"),
        attempt(6, "2026-03-01T03:00:00Z"),  # March in UTC, still February in Chicago
    ]
    r = patient_row("p1", CM, DAY, PatientReads(communications=comms))
    assert r.attempts == 3
    assert r.last_contact == datetime(2026, 3, 3, 10, tzinfo=UTC)
    early = patient_row("p1", CM, DAY, PatientReads(communications=comms[:4]))
    assert (early.attempts, early.last_contact) == (0, datetime(2026, 2, 20, 10, tzinfo=UTC))


def test_programs_are_the_care_managers_active_or_pending_plans() -> None:
    plans = [
        plan("CCM"),
        plan("BHI", status="draft"),
        plan("PCM", manager="Practitioner/cm2"),
        plan("RPM", status="revoked"),
    ]
    r = patient_row("p1", CM, DAY, PatientReads(plans=plans))
    assert r.programs == ("BHI", "CCM")


def test_minutes_to_the_next_code_for_active_plans_only() -> None:
    r = patient_row("p1", CM, DAY, PatientReads(plans=[plan("CCM"), plan("BHI", status="draft")]))
    [reason] = r.reasons
    assert reason.kind == "minutes-to-threshold"
    assert reason.detail == "CCM: 20 min to 99490 (0 logged)"
    assert r.minutes_needed == 20


def logged(
    minutes: float,
    program: str = "CCM",
    *,
    month: str = "2026-03",
    role: str = "clinical-staff",
    billed: bool = True,
) -> LoggedTime:
    return LoggedTime(program, month, role, minutes, billed)  # type: ignore[arg-type]


def minutes_reasons(
    monkeypatch: pytest.MonkeyPatch,
    plans: list[Any],
    entries: list[LoggedTime],
    config: BillingConfig | None = None,
) -> list[str]:
    monkeypatch.setattr(worklist_module, "charge_entries", lambda items, patient: entries)
    r = patient_row("p1", CM, DAY, PatientReads(plans=plans), config or BillingConfig())
    return [x.detail for x in r.reasons if x.kind == "minutes-to-threshold"]


def test_only_this_months_billed_clinical_staff_minutes_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = [
        logged(12),
        logged(8),
        logged(30, month="2026-02"),
        logged(30, role="provider"),
        logged(30, billed=False),
        logged(5, "PCM"),
    ]
    assert minutes_reasons(monkeypatch, [plan("CCM")], entries) == [
        "CCM: 20 min to 99439 (20 logged)"
    ]
    assert minutes_reasons(monkeypatch, [plan("CCM")], entries[:1]) == [
        "CCM: 8 min to 99490 (12 logged)"
    ]


def test_a_program_with_nothing_more_to_bill_or_no_ladder_skips_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capped = BillingConfig(addon_limits={"99439": 0})
    got = minutes_reasons(monkeypatch, [plan("CCM"), plan("PCM")], [logged(20)], capped)
    assert [d.split(":")[0] for d in got] == ["PCM"]
    got = minutes_reasons(monkeypatch, [plan("APCM"), plan("CCM")], [])
    assert [d.split(":")[0] for d in got] == ["CCM"]


def test_bhi_has_its_own_ladder() -> None:
    r = patient_row("p1", CM, DAY, PatientReads(plans=[plan("BHI")]))
    [reason] = r.reasons
    assert reason.detail.startswith("BHI: 20 min to 99484") and r.minutes_needed == 20


def test_as_of_keeps_an_aware_now_and_uses_the_utc_day(monkeypatch: pytest.MonkeyPatch) -> None:
    chicago = datetime.fromisoformat("2026-03-03T21:30:00-06:00")  # 4 March in UTC
    assert as_of(None, chicago) == (DAY, chicago)
    assert as_of(DAY, chicago) == (DAY, chicago)
    local_zone(monkeypatch, "America/Chicago")  # a machine whose local zone is not UTC
    try:
        assert as_of(None, chicago) == (DAY, chicago)
        assert as_of(DAY, chicago) == (DAY, chicago)
        day, now = as_of(None)
        assert now.utcoffset() == timedelta(0)
        assert abs(now - datetime.now(UTC)) < timedelta(minutes=5)
        assert day == now.date()
    finally:
        monkeypatch.delenv("TZ")
        time_module.tzset()


def test_to_json_and_table() -> None:
    when = datetime(2026, 3, 1, 9, tzinfo=UTC)
    r = WorklistRow(
        "Patient/p1", ("CCM",), (Reason("escalation", "call", DAY, "Task/e"),), 2, when, 5
    )
    assert r.to_json() == {
        "patient": "Patient/p1",
        "programs": ["CCM"],
        "attempts": 2,
        "reasons": [
            {"kind": "escalation", "detail": "call", "due": "2026-03-04", "reference": "Task/e"}
        ],
        "last_contact": "2026-03-01T09:00:00+00:00",
        "minutes_needed": 5,
        "days_needed": None,
        "assessments": [],
        "talking_points": [],
    }
    listing = Worklist(CM, DAY, (r,))
    assert listing.to_json()["month"] == "2026-03"
    assert table(listing).splitlines()[2].split() == [
        "1",
        "Patient/p1",
        "CCM",
        "2",
        "2026-03-01",
        "call",
    ]
    assert table(Worklist(CM, DAY)).splitlines()[-1] == "(no patients)"


@pytest.mark.parametrize("missing", ["due", "last_contact"])
def test_json_of_what_is_not_known_is_null(missing: str) -> None:
    r = WorklistRow("Patient/p1", (), (Reason("escalation", "x"),), 0, None)
    out = r.to_json()
    assert out["last_contact"] is None and out["reasons"][0]["due"] is None
