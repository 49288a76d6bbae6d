"""`make demo-check`: render the demo's report in a real headless Chromium, offline.

    python -m carecoord.demo.browser REPORT.html

Dumps the DOM after layout and takes a screenshot with every network feature off and all hosts
unresolvable and proxied to a closed port (so a request, if the report made one, could not
succeed), then checks that the five charts are in the rendered DOM with their bars and that the
screenshot is not blank. Exit status 0 when it renders.
"""

from __future__ import annotations

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
    "--proxy-server=127.0.0.1:9", "--window-size=1200,4000",
)  # fmt: skip


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


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
        for chart in CHARTS:
            svg = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S)
            if svg is None:
                problems.append(f"{chart}: not in the rendered DOM")
            elif "<rect" not in svg.group(0) and "<text" not in svg.group(0):
                problems.append(f"{chart}: rendered empty")
        shot = Path(profile) / "report.png"
        subprocess.run(
            [*base, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=False
        )
        size = shot.stat().st_size if shot.exists() else 0
        if size < 20_000:  # a blank 1200x4000 page compresses to a few KB
            problems.append(f"screenshot is {size} bytes: the page looks blank")
        else:
            keep = report.with_suffix(".png")
            shutil.copy(shot, keep)
            print(f"screenshot: {keep} ({size} bytes)")
    return problems


def main() -> None:
    report = Path(sys.argv[1] if len(sys.argv) > 1 else "carecoord-demo-report.html")
    problems = check(report)
    for problem in problems:
        print(f"demo-check: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(
        f"demo-check: {report} renders offline in headless Chromium with all {len(CHARTS)} charts"
    )


if __name__ == "__main__":
    main()
