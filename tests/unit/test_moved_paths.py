"""0.1's module paths still import in 0.2, as the same module, with a DeprecationWarning naming
the new path; carecoord itself never uses them (so a user's test run sees no warning of ours)."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from carecoord._moved import MOVED

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        aliased = importlib.import_module(old)
    assert aliased is new


@pytest.mark.parametrize(
    ("package", "name", "home"),
    [
        ("carecoord.handlers.referrals", "HANDLERS", "carecoord.handlers.referrals.handler"),
        ("carecoord.handlers.billing", "BillingConfig", "carecoord.handlers.billing.handler"),
        ("carecoord.handlers.clinical", "HANDLERS", "carecoord.handlers.clinical.routing"),
    ],
)
def test_a_package_in_place_of_a_module_hands_out_its_names(
    package: str, name: str, home: str
) -> None:
    with pytest.warns(DeprecationWarning, match=f"{package}.{name} moved"):
        value = getattr(importlib.import_module(package), name)
    assert value is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError):
        importlib.import_module(package).no_such_name  # noqa: B018


def test_carecoord_never_imports_an_old_path() -> None:
    used = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in MOVED:
                used.append(f"{path.relative_to(SRC)}: {node.module}")
            elif isinstance(node, ast.Import):
                used += [
                    f"{path.relative_to(SRC)}: {a.name}" for a in node.names if a.name in MOVED
                ]
    assert used == []
