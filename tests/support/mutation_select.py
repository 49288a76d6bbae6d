"""`make mutation` only: a mutant runs against the tests of its own module, not every test that
happens to reach the mutated function.

mutmut runs each mutant against every test that called the mutated function while it collected
its stats; for the scheduler and `classify` that is every threaded runtime test (seconds each).
mutation/core.txt names, per mutant pattern, the test files that test that code; a mutant matching
a line with test files runs only those of its tests (any others are deselected). Outside a mutant
run this plugin does nothing, except in mutmut's stats run (MUTANT_UNDER_TEST "stats"), which it
limits to the test files core.txt names at all, when every line names some.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest


def selection(core_txt: Path, mutant: str) -> list[str] | None:
    """The test-file globs of the first core.txt line whose pattern matches `mutant`, if any."""
    if not core_txt.exists():
        return None
    for line in core_txt.read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and fnmatch.fnmatchcase(mutant, fields[0]):
            return fields[1:] or None
    return None


def all_selected(core_txt: Path) -> list[str] | None:
    """Every test-file glob of core.txt, or None if some line runs every test."""
    text = core_txt.read_text() if core_txt.exists() else ""
    lines = [line.split() for line in text.splitlines()]
    lines = [fields for fields in lines if fields and not fields[0].startswith("#")]
    if not lines or any(len(fields) == 1 for fields in lines):
        return None
    return [glob for fields in lines for glob in fields[1:]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    core_txt = config.rootpath / "mutation" / "core.txt"
    if mutant == "stats":
        globs = all_selected(core_txt)
    elif "__mutmut_" in mutant:
        globs = selection(core_txt, mutant)
    else:
        return
    if not globs:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        (keep if any(fnmatch.fnmatchcase(path, g) for g in globs) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # mutmut re-collects stats for tests it has not seen ("new"), which include every test
    # core.txt leaves out; when all of them are deselected here, "no tests ran" (5) is not a
    # failure of the stats run.
    if (
        os.environ.get("MUTANT_UNDER_TEST") == "stats"
        and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
    ):
        session.exitstatus = pytest.ExitCode.OK
