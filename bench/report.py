"""The results table (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _ok(met: bool) -> str:
    return "[green]met[/]" if met else "[red]MISSED[/]"


def print_report(r: dict[str, Any]) -> None:
    if "throughput" in r:
        print_runtime(r)
    if "pipeline" in r:
        print_pipeline(r)


def print_pipeline(r: dict[str, Any]) -> None:
    p, met, targets = r["pipeline"], r["met"], r["targets"]
    table = Table(title="(e) pipeline: FHIR requests per event (counting proxy)")
    for col in ("event type", "events", "requests max", "mean", "by kind (max)"):
        table.add_column(col)
    for label, v in p["by_type"].items():
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(v.get("max_by_kind", {}).items()))
        table.add_row(label, str(v["events"]), str(v["max"]), str(v["mean"]), kinds)
    console = Console(width=120)
    console.print(table)
    summary = Table(title="(e) pipeline: targets")
    for col in ("measurement", "value", "target", ""):
        summary.add_column(col)
    summary.add_row(
        "requests per event (common path, max)",
        f"{p['requests_per_event']} "
        f"({p['requests_per_event_without_referrals']} without referrals)",
        f"<= {targets['requests_per_event']}",
        _ok(met["requests_per_event"]),
    )
    summary.add_row(
        "requests per escalation",
        str(p["requests_per_escalation"]),
        f"<= {targets['requests_per_escalation']}",
        _ok(met["requests_per_escalation"]),
    )
    if "server_raw_events_per_s" in p:
        summary.add_row(
            "events/s vs server raw events/s (same requests)",
            f"{p['events_per_s']} vs {p['server_raw_events_per_s']} -> {p['server_ratio']}",
            f">= {targets['server_ratio']}",
            _ok(met["server_ratio"]),
        )
        summary.add_row(
            "    vs server raw transactions/s (old figure)",
            f"{p['events_per_s']} vs {p['server_raw_transactions_per_s']} -> "
            f"{p['server_ratio_to_transactions']}",
            "",
            "",
        )
        pins = p.get("pinning")
        summary.add_row(
            "    cores",
            f"server {pins['server']}, service + broker + bench {pins['service']}"
            if pins
            else "not pinned",
            "",
            "",
        )
    else:  # results.json of an earlier run
        summary.add_row(
            "events/s vs server raw transactions/s",
            f"{p['events_per_s']} vs {p['server_raw_transactions_per_s']} -> {p['server_ratio']}",
            f">= {targets['server_ratio']}",
            _ok(met["server_ratio"]),
        )
    if "cpu_ratio_to_floor" in p:
        cpu = p["cpu_ms_per_event"]
        summary.add_row(
            "CPU ms/event: carecoord vs floor consumer",
            f"{cpu['carecoord']} vs {cpu['floor']} -> {p['cpu_ratio_to_floor']}x "
            f"(server {cpu['server']})",
            f"<= {targets['cpu_ratio_to_floor']}x",
            _ok(met["cpu_ratio_to_floor"]),
        )
        for label, v in p["cpu_ms_per_event_by_type"].items():
            summary.add_row(
                f"    {label}",
                f"{v['carecoord']} vs {v['floor']} (server {v['server']})",
                "",
                "",
            )
        summary.add_row(
            "events/s with 1 / 2 / 3 service processes",
            " / ".join(str(v) for v in p["events_per_s_by_processes"].values()),
            "",
            "",
        )
    for lv in p["by_history"]:
        summary.add_row(
            f"    {lv['history_months']} months of history",
            f"{lv['events_per_s']} events/s, {lv['requests_per_event_mean']} requests/event",
            "not falling",
            "",
        )
    summary.add_row("    flat with history", "", "", _ok(met["flat_with_history"]))
    console.print(summary)


def print_runtime(r: dict[str, Any]) -> None:
    t, c, lat, m = r["throughput"], r["concurrency"], r["latency"], r["memory"]
    met, targets = r["met"], r["targets"]
    small, large = (f"{b // 1000}k" for b in m["backlogs"])
    table = Table(title=f"carecoord event runtime benchmark ({r['mode']}, {r['date']})")
    for col in ("measurement", "value", "target", ""):
        table.add_column(col)
    table.add_row(
        f"(a) no-op throughput, {t['events']:,} events / {t['partitions']} partitions",
        f"runtime {t['runtime_events_per_s']:,}/s vs kafka-python {t['baseline_events_per_s']:,}/s",
        "",
        "",
    )
    table.add_row("    ratio", f"{t['ratio']:.2f}", f">= {targets['ratio']}", _ok(met["ratio"]))
    if "cpu_ratio" in t:
        table.add_row(
            "    CPU us/event (process)",
            f"runtime {t['runtime_cpu_us_per_event']} vs kafka-python "
            f"{t['baseline_cpu_us_per_event']} -> {t['cpu_ratio']:.2f}",
            "",
            "",
        )
    table.add_row(
        f"    diagnostic: poll_timeout {t['short_poll_timeout_s']} s",
        f"runtime {t['runtime_short_poll_events_per_s']:,}/s, ratio {t['short_poll_ratio']:.2f}",
        "",
        "",
    )
    table.add_row(
        f"(b) {c['write_ms']:.0f} ms write, in-flight 1 vs {c['concurrent_max_in_flight']}",
        f"{c['sequential_events_per_s']:,}/s vs {c['concurrent_events_per_s']:,}/s",
        "",
        "",
    )
    table.add_row(
        "    speedup", f"{c['speedup']}x", f">= {targets['speedup']:.0f}x", _ok(met["speedup"])
    )
    table.add_row(
        f"    per-key order ({c['concurrent_keys_seen']:,} keys)",
        "ok" if c["order_ok"] else f"{c['order_violations']} keys out of order",
        "in order",
        _ok(met["order"]),
    )
    table.add_row(
        f"(c) latency at {lat['rate_events_per_s']:.0f} events/s",
        f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms",
        "",
        "",
    )
    table.add_row(
        "    plain kafka-python, same feed",
        f"p50 {lat['baseline_p50_ms']} ms, p99 {lat['baseline_p99_ms']} ms",
        "",
        "",
    )
    table.add_row(
        f"(d) peak RSS draining {small} / {large}",
        f"{m[f'rss_mb_peak_{small}']} / {m[f'rss_mb_peak_{large}']} MB",
        f"< {targets['rss_mb']:.0f} MB",
        _ok(met["rss_mb"]),
    )
    table.add_row(
        f"    growth {small} -> {large} (2nd half of the {large} drain)",
        f"{m['rss_mb_growth']:+} MB ({m[f'rss_mb_second_half_growth_{large}']:+} MB)",
        "flat",
        _ok(met["rss_flat"]),
    )
    mach = r["machine"]
    console = Console(width=120)
    console.print(table)
    console.print(
        f"{mach['cpu']}, {mach['cores']} cores, Python {mach['python']}, "
        f"kafka-python {mach['kafka_python']} (CRC-32C in {mach['kafka_crc32c']}); "
        f"broker {mach['broker']}"
    )
