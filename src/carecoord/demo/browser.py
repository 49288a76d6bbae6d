"""`make demo-check`: render the demo's report in a real headless Chromium, offline.

    python -m carecoord.demo.browser REPORT.html

Dumps the DOM after layout and takes a screenshot (kept beside the report as REPORT.png) with
every network feature off and all hosts unresolvable and proxied to a closed port (so a request,
if the report made one, could not succeed), then checks that the five charts (and the screenings
chart, when the run simulated screenings: the report then has it) are in the rendered DOM with
their bars, that the screenshot is not blank, and that every chart label is legible at
100 % zoom: its font size times the chart's scale on screen (the SVG's screen transform, as the
browser laid it out in a 1200 px wide window) is at least 12 CSS px. The report has no scripts;
the sizes are measured on a copy with one measuring script added. Exit status 0 when it renders.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHARTS = ("chart-funnel", "chart-referrals", "chart-caseload", "chart-billing", "chart-worklist")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9", "--window-size=1200,7000",
)  # fmt: skip
# Charts of features a run may not have simulated: checked when the report contains them.
OPTIONAL_CHARTS = ("chart-screenings",)
MIN_LABEL_PX = 12.0  # smallest legible chart label at 100 % zoom
# Per chart: "id:labels:smallest rendered font size in CSS px", into a <pre> the DOM dump shows.
MEASURE = """<script>
(function () {
  var out = [];
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var smallest = Infinity, labels = 0;
    svg.querySelectorAll("text").forEach(function (text) {
      var m = text.getScreenCTM();
      if (!text.textContent.trim() || !m) return;
      var px = parseFloat(getComputedStyle(text).fontSize) * Math.hypot(m.a, m.b);
      labels += 1;
      smallest = Math.min(smallest, px);
    });
    out.push(svg.id + ":" + labels + ":" + (labels ? smallest.toFixed(2) : "0"));
  });
  var pre = document.createElement("pre");
  pre.id = "carecoord-legibility";
  pre.textContent = out.join(" ");
  document.body.appendChild(pre);
})();
</script>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def charts(page: str) -> tuple[str, ...]:
    """The charts `page` must render: the five, and the optional ones it contains."""
    return CHARTS + tuple(c for c in OPTIONAL_CHARTS if f'<svg id="{c}"' in page)


def check(report: Path) -> list[str]:
    """Problems found rendering `report` (empty: it renders)."""
    exe = chromium()
    if exe is None:
        return ["Chromium not found: apt-get install -y chromium"]
    url = report.resolve().as_uri()
    problems = []
    with tempfile.TemporaryDirectory(prefix="carecoord-chromium-") as profile:
        base = [exe, *FLAGS, f"--user-data-dir={profile}"]
        dom = subprocess.run(
            [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
        ).stdout
        for chart in charts(report.read_text(encoding="utf-8")):
            svg = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S)
            if svg is None:
                problems.append(f"{chart}: not in the rendered DOM")
            elif "<rect" not in svg.group(0) and "<text" not in svg.group(0):
                problems.append(f"{chart}: rendered empty")
        problems += legibility(base, report, Path(profile))
        shot = Path(profile) / "report.png"
        subprocess.run(
            [*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False
        )
        size = shot.stat().st_size if shot.exists() else 0
        if size < 20_000:  # a blank 1200x7000 page compresses to a few KB
            problems.append(f"screenshot is {size} bytes: the page looks blank")
        else:
            keep = report.with_suffix(".png")
            shutil.copy(shot, keep)
            print(f"screenshot: {keep} ({size} bytes)")
    return problems


def legibility(base: list[str], report: Path, workdir: Path) -> list[str]:
    """Chart labels rendered under MIN_LABEL_PX, measured in the browser on a copy of `report`
    with the MEASURE script added."""
    page = report.read_text(encoding="utf-8")
    copy = workdir / "measured.html"
    copy.write_text(page.replace("</body>", MEASURE + "</body>", 1), encoding="utf-8")
    dom = subprocess.run(
        [*base, "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    found = re.search(r'<pre id="carecoord-legibility">(.*?)</pre>', dom, re.S)
    if found is None:
        return ["chart labels: could not measure them (the measuring script did not run)"]
    sizes = {}
    for item in html.unescape(found.group(1)).split():
        chart, count, size = item.rsplit(":", 2)
        sizes[chart] = (int(count), float(size))
    problems = []
    for chart in charts(page):
        labels, smallest = sizes.get(chart, (0, 0.0))
        if labels == 0:
            problems.append(f"{chart}: no labels rendered")
        elif smallest < MIN_LABEL_PX:
            problems.append(
                f"{chart}: labels render at {smallest:.1f} px at 100 % zoom "
                f"(at least {MIN_LABEL_PX:.0f} px needed)"
            )
        else:
            print(f"{chart}: {labels} labels, the smallest {smallest:.1f} px")
    return problems


def main() -> None:
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "carecoord-demo-report.html")
    problems = check(report)
    for problem in problems:
        print(f"demo-check: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    shown = len(charts(report.read_text(encoding="utf-8")))
    print(
        f"demo-check: {report} renders offline in headless Chromium with all {shown} "
        f"charts, their labels at least {MIN_LABEL_PX:.0f} px"
    )


if __name__ == "__main__":
    main()
