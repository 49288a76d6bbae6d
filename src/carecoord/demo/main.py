"""The demo's entry point: options, progress bar, summary, report."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from carecoord.demo import report as report_mod
from carecoord.demo.fhirdata import FhirData
from carecoord.demo.runner import DemoRun, run_demo
from carecoord.demo.sim import Scale
from carecoord.demo.summary import Summary, compute, referral_snapshot, render_text
from carecoord.service.app import Service


@dataclass
class DemoResult:
    run: DemoRun
    summary: Summary
    report: Path
    seconds: float


def run(
    scale: Scale,
    *,
    report_path: Path | None = None,
    progress: bool = True,
    directory: Path | None = None,
) -> DemoResult:
    """Run the demo; returns the summary (read from FHIR and the topics) and the report path."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.monotonic()
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), transient=False, disable=not progress,
    )  # fmt: skip
    task = bar.add_task("starting the broker, the FHIR server and the service", total=scale.days)

    def advance(what: str, done: int, total: int) -> None:
        bar.update(task, completed=done, description=f"simulated {what}")

    def snapshot(data: FhirData, demo: DemoRun, day: int) -> dict[str, int]:
        return referral_snapshot(data, demo.patient_prefix)

    def finish(demo: DemoRun, data: FhirData, service: Service) -> tuple[DemoRun, Summary]:
        bar.update(task, description="reading the month back from the FHIR server")
        s = demo.settings
        summary = compute(
            data, service.runtime.broker, prefix=demo.patient_prefix,
            care_managers=demo.care_managers, capacities=demo.capacities,
            topic_out=s.topic_out, topic_dlq=s.topic_dlq, snapshots=demo.snapshots,
            now=demo.ended_at, screenings_skipped=demo.screenings_skipped,
        )  # fmt: skip
        return demo, summary

    with bar:
        demo, summary = run_demo(
            scale, progress=advance, snapshot=snapshot, finish=finish, directory=directory
        )
    path = report_path or Path("carecoord-demo-report.html")
    report_mod.write(path, demo, summary)
    return DemoResult(demo, summary, path.resolve(), time.monotonic() - started)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="carecoord demo",
        description="Simulate up to a month (November 2026) of a care-management practice "
        "through the real service; prints a summary and writes an HTML report.",
    )
    p.add_argument("--patients", type=int, default=600, help="patients on the panel (600)")
    p.add_argument("--care-managers", type=int, default=3, help="care managers, 1 to 7 (3)")
    p.add_argument("--seed", type=int, default=7, help="same seed, same practice and calls (7)")
    p.add_argument("--days", type=int, default=30, help="days of November 2026 to simulate (30)")
    p.add_argument("--report", type=Path, default=Path("carecoord-demo-report.html"),
                   help="the HTML report to write (./carecoord-demo-report.html)")  # fmt: skip
    p.add_argument("--directory", type=Path, default=None,
                   help="community directory to import (Open Referral HSDS JSON; default: the "
                        "sample directory of Springfield that comes with carecoord)")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    return p


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    # SIGTERM stops like Ctrl-C: the embedded servers are stopped on the way out
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        scale = Scale(
            patients=args.patients, care_managers=args.care_managers, seed=args.seed,
            days=args.days, run=f"s{args.seed}-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
    except ValueError as exc:
        print(f"carecoord demo: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    try:
        result = run(
            scale, report_path=args.report, progress=not args.no_progress, directory=args.directory
        )
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception:
        traceback.print_exc()  # the service's hook would log the exception's type only
        print("carecoord demo: failed (above: what went wrong)", file=sys.stderr)
        raise SystemExit(1) from None
    d = result.run
    cpu = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in d.cpu.items())
    print(
        f"\nA care-management practice, {scale.period}: {scale.patients} patients, "
        f"{scale.care_managers} care managers (seed {scale.seed}), "
        f"{sum(x.events + x.sweep_events for x in d.days)} events + "
        f"{sum(x.notifications for x in d.days)} FHIR notifications + "
        f"{sum(x.poison for x in d.days)} poison messages through the real service "
        f"in {d.seconds:.0f} s"
        + (
            f" (CPU: {cpu}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
            if cpu
            else ""
        )
        + ".\n"
    )
    if d.skipped_mix:
        print("Not simulated (no such event in this version): " + "; ".join(d.skipped_mix) + "\n")
    if d.screenings_skipped:
        print(f"Screenings and check-ins not simulated: {d.screenings_skipped}.\n")
    print(render_text(result.summary))
    print(f"\nReport: {result.report}")
