"""The demo's report: it covers the simulated period on the demo's clock (title, worklist day, TCM
deadlines), says "all N" of a short worklist, and has no section of zeros for what the period did
not produce."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from carecoord.caremodel import terminology as t
from carecoord.demo import summary as summary_mod
from carecoord.demo.fhirdata import FhirData
from carecoord.demo.report import render
from carecoord.demo.runner import DemoRun
from carecoord.demo.sim import Scale
from carecoord.demo.summary import Caseload, Figures, Funnel, Summary, WorkItem, compute
from carecoord.events.memory import InMemoryBroker
from carecoord.settings import load_settings


def _demo(days: int) -> DemoRun:
    scale = Scale(patients=10, care_managers=1, days=days, run="r")
    settings = load_settings(kafka_bootstrap="127.0.0.1:9", fhir_base_url="http://127.0.0.1:9/fhir")
    return DemoRun(
        scale=scale, settings=settings, fhir_url=settings.fhir_base_url, bootstrap="127.0.0.1:9",
        care_managers=["Practitioner/cm-rivera"], capacities={"Practitioner/cm-rivera": 250},
        handler_config={}, ended_at=datetime(2026, 11, days, 17, tzinfo=UTC),
    )  # fmt: skip


def _none(title: str) -> Figures:
    return Figures(title, "the tasks", {"a figure": 0})


def _summary(items: int = 3, **features: Figures) -> Summary:
    work = [
        WorkItem("outreach-due", f"r-{i:04d}", "CCM outreach not reached", "2026-11-30", "routine")
        for i in range(items)
    ]
    return Summary(
        patients=10, care_plans={"CCM": 10}, funnel={"all": Funnel(due=10, reached=4)},
        escalations={summary_mod.UNANSWERED: 1}, referrals_by_status={}, referrals_by_domain={},
        referral_attempts=0, tcm=features.get("tcm", _none("TCM")),
        caseloads=[Caseload("Practitioner/cm-rivera", 10, 250)], billing=[], dead_letters=[],
        emitted={}, worklist_for="Practitioner/cm-rivera", worklist=work, worklist_source="-",
        snapshots=[{}], consent=features.get("consent", _none("Consent")),
        disenrolled=_none("Disenrolments"), clinical=_none("Clinical questions"),
    )  # fmt: skip


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_title_names_the_simulated_period() -> None:
    html = render(_demo(5), _summary())
    title = re.search(r"<title>(.*?)</title>", html)
    h1 = re.search(r"<h1>(.*?)</h1>", html)
    assert title and "5 days: 1\u20135 November 2026" in title.group(1)
    assert h1 and "5 days: 1\u20135 November 2026" in h1.group(1)
    assert "a month" not in _text(html).lower()
    assert Scale(days=1).period == "1 day: 1 November 2026"
    assert Scale(days=30).period == "30 days: 1\u201330 November 2026"
    # the worklist is the last simulated day's
    assert "Worklist of cm-rivera on Thursday 5 November 2026" in _text(html)


def _worklist_rows(html: str) -> int:
    table = html.split("Worklist of", 1)[1].split("</table>", 1)[0]
    return table.count("<tr>") - 1  # the heading row


def test_a_short_worklist_is_all_of_it_and_a_long_one_says_where_it_is_cut() -> None:
    short = render(_demo(5), _summary(items=10))
    assert "all 10 items on the call list" in _text(short)
    assert "first" not in _text(short).split("Worklist of", 1)[1]
    assert _worklist_rows(short) == 10
    long = render(_demo(5), _summary(items=30))
    assert "the first 25 of 30 items on the call list" in _text(long)
    assert _worklist_rows(long) == 25


def test_no_stale_section_and_features_only_with_figures() -> None:
    quiet = _text(render(_demo(5), _summary())).lower()
    for stale in ("not on this branch", "branch", "tcm deadline tasks", "consent tasks"):
        assert stale not in quiet, stale
    assert "transitional care" not in quiet  # nothing produced: left out, no table of zeros

    tcm = Figures("Transitional care (TCM) deadlines", "the TCM tasks",
                  {"contact within 2 business days: due": 3,
                   "contact within 2 business days: missed": 1})  # fmt: skip
    busy = _text(render(_demo(5), _summary(tcm=tcm)))
    assert "Transitional care (TCM) deadlines" in busy
    assert "contact within 2 business days: due 3" in busy
    assert "contact within 2 business days: missed 1" in busy
    assert (
        "Consent" not in busy.split("Transitional care (TCM) deadlines", 1)[1].split("For the")[0]
    )


TCM_TASK = {
    "resourceType": "Task", "id": "tcm-1", "status": "requested", "intent": "order",
    "code": {"coding": [{"system": t.TASK_TCM_INTERACTIVE_CONTACT.system,
                         "code": t.TASK_TCM_INTERACTIVE_CONTACT.code}]},
    "for": {"reference": "Patient/r-0001"},
    "restriction": {"period": {"end": "2026-11-03"}},
}  # fmt: skip


def _fhir(request: httpx.Request) -> httpx.Response:
    entries: list[dict[str, Any]] = []
    if request.url.path.endswith("/Task") and t.TASK_TCM_INTERACTIVE_CONTACT.code in str(
        request.url
    ):
        entries = [{"resource": TCM_TASK}]
    return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})


@pytest.mark.parametrize(
    ("now", "missed", "open_in_time"),
    [(datetime(2026, 11, 2, 17, tzinfo=UTC), 0, 1), (datetime(2026, 11, 5, 17, tzinfo=UTC), 1, 0)],
)
def test_the_worklist_and_tcm_deadlines_are_on_the_demos_clock(
    monkeypatch: pytest.MonkeyPatch, now: datetime, missed: int, open_in_time: int
) -> None:
    days: list[date] = []

    def worklist(fhir_url: str, care_manager: str, day: date) -> tuple[list[WorkItem], str]:
        days.append(day)
        return [], "-"

    monkeypatch.setattr(summary_mod, "worklist", worklist)
    with FhirData("http://127.0.0.1:9/fhir", transport=httpx.MockTransport(_fhir)) as data:
        s = compute(
            data, InMemoryBroker(), prefix="r-", care_managers=["Practitioner/cm-rivera"],
            capacities={}, topic_out="out", topic_dlq="dlq", now=now,
        )  # fmt: skip
    assert days == [now.date()]  # the simulated day, never the machine's
    assert s.tcm.figures["contact within 2 business days: due"] == 1
    assert s.tcm.figures["contact within 2 business days: missed"] == missed
    assert s.tcm.figures["contact within 2 business days: still open in time"] == open_in_time
