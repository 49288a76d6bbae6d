"""The demo's HTML report: one file, styles inline, charts as inline SVG drawn here — it opens
offline and makes no network request (no scripts, no external src/href, no fonts)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path

from carecoord.demo.runner import DemoRun
from carecoord.demo.screen_outcomes import ScreeningFigures
from carecoord.demo.summary import (
    NOT_ON_MINUTES,
    REFERRAL_STATUSES,
    UNANSWERED,
    Billing,
    Summary,
)

COLOURS = {
    "due": "#9aa5b1",
    "attempted": "#5b8def",
    "reached": "#2f9e44",
    "escalated": "#e8590c",
    "requested": "#adb5bd",
    "accepted": "#74c0fc",
    "in-progress": "#4dabf7",
    "completed": "#2f9e44",
    "rejected": "#f08c00",
    "cancelled": "#9775fa",
    "failed": "#e03131",
}
STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#212529;padding:0 1rem}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #dee2e6;padding-bottom:.3rem}
.sub{color:#495057}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:1.5rem}
.card{border:1px solid #dee2e6;border-radius:8px;padding:1rem;background:#fff;margin-bottom:1rem}
table{border-collapse:collapse;font-size:.9rem;width:100%}td,th{padding:.25rem .5rem;
border-bottom:1px solid #f1f3f5;text-align:left}td.n,th.n{text-align:right}
svg.chart{max-width:100%;height:auto;display:block}
.worklist td{white-space:nowrap}.worklist td:nth-child(3){white-space:normal}
svg text{font-size:13px;fill:#343a40}.note{color:#6c757d;font-size:.85rem}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{border:1px solid #dee2e6;border-radius:8px;
padding:.6rem 1rem;min-width:140px}.kpi b{display:block;font-size:1.5rem}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _short(reference: str) -> str:
    return reference.split("/", 1)[-1]


def _svg(chart_id: str, width: int, height: int, body: Sequence[str], title: str) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" role="img" aria-label="{_e(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'preserveAspectRatio="xMinYMin meet">'
        f"<title>{_e(title)}</title>{''.join(body)}</svg>"
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> str:
    title = f"<title>{_e(tip)}</title>" if tip else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{fill}">{title}</rect>'
    )


def _text(x: float, y: float, text: object, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{_e(text)}</text>'


def funnel_chart(summary: Summary) -> str:
    """Due → attempted → reached → escalated, for the practice and per care manager."""
    stages = ("due", "attempted", "reached", "escalated")
    rows = [("practice", summary.funnel["all"])] if "all" in summary.funnel else []
    rows += [(_short(cm), f) for cm, f in summary.funnel.items() if cm != "all"]
    top = max((f.due for _, f in rows), default=1) or 1
    left, bar_w, bar_h, gap = 130, 520, 16, 12
    body, y = [], 20
    for label, f in rows:
        body.append(_text(left - 8, y + 2 * bar_h, label, "end", 'font-weight="600"'))
        for i, stage in enumerate(stages):
            value = getattr(f, stage)
            w = bar_w * value / top
            body.append(
                _rect(left, y + i * bar_h, w, bar_h - 2, COLOURS[stage], f"{stage}: {value}")
            )
            body.append(_text(left + w + 4, y + i * bar_h + bar_h - 4, value))
        y += 4 * bar_h + gap
    for i, stage in enumerate(stages):
        body.append(_rect(left + i * 110, y + 4, 10, 10, COLOURS[stage]))
        body.append(_text(left + i * 110 + 14, y + 13, stage))
    return _svg(
        "chart-funnel", 720, y + 24, body, "Outreach funnel: due, attempted, reached, escalated"
    )


def referrals_chart(snapshots: Sequence[dict[str, int]]) -> str:
    """Referral Tasks by status at the end of each simulated day (stacked bars)."""
    days = len(snapshots)
    left, top, plot_w, plot_h = 50, 10, 620, 220
    peak = max((sum(s.values()) for s in snapshots), default=0) or 1
    body = []
    step = plot_w / max(days, 1)
    for i, snap in enumerate(snapshots):
        base: float = top + plot_h
        for status in REFERRAL_STATUSES:
            n = snap.get(status, 0)
            h = plot_h * n / peak
            base -= h
            tip = f"day {i + 1}: {status} {n}"
            body.append(_rect(left + i * step + 1, base, step - 2, h, COLOURS[status], tip))
        if days <= 15 or (i + 1) % 5 == 0 or i == 0:
            body.append(_text(left + i * step + step / 2, top + plot_h + 14, i + 1, "middle"))
    body.append(_text(left - 6, top + 10, peak, "end"))
    body.append(_text(left - 6, top + plot_h, 0, "end"))
    body.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
                f'y2="{top + plot_h}" stroke="#495057"/>')  # fmt: skip
    body.append(_text(left + plot_w / 2, top + plot_h + 30, "day of November", "middle"))
    y = top + plot_h + 44
    for i, status in enumerate(REFERRAL_STATUSES):
        body.append(_rect(left + i * 92, y, 10, 10, COLOURS[status]))
        body.append(_text(left + i * 92 + 14, y + 9, status))
    return _svg("chart-referrals", 720, y + 20, body, "Referrals by status at the end of each day")


def caseload_chart(summary: Summary) -> str:
    """Patients per care manager against capacity."""
    left, bar_w, row = 130, 440, 34
    top = max(
        [c.capacity for c in summary.caseloads] + [c.patients for c in summary.caseloads] + [1]
    )
    body, y = [], 10
    for c in summary.caseloads:
        colour = "#e03131" if c.patients > c.capacity else "#5b8def"
        body.append(_text(left - 8, y + 17, _short(c.care_manager), "end"))
        body.append(
            _rect(left, y + 4, bar_w * c.capacity / top, 20, "#e9ecef", f"capacity {c.capacity}")
        )
        body.append(
            _rect(left, y + 4, bar_w * c.patients / top, 20, colour, f"patients {c.patients}")
        )
        x = left + bar_w * c.capacity / top
        body.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 28}" stroke="#212529" '
                    f'stroke-dasharray="3 2"/>')  # fmt: skip
        end = left + bar_w * max(c.patients, c.capacity) / top
        body.append(_text(end + 6, y + 18, f"{c.patients} / {c.capacity} ({c.load:.0%})"))
        y += row
    return _svg("chart-caseload", 720, y + 10, body, "Caseload per care manager against capacity")


def billing_chart(billing: Sequence[Billing]) -> str:
    """Per program with a billing ladder: patients by monthly minutes, with the thresholds."""
    ladders = [b for b in billing if b.ladder is not None]
    bin_w, max_min = 5, 90
    bins = max_min // bin_w
    left, plot_w, plot_h, gap = 50, 620, 110, 48
    body, y = [], 10
    for b in ladders:
        assert b.ladder is not None
        counts = Counter(min(int(m // bin_w), bins - 1) for m in b.minutes)
        peak = max(counts.values(), default=1)
        step = plot_w / bins
        n = len(b.minutes)
        label = f"{b.program}: {n} patient{'' if n == 1 else 's'} with time logged"
        body.append(_text(left, y + 10, label, "start", 'font-weight="600"'))
        base = y + 18 + plot_h
        for i in range(bins):
            n = counts.get(i, 0)
            h = plot_h * n / peak
            lo = i * bin_w
            tip = f"{lo}-{lo + bin_w} min: {n} patients"
            fill = "#2f9e44" if lo >= b.ladder.first_at else "#adb5bd"
            body.append(_rect(left + i * step + 1, base - h, step - 2, h, fill, tip))
        thresholds = [b.ladder.first_at]
        if b.ladder.addon_every:
            thresholds += list(
                range(b.ladder.first_at + b.ladder.addon_every, max_min, b.ladder.addon_every)
            )
        for k, th in enumerate(thresholds):
            x = left + plot_w * th / max_min
            code = b.ladder.first if k == 0 else (b.ladder.addon or "")
            body.append(f'<line x1="{x:.1f}" y1="{y + 14}" x2="{x:.1f}" y2="{base}" '
                        'stroke="#e8590c" stroke-width="1.5"/>')  # fmt: skip
            body.append(_text(x + 3, y + 26, f"{code} @ {th} min"))
        body.append(
            f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#495057"/>'
        )
        for m in range(0, max_min + 1, 10):
            body.append(_text(left + plot_w * m / max_min, base + 13, m, "middle"))
        y = base + gap - 10
    if not ladders:
        body.append(_text(10, 20, "no time logged for a program with a billing ladder"))
        y = 40
    body.append(
        _text(left + plot_w / 2, y - 14, "minutes logged this month (5-minute bins)", "middle")
    )
    return _svg("chart-billing", 720, y, body, "Billable minutes against thresholds")


def worklist_chart(summary: Summary) -> str:
    kinds = Counter(w.label for w in summary.worklist).most_common()
    left, bar_w = 250, 400
    top = max((n for _, n in kinds), default=1)
    body, y = [], 8
    for kind, n in kinds:
        body.append(_text(left - 8, y + 13, kind, "end"))
        body.append(_rect(left, y + 2, bar_w * n / top, 16, "#5b8def", f"{kind}: {n}"))
        body.append(_text(left + bar_w * n / top + 4, y + 14, n))
        y += 22
    if not kinds:
        body.append(_text(10, 20, "nothing open"))
        y = 30
    return _svg("chart-worklist", 720, y + 8, body, "Worklist items on the last day")


def screenings_chart(f: ScreeningFigures) -> str:
    """Per instrument: screens done and positives (horizontal bars)."""
    rows = [r for r in f.rows if r.done]
    left, bar_w, bar_h = 290, 360, 16
    top = max((r.done for r in rows), default=1) or 1
    bars = (("screens done", COLOURS["due"]), ("positive", COLOURS["escalated"]))
    body, y = [], 8
    for r in rows:
        body.append(_text(left - 8, y + bar_h + 2, r.label, "end", 'font-weight="600"'))
        for i, ((what, colour), n) in enumerate(zip(bars, (r.done, r.positive), strict=True)):
            w = bar_w * n / top
            body.append(_rect(left, y + i * bar_h, w, bar_h - 2, colour, f"{r.label}: {what} {n}"))
            body.append(_text(left + w + 4, y + i * bar_h + bar_h - 4, n))
        y += 2 * bar_h + 10
    for i, (what, colour) in enumerate(bars):
        body.append(_rect(left + i * 130, y + 4, 10, 10, colour))
        body.append(_text(left + i * 130 + 14, y + 13, what))
    return _svg("chart-screenings", 720, y + 24, body, "Screens done and positives per instrument")


def _screenings(f: ScreeningFigures) -> str:
    """Screens done, positives and what followed each positive, in a care manager's words."""
    if f.skipped:
        return (
            "<h2>Screenings and check-ins</h2>"
            f'<p class="note">Not simulated in this run: {_e(f.skipped)}.</p>'
        )
    if not f.any:
        return (
            "<h2>Screenings and check-ins</h2>"
            '<p class="note">No questionnaire was completed in the period.</p>'
        )
    done = _table(
        ("questionnaire", "screens done", "positive", "what counts as positive", "not scored"),
        [(r.label, r.done, r.positive, r.positive_label, r.not_scored) for r in f.rows if r.done],
    )
    cards = []
    for r in f.rows:
        if not r.positive:
            continue
        urgent = (
            f'<p class="note">{r.urgent} with thoughts of self-harm (question 9): sent to the '
            "provider as urgent.</p>"
            if r.urgent
            else ""
        )
        cards.append(
            f'<div class="card"><h3>After a positive {_e(r.label)} screen</h3>'
            f"{_table(('what followed', 'screens'), list(r.followed.items()))}{urgent}</div>"
        )
    return (
        "<h2>Screenings and check-ins</h2>"
        f'<div class="card">{screenings_chart(f)}{done}'
        f'<p class="note">Positives are read from {_e(f.source)}.</p></div>'
        f'<div class="grid">{"".join(cards)}</div>'
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    """Numbers right-aligned (their column heading too), text left."""
    numeric = [bool(rows) and all(isinstance(r[i], int) for r in rows) for i in range(len(header))]
    head = "".join(
        f'<th class="{"n" if numeric[i] else ""}">{_e(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if numeric[i] else ""}">{_e(c)}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


WORKLIST_ROWS = 25


def _worklist_note(shown: int, total: int) -> str:
    """ "all 10 items", or "the first 25 of 60 items" when the table is cut."""
    noun = "item" if total == 1 else "items"
    return f"all {total} {noun}" if total <= shown else f"the first {shown} of {total} {noun}"


def _features(s: Summary) -> str:
    """TCM deadlines, consent, disenrolments and clinical questions: each only when the period
    produced something for it (no section of zeros for what the practice did not see)."""
    cards = [
        f'<div class="card"><h3>{_e(f.title)}</h3>'
        f"{_table(('', 'number'), list(f.figures.items()))}"
        f'<p class="note">From {_e(f.note)}.</p></div>'
        for f in (s.tcm, s.consent, s.disenrolled, s.clinical)
        if f.any
    ]
    if not cards:
        return ""
    return (
        "<h2>Transitional care, consent, disenrolments and clinical questions</h2>"
        f'<div class="grid">{"".join(cards)}</div>'
    )


def render(demo: DemoRun, s: Summary) -> str:
    sc = demo.scale
    f = s.funnel.get("all")
    billed_units = sum(sum(b.units.values()) for b in s.billing)
    kpis = [
        ("patients", s.patients),
        ("reached", f"{f.reached} / {f.due}" if f else "-"),
        ("unanswered outreach escalated", s.escalations.get(UNANSWERED, 0)),
        ("referrals completed", s.referrals_by_status.get("completed", 0)),
        ("billable units", billed_units),
    ]
    kpi_html = "".join(f'<div class="kpi"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in kpis)
    domains = _table(
        ("need", *REFERRAL_STATUSES, "other"),
        [
            (d.replace("-", " "), *(st.get(x, 0) for x in REFERRAL_STATUSES),
             sum(v for k, v in st.items() if k not in REFERRAL_STATUSES))
            for d, st in s.referrals_by_domain.items()
        ],
    )  # fmt: skip
    codes = _table(
        ("program", "codes earned (units)", "patients billed", "patients with time logged"),
        [
            (b.program, ", ".join(f"{c} x{n}" for c, n in b.units.items()) or
             (NOT_ON_MINUTES if b.ladder is None else "no threshold reached yet"),
             b.patients_billed, b.patients_with_time)
            for b in s.billing
        ],
    )  # fmt: skip
    shown = s.worklist[:WORKLIST_ROWS]
    worklist = _table(
        ("reason", "patient", "details", "due", "priority"),
        [(w.label, w.patient, w.detail, (w.due or "")[:10], w.priority) for w in shown],
        "worklist",
    )
    last_day = f"{sc.last_day:%A} {sc.last_day.day} {sc.last_day:%B %Y}"
    dead = _table(("error", "event type", "message"), s.dead_letters) if s.dead_letters else "none"
    escalations = _table(("", "tasks"), list(s.escalations.items()))
    emitted = _table(("event", "count"), list(s.emitted.items()))
    needs = sum(s.referrals_by_status.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>carecoord demo: {_e(sc.period)}</title><style>{STYLE}</style></head>
<body>
<h1>A care-management practice, {_e(sc.period)}</h1>
<p class="sub">{sc.patients} patients, {sc.care_managers} care managers (simulated). Every figure
below is read back from the practice's care record after the period's calls, enrolments,
referrals and logged time went through carecoord.</p>
<div class="kpis">{kpi_html}</div>
<h2>Outreach</h2>
<div class="card">{funnel_chart(s)}</div>
<div class="card"><h3>Escalations and routed work</h3>{escalations}</div>
<h2>Community referrals</h2>
<div class="card">{referrals_chart(s.snapshots)}</div>
<div class="card"><h3>By need (latest status of each referral)</h3>{domains}
<p class="note">{s.referral_attempts} referrals sent to community organisations for
{needs} needs.</p></div>
<h2>Caseload</h2>
<div class="card">{caseload_chart(s)}</div>
<h2>Billable time</h2>
<div class="card">{billing_chart(s.billing)}</div>
<div class="card"><h3>Billable codes and units</h3>{codes}</div>
<h2>Worklist of {_e(_short(s.worklist_for))} on {_e(last_day)}</h2>
<div class="card">{worklist_chart(s)}</div>
<div class="card">{worklist}<p class="note">{_e(_worklist_note(len(shown), len(s.worklist)))}
on the call list for {_e(last_day)}, the last day of the period.</p></div>
{_screenings(s.screenings)}
{_features(s)}
<h2>For the technical team</h2>
<div class="card"><h3>Messages that could not be processed (dead letters)</h3>{dead}</div>
<div class="card"><h3>Events sent to other systems (outbound topic)</h3>{emitted}</div>
<p class="note">Seed {sc.seed}. Read back from the FHIR server: {s.resources_read} resources in
{s.fhir_searches} searches; the worklist is {_e(s.worklist_source)}. Simulated in
{demo.seconds:.0f} s.</p>
</body></html>
"""


def write(path: Path, demo: DemoRun, summary: Summary) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(demo, summary), encoding="utf-8")
    return path
