"""`pip install 'carecoord[local]'` then `carecoord demo`, as a user does it: the wheel built from
this checkout, installed with its dependencies into a fresh virtual environment, runs a small demo
on its own embedded servers from a directory that is not the checkout, and writes its report.

It builds from a copy of the files the wheel is made of (pyproject.toml, README.md, LICENSE, src),
so the build leaves nothing in the checkout and cannot pick up anything else from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("chart-funnel", "chart-referrals", "chart-caseload", "chart-billing", "chart-worklist")


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{args[:3]}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.timeout(900)  # building and installing, on a shared 2-core machine
def test_the_demo_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    # the user's environment: no CARECOORD_* (the demo starts its own servers), no checkout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CARECOORD_", "PYTHON"))}
    env.pop("VIRTUAL_ENV", None)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info",
                    "__pycache__"))  # fmt: skip
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", ".", "--no-deps", "-q", "-w", wheels], cwd=source, env=env, timeout=300)
    (wheel,) = wheels.glob("carecoord-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env, timeout=120)
    bin_ = venv / "bin"
    # pip's cache and configured indexes as for any install: only the wheel is new
    _run([bin_ / "python", "-m", "pip", "install", "-q", "--no-compile",
          "--disable-pip-version-check", f"{wheel}[local]"],
         cwd=tmp_path, env=env, timeout=600)  # fmt: skip

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([bin_ / "python", "-c", "import carecoord; print(carecoord.__file__)"],
                 cwd=elsewhere, env=env, timeout=60)  # fmt: skip
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's copy, not the checkout's
    out = _run(
        [bin_ / "carecoord", "demo", "--patients", "10", "--days", "2", "--no-progress",
         "--report", "report.html"],
        cwd=elsewhere, env=env, timeout=300,
    )  # fmt: skip

    report = elsewhere / "report.html"
    assert f"Report: {report.resolve()}" in out
    assert "Patients: 10 with care plans" in out
    html = report.read_text(encoding="utf-8")
    assert "2 days: 1\u20132 November 2026" in html
    for chart in CHARTS:
        assert re.search(rf'<svg id="{chart}"[^>]*>.*?<rect', html, re.S), chart
    # the sample directory came from the package: its organisations got the referrals
    assert "referrals sent to community organisations" in html
