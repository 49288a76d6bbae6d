"""Score per core module from mutmut's results (mutants/**/*.py.meta), for `make mutation`.

Only mutants matching a pattern of mutation/core.txt (each line's first field) count. Killed and
timed-out mutants count as killed; a mutant no test reaches ("no tests") counts as a survivor.
Survivors judged equivalent are listed, with their reasons, in mutation/equivalent.txt (name,
whitespace, reason) and docs/mutation.md; they are reported but do not lower the adjusted score.
Writes mutation/results.json and prints a table; exits 1 if a module's adjusted score is below the
target.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path

from mutmut.stats import status_by_exit_code

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = 90.0
KILLED = {"killed", "timeout", "caught by type check"}


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _module(name: str) -> str:
    # carecoord.events.ordering.xǁKeySchedulerǁtake__mutmut_3 -> carecoord.events.ordering
    return name.rsplit(".", 1)[0]


def main() -> int:
    patterns = [line.split()[0] for line in _lines(HERE / "core.txt")]
    equivalent = dict([*line.split(None, 1), ""][:2] for line in _lines(HERE / "equivalent.txt"))
    statuses: dict[str, str] = {}
    for meta in sorted((ROOT / "mutants" / "src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            if any(fnmatch.fnmatch(name, p) for p in patterns):
                statuses[name] = status_by_exit_code[code]
    if not statuses:
        print("no mutmut results: run `make mutation` first", file=sys.stderr)
        return 2
    modules: dict[str, dict[str, object]] = {}
    for name, status in sorted(statuses.items()):
        row = modules.setdefault(
            _module(name),
            {"total": 0, "killed": 0, "survived": [], "equivalent": [], "not_checked": 0},
        )
        row["total"] = int(row["total"]) + 1  # type: ignore[call-overload]
        if status in KILLED:
            row["killed"] = int(row["killed"]) + 1  # type: ignore[call-overload]
        elif status == "not checked":
            row["not_checked"] = int(row["not_checked"]) + 1  # type: ignore[call-overload]
        elif name in equivalent:
            row["equivalent"].append({"mutant": name, "reason": equivalent[name]})  # type: ignore[union-attr]
        else:
            row["survived"].append({"mutant": name, "status": status})  # type: ignore[union-attr]
    failing = []
    head = ("module", "mutants", "run", "killed", "equiv", "surv", "score", "adj.")
    print(f"{head[0]:<42} " + " ".join(f"{h:>7}" for h in head[1:]))
    for module, row in modules.items():
        total, killed = int(row["total"]), int(row["killed"])  # type: ignore[call-overload]
        equiv, surv = len(row["equivalent"]), len(row["survived"])  # type: ignore[arg-type]
        checked = total - int(row["not_checked"])  # type: ignore[call-overload]
        score = 100.0 * killed / checked if checked else 0.0
        adjusted = 100.0 * killed / (checked - equiv) if checked - equiv else 100.0
        row["score"], row["adjusted_score"] = round(score, 1), round(adjusted, 1)
        if adjusted < TARGET or row["not_checked"]:
            failing.append(module)
        cells = (total, checked, killed, equiv, surv, f"{score:.1f}%", f"{adjusted:.1f}%")
        if not checked:
            cells = (total, 0, "-", "-", "-", "not run", "not run")
        print(f"{module:<42} " + " ".join(f"{c:>7}" for c in cells))
    for row in modules.values():
        for s in row["survived"]:  # type: ignore[attr-defined]
            print(f"  survived: {s['mutant']} ({s['status']})  -> `mutmut show {s['mutant']}`")
    result: dict[str, object] = {"target": TARGET, "modules": modules}
    seconds = os.environ.get("MUTATION_SECONDS", "")
    if seconds.isdigit():  # set by `make mutation`: wall-clock seconds of the mutmut run
        result["run_seconds"] = int(seconds)
        print(f"mutmut run took {int(seconds) // 60} min {int(seconds) % 60} s")
    cpu = os.environ.get("MUTATION_CPU_SECONDS", "")
    if cpu.replace(".", "", 1).isdigit():  # user + system CPU seconds of mutmut and its children
        cores = os.cpu_count() or 1
        result["cpu_seconds"], result["cores"] = round(float(cpu)), cores
        alone = float(cpu) / cores
        print(
            f"CPU time {float(cpu) / 60:.1f} min: about {alone / 60:.1f} min on {cores} idle cores"
        )
    (HERE / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {HERE.relative_to(ROOT) / 'results.json'}")
    if failing:
        print(f"below {TARGET:.0f}% (after equivalents) or not fully run: {', '.join(failing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
