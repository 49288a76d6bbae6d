"""The daily call list: ranking, its JSON, the day it is for, and rows built from the handlers'
own FHIR resources (in-memory store)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any

from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.core.envelope import new_event
from carecoord.handlers.billing import handler as billing
from carecoord.handlers.jobs.worklist import Reason, WorklistRow, as_of, rank, table, worklist
from carecoord.handlers.programs import enrolment, outreach, tcm
from support.care_management import Runner, attempted, enrolled

SPECS = [*enrolment.HANDLERS, *outreach.HANDLERS, *tcm.HANDLERS, *billing.HANDLERS]
CM = "Practitioner/cm1"
CONDITIONS = ["Condition/c1", "Condition/c2"]


def row(patient: str, *reasons: Reason, minutes: int | None = None) -> WorklistRow:
    return WorklistRow(f"Patient/{patient}", ("CCM",), tuple(reasons), 0, None, minutes)


def test_rank_most_urgent_reason_first_then_due_then_minutes() -> None:
    rows = [
        row("minutes-8", Reason("minutes-to-threshold", "8"), minutes=8),
        row("minutes-3", Reason("minutes-to-threshold", "3"), minutes=3),
        row("idle"),
        row("outreach", Reason("outreach-due", "x", date(2026, 3, 31))),
        row("tcm-late", Reason("tcm-overdue", "x", date(2026, 3, 3))),
        row("tcm-later", Reason("tcm-overdue", "x", date(2026, 3, 2))),
        row("escalated", Reason("outreach-due", "x"), Reason("escalation", "x")),
        row("question", Reason("overdue-question", "x", date(2026, 3, 1))),
    ]
    ranked = rank(rows)
    assert [r.patient.removeprefix("Patient/") for r in ranked] == [
        "tcm-later",
        "tcm-late",
        "question",
        "escalated",
        "outreach",
        "minutes-3",
        "minutes-8",
        "idle",
    ]
    escalated = next(r for r in ranked if r.patient == "Patient/escalated")
    assert [r.kind for r in escalated.reasons] == ["escalation", "outreach-due"]


def test_as_of_today_is_now_and_another_day_is_its_end() -> None:
    now = datetime(2026, 3, 4, 8, 30, tzinfo=UTC)
    assert as_of(None, now) == (date(2026, 3, 4), now)
    assert as_of(date(2026, 3, 4), now) == (date(2026, 3, 4), now)
    assert as_of(date(2026, 3, 10), now) == (
        date(2026, 3, 10),
        datetime.combine(date(2026, 3, 10), time.max, UTC),
    )
    naive = datetime(2026, 3, 4, 8, 30)
    assert as_of(None, naive)[1].tzinfo is UTC


def _pipeline() -> Runner:
    run = Runner(SPECS)
    start = "2026-03-02"
    for pid in ("p-tcm", "p-esc", "p-min", "p-new"):
        run.run(enrolled(pid, start=start, care_manager=CM, conditions=CONDITIONS))
    run.run(enrolled("p-other", start=start, care_manager="Practitioner/cm2"))
    run.run(enrolled("p-pending", start=start, care_manager=CM, consent=None))
    run.run(
        new_event(
            "carecoord.patient.discharged",
            "p-tcm",
            {"discharged_at": "2026-03-02T15:00:00+00:00", "facility": "General",
             "setting": "inpatient", "complexity": "high"},
            id="discharge-p-tcm",
        )
    )  # fmt: skip
    for n in range(1, 4):
        run.run(attempted("p-esc", n, "no-answer", at="2026-03-0{n}T10:00:00Z"))
    run.run(attempted("p-min", 1, "answered", at="2026-03-03T10:00:00Z"))
    run.run(
        new_event(
            "carecoord.time.logged",
            "p-min",
            {"program": "CCM", "minutes": 12, "activity": "care coordination", "by": CM,
             "performed_at": "2026-03-03T10:30:00+00:00"},
            id="time-p-min",
        )
    )  # fmt: skip
    return run


def test_worklist_ranks_the_care_managers_patients_from_fhir() -> None:
    run = _pipeline()
    now = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)  # a Friday: the 2-business-day contact is late
    result = worklist(run.fhir, CM, None, now=now)
    patients = [r.patient.removeprefix("Patient/") for r in result.rows]
    assert "p-other" not in patients  # another care manager's patient
    assert patients[:2] == ["p-tcm", "p-esc"]
    by_id = {r.patient.removeprefix("Patient/"): r for r in result.rows}
    tcm_row = by_id["p-tcm"]
    assert tcm_row.reasons[0].kind == "tcm-overdue"
    assert tcm_row.reasons[0].due == date(2026, 3, 4)  # discharge Monday + 2 business days
    assert by_id["p-esc"].reasons[0].kind == "escalation"
    assert by_id["p-esc"].attempts == 3 and by_id["p-esc"].last_contact is None
    minutes = by_id["p-min"]
    assert minutes.minutes_needed == 8  # 12 of the 20 minutes 99490 needs
    assert minutes.last_contact == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    # reached this month; the CCM enrolment's social-needs screening is due since its start
    assert [r.kind for r in minutes.reasons] == ["assessment-due", "minutes-to-threshold"]
    assert "99490" in minutes.reasons[-1].detail
    new = by_id["p-new"]
    kinds = [r.kind for r in new.reasons]
    assert kinds == ["outreach-due", "assessment-due", "minutes-to-threshold"]
    assert new.minutes_needed == 20
    pending = by_id["p-pending"]
    assert [r.kind for r in pending.reasons] == ["outreach-due", "obtain-consent"]
    assert patients.index("p-new") < patients.index("p-min")  # not reached before minutes


def test_a_tcm_deadline_of_the_day_is_due_today_not_overdue() -> None:
    run = _pipeline()
    result = worklist(run.fhir, CM, date(2026, 3, 4), now=datetime(2026, 3, 1, tzinfo=UTC))
    (tcm_row,) = [r for r in result.rows if r.patient == "Patient/p-tcm"]
    assert tcm_row.reasons[0].kind == "tcm-due-today"
    earlier = worklist(run.fhir, CM, date(2026, 3, 3), now=datetime(2026, 3, 1, tzinfo=UTC))
    (tcm_row,) = [r for r in earlier.rows if r.patient == "Patient/p-tcm"]
    assert "tcm-overdue" not in {r.kind for r in tcm_row.reasons}
    assert "tcm-due-today" not in {r.kind for r in tcm_row.reasons}


def test_json_shape_and_table() -> None:
    run = _pipeline()
    result = worklist(run.fhir, CM, date(2026, 3, 6), now=datetime(2026, 3, 6, 9, tzinfo=UTC))
    data: dict[str, Any] = json.loads(json.dumps(result.to_json()))
    assert set(data) == {"care_manager", "date", "month", "patients"}
    assert data["care_manager"] == CM and data["date"] == "2026-03-06"
    assert data["month"] == "2026-03"
    first = data["patients"][0]
    assert set(first) == {
        "patient",
        "programs",
        "reasons",
        "attempts",
        "last_contact",
        "minutes_needed",
        "days_needed",
        "assessments",
        "talking_points",
    }
    assert first["programs"] == ["CCM"]
    assert set(first["reasons"][0]) == {"kind", "detail", "due", "reference"}
    assert first["reasons"][0]["reference"].startswith("Task/")
    text = table(result)
    lines = text.splitlines()
    assert lines[0] == f"Call list for {CM}, 2026-03-06"
    assert lines[1].split() == [
        "#",
        "patient",
        "program",
        "attempts",
        "last",
        "contact",
        "to",
        "do",
    ]
    assert "Patient/p-tcm" in lines[2]


def test_cli_rejects_a_care_manager_that_is_no_reference() -> None:
    result = CliRunner().invoke(app, ["worklist", "--care-manager", "cm1"])
    assert result.exit_code == 2


def test_a_past_month_s_list_ignores_contacts_made_after_it() -> None:
    """The Communication search has no upper bound (docs/architecture.md: an `lt` scans every
    older entry): a call answered in April must not become March's last contact."""
    run = _pipeline()
    run.run(enrolled("p-late", start="2026-03-02", care_manager=CM, conditions=CONDITIONS))
    due = {"period_start": "2026-04-01", "period_end": "2026-04-30"}
    run.run(new_event("carecoord.outreach.due", "p-late", due, id="due-p-late-april"))
    run.run(attempted("p-late", 1, "answered", at="2026-04-20T10:00:00Z"))
    march = worklist(run.fhir, CM, date(2026, 3, 31), now=datetime(2026, 4, 21, tzinfo=UTC))
    late = {r.patient: r for r in march.rows}["Patient/p-late"]
    assert late.last_contact is None and late.attempts == 0
    april = worklist(run.fhir, CM, date(2026, 4, 21), now=datetime(2026, 4, 21, tzinfo=UTC))
    late_april = {r.patient: r for r in april.rows}.get("Patient/p-late")
    assert late_april is None or late_april.last_contact == datetime(2026, 4, 20, 10, tzinfo=UTC)


def test_the_month_s_contacts_end_two_days_after_it_in_utc() -> None:
    """The lower-bound-only search's local cut: a day either side of the month absorbs UTC
    offsets, so April 1 still counts for March's list and April 2 (UTC) no longer does."""
    run = _pipeline()
    due = {"period_start": "2026-04-01", "period_end": "2026-04-30"}
    for pid, at in (("p-apr1", "2026-04-01T23:59:00Z"), ("p-apr2", "2026-04-02T00:00:00Z")):
        run.run(enrolled(pid, start="2026-03-02", care_manager=CM, conditions=CONDITIONS))
        run.run(new_event("carecoord.outreach.due", pid, due, id=f"due-{pid}-april"))
        run.run(attempted(pid, 1, "answered", at=at))
    march = worklist(run.fhir, CM, date(2026, 3, 31), now=datetime(2026, 4, 21, tzinfo=UTC))
    rows = {r.patient: r for r in march.rows}
    assert rows["Patient/p-apr1"].last_contact == datetime(2026, 4, 1, 23, 59, tzinfo=UTC)
    assert rows["Patient/p-apr2"].last_contact is None
