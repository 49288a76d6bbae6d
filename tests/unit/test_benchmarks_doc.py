# ruff: noqa: RUF001 -- the docs write ratios with the multiplication sign
"""docs/benchmarks.md's "Last run" tables are bench/results.json's (written by bench/docs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads((ROOT / "bench" / "results.json").read_text())


def _render(doc: str, results: dict[str, object]) -> str:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.docs import render
    finally:
        sys.path.remove(str(ROOT))
    return render(doc, results)


def test_the_committed_tables_are_the_committed_results() -> None:
    check = subprocess.run(
        [sys.executable, "-m", "bench.docs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr


def test_a_changed_result_shows_in_the_tables() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    changed = json.loads(json.dumps(RESULTS))
    changed["pipeline"]["cpu_ratio_to_floor"] = 9.87
    changed["met"]["cpu_ratio_to_floor"] = False
    fresh = _render(doc, changed)
    assert fresh != doc
    assert "→ 9.87×** " in fresh


def test_a_met_target_says_met() -> None:
    doc = (ROOT / "docs" / "benchmarks.md").read_text()
    changed = json.loads(json.dumps(RESULTS))
    changed["met"]["ratio"] = True
    row = next(line for line in _render(doc, changed).splitlines() if line.startswith("| (a)"))
    assert row.endswith("| ≥ 0.9: met |")


def test_the_readme_quotes_the_committed_results() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    p, t = RESULTS["pipeline"], RESULTS["throughput"]
    cpu = p["cpu_ms_per_event"]["carecoord"]
    assert f"Last run ({RESULTS['date'][:10]})" in readme
    assert f"{p['requests_per_event']} FHIR round trips per event" in readme
    assert f"{p['server_ratio']:.2f} of the embedded server's rate" in readme
    assert f"{cpu} ms of carecoord CPU per event, {p['cpu_ratio_to_floor']:.2f}×" in readme
    assert f"no-op runtime {t['ratio']:.2f} of plain kafka-python" in readme
