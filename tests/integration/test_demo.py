"""`carecoord demo` at small scale on the session's real servers: the summary is what the FHIR
server and the topics hold (checked here with independent searches), and the report is one
self-contained file with the five charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import identifier_system
from carecoord.demo.main import run
from carecoord.demo.sim import Scale
from carecoord.fhir.client import FhirClient

pytestmark = pytest.mark.integration

CHARTS = ("chart-funnel", "chart-referrals", "chart-caseload", "chart-billing", "chart-worklist")


def _mine(resources: list[object], prefix: str) -> list[object]:
    out = []
    for r in resources:
        subject = getattr(r, "subject", None) or getattr(r, "for_fhir", None)
        reference = getattr(subject, "reference", "") or ""
        if reference.startswith(f"Patient/{prefix}"):
            out.append(r)
    return out


def test_demo_summary_comes_from_fhir_and_the_report_is_self_contained(
    kafka_bootstrap: str,
    fhir_base_url: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARECOORD_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", fhir_base_url)
    scale = Scale(patients=30, care_managers=3, seed=11, days=3, run=f"t{unique}")
    result = run(scale, report_path=tmp_path / "report.html", progress=False)
    s = result.summary
    prefix = f"{scale.run}-"

    with FhirClient(fhir_base_url) as fhir:
        plans = _mine(
            fhir.search("CarePlan", {"identifier": f"{identifier_system('care-plan')}|"}), prefix
        )
        requests = _mine(
            fhir.search(
                "CommunicationRequest", {"identifier": f"{identifier_system('outreach-request')}|"}
            ),
            prefix,
        )
        tcm_contacts = _mine(
            fhir.search(
                "Task", {"code": f"{t.TASK_TYPE_SYSTEM}|{t.TASK_TCM_INTERACTIVE_CONTACT.code}"}
            ),
            prefix,
        )
        billable = _mine(
            fhir.search("ChargeItem", {"identifier": f"{identifier_system('charge-item')}|"}),
            prefix,
        )
    assert s.patients == scale.patients == len(plans)
    assert s.funnel["all"].due == len(requests)
    assert sum(c.patients for c in s.caseloads) == len({r.subject.reference for r in requests})  # type: ignore[attr-defined]
    assert sum(sum(b.units.values()) for b in s.billing) == len(billable)
    assert s.funnel["all"].attempted > 0 and s.funnel["all"].reached > 0
    # the one poison message of the first days is the only dead letter
    poison = sum(d.poison for d in result.run.days)
    assert poison == 1 and len(s.dead_letters) == poison
    assert len(s.snapshots) == scale.days
    # the worklist and the TCM deadlines are those of the last simulated day (3 November), not
    # of the machine's clock: nothing due on or after that day shows as overdue
    assert result.run.ended_at == datetime(2026, 11, 3, 17, tzinfo=UTC)
    assert s.worklist, "the lead care manager has a worklist"
    overdue = [w for w in s.worklist if w.kind == "tcm-overdue"]
    assert all(w.due and w.due[:10] < "2026-11-03" for w in overdue), overdue
    assert s.tcm.figures["contact within 2 business days: due"] == len(tcm_contacts)

    html = result.report.read_text(encoding="utf-8")
    assert "3 days: 1\u20133 November 2026" in html
    assert "Worklist of" in html and "on Tuesday 3 November 2026" in html
    assert result.report.parent == tmp_path and list(tmp_path.iterdir()) == [result.report]
    for chart in CHARTS:
        assert re.search(rf'<svg id="{chart}"[^>]*>.*?</svg>', html, re.S), chart
    lowered = html.lower()
    for forbidden in (
        "<script",
        " src=",
        " href=",
        "http://",
        "https://",
        "url(",
        "@import",
        "<link",
    ):
        assert forbidden not in lowered, forbidden
