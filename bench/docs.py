# ruff: noqa: RUF001 -- the docs write ratios with the multiplication sign
"""docs/benchmarks.md's "Last run" tables, written from bench/results.json.

`make bench` rewrites the section between the markers after a full run, so the figures in the
docs are the committed results' and nobody copies numbers by hand; `python -m bench.docs
--check` (run by the test suite) fails when the two disagree.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- last-run:begin (written by python -m bench.docs from bench/results.json) -->"
END = "<!-- last-run:end -->"


def _verdict(met: bool, target: str, value: float) -> str:
    target = target.format(value)
    return f"{target}: met" if met else f"{target}: **missed** (see below)"


def _n(x: float) -> str:
    return f"{x:,.0f}" if x >= 1000 else f"{x:,}"


def last_run(r: dict[str, Any]) -> str:
    """The section's Markdown for one results.json (a full run: runtime and pipeline parts)."""
    t, c, lat, m, p = (r[k] for k in ("throughput", "concurrency", "latency", "memory", "pipeline"))
    met, tg, mach = r["met"], r["targets"], r["machine"]
    small, large = (f"{b // 1000}k" for b in m["backlogs"])
    when = datetime.fromisoformat(r["date"]).strftime("%Y-%m-%d %H:%M UTC")
    pins = p.get("pinning")
    pinned = (
        f"the FHIR server pinned to core {', '.join(map(str, pins['server']))}, everything else "
        f"to core {', '.join(map(str, pins['service']))}"
        if pins
        else "nothing pinned"
    )
    cpu = p["cpu_ms_per_event"]
    procs = p["by_processes"]
    history = p["by_history"]
    lines = [
        f"`make bench`, {when}, {mach['cores']} cores ({mach['cpu']}), Python {mach['python']}, "
        f"kafka-python {mach['kafka_python']} (CRC-32C: {mach['kafka_crc32c']}), "
        f"{mach['broker']} and sekmet on loopback; {pinned}.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        f"| (a) no-op processor, {t['events'] // 1000}k events, {t['partitions']} partitions, "
        f"{t['keys']:,} keys: runtime vs plain kafka-python `poll` + `json.loads` "
        f"| {_n(t['runtime_events_per_s'])} vs {_n(t['baseline_events_per_s'])} events/s → "
        f"**{t['ratio']:.2f}**; CPU {t['runtime_cpu_us_per_event']} vs "
        f"{t['baseline_cpu_us_per_event']} µs an event "
        f"| {_verdict(met['ratio'], '≥ {}', tg['ratio'])} |",
        f"| (b) {c['write_ms']:.0f} ms simulated FHIR write per event, 1 vs "
        f"{c['concurrent_max_in_flight']} in flight, {c['concurrent_events']:,} events over "
        f"{c['concurrent_keys_seen']:,} keys | {c['sequential_events_per_s']} vs "
        f"{_n(c['concurrent_events_per_s'])} events/s → **{c['speedup']}×** (ideal "
        f"{c['ideal_speedup']}×), "
        + ("per-key order kept for every key" if c["order_ok"] else "**per-key order broken**")
        + f" | {_verdict(met['speedup'], '≥ {:.0f}×', tg['speedup'])} |",
        f"| (c) produce → processed latency at {lat['rate_events_per_s']:.0f} events/s "
        f"(runtime / plain consumer) | p50 {lat['p50_ms']} / {lat['baseline_p50_ms']} ms, "
        f"p99 {lat['p99_ms']} / {lat['baseline_p99_ms']} ms | |",
        f"| (d) peak RSS of the runtime draining a {small} / {large} backlog "
        f"| {m[f'rss_mb_peak_{small}']:.0f} / {m[f'rss_mb_peak_{large}']:.0f} MB; "
        f"{m[f'rss_mb_second_half_growth_{large}']:+} MB over the second half of the {large} "
        f"drain | {_verdict(met['rss_mb'], '< {:.0f} MB', tg['rss_mb'])}; "
        + ("flat: met" if met["rss_flat"] else "flat: **missed**")
        + " |",
        f"| (e) FHIR round trips per event (every type in the mix, escalation and referral "
        f"included) | **{p['requests_per_event']}** (escalation {p['requests_per_escalation']}) "
        f"| {_verdict(met['requests_per_event'], '≤ {}', tg['requests_per_event'])} |",
        f"| (e) events/s vs the server's own rate for the same requests (`server_ratio`) "
        f"| {p['events_per_s']} vs {p['server_raw_events_per_s']} → **{p['server_ratio']:.2f}** "
        f"(vs the transactions alone: {p['server_raw_transactions_per_s']} → "
        f"{p['server_ratio_to_transactions']:.2f}) "
        f"| {_verdict(met['server_ratio'], '≥ {}', tg['server_ratio'])} |",
        f"| (e) carecoord's CPU per event vs the floor consumer's (`cpu_ratio_to_floor`; "
        f"the least of two interleaved drains each) "
        f"| **{cpu['carecoord']} vs {cpu['floor']} ms → {p['cpu_ratio_to_floor']:.2f}×** "
        f"(server {cpu['server']} ms) "
        f"| {_verdict(met['cpu_ratio_to_floor'], '≤ {}×', tg['cpu_ratio_to_floor'])} |",
        "| (e) events/s with "
        + " / ".join(procs)
        + " service processes in one group | "
        + " / ".join(str(v["events_per_s"]) for v in procs.values())
        + "; "
        + _failures(procs)
        + " | |",
        "| (e) events/s with "
        + " / ".join(str(lv["history_months"]) for lv in history)
        + " months of history per patient | "
        + " / ".join(str(lv["events_per_s"]) for lv in history)
        + " ("
        + " / ".join(str(lv["requests_per_event_mean"]) for lv in history)
        + " requests an event) | "
        + ("not falling: met" if met["flat_with_history"] else "not falling: **missed**")
        + " |",
        "",
        "CPU ms per event by type, same run:",
        "",
        "| event | carecoord | floor | ratio | server |",
        "|---|---|---|---|---|",
    ]
    for label, v in p["cpu_ms_per_event_by_type"].items():
        ratio = v["carecoord"] / v["floor"] if v["floor"] else 0.0
        lines.append(
            f"| {_label(label)} | {v['carecoord']} | {v['floor']} | {ratio:.2f}× | {v['server']} |"
        )
    return "\n".join(lines)


def _label(event_type: str) -> str:
    name, _, note = event_type.partition(" ")
    return f"`{name}` {note}".strip()


def _failures(procs: dict[str, Any]) -> str:
    failed = sum(v["failed_attempts"] for v in procs.values())
    reruns = sum(v["conflict_reruns"] for v in procs.values())
    if not failed and not reruns:
        return "no failed attempts, no conflict re-runs"
    return f"{failed} failed attempts, {reruns} conflict re-runs"


def render(doc: str, r: dict[str, Any]) -> str:
    """`doc` with its section between the markers replaced by `last_run(r)`."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC.name} has no {BEGIN!r} ... {END!r} section")
    return f"{head}{BEGIN}\n{last_run(r)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the docs are stale")
    args = parser.parse_args(argv)
    results = json.loads(RESULTS.read_text())
    doc = DOC.read_text()
    fresh = render(doc, results)
    if args.check:
        if fresh != doc:
            print(f"{DOC} is stale: run python -m bench.docs", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
