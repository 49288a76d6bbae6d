"""Each shared code set is written once: the programs, outreach channels and outcomes and the
Task statuses in carecoord.core.vocabulary, the final and the open Task statuses in
carecoord.caremodel.workflow, the programs needing consent in carecoord.handlers.billing.rules. A
copy elsewhere (a Literal, a tuple, a set) fails here, so the copies cannot drift apart."""

from __future__ import annotations

import ast
from typing import get_args

from carecoord.caremodel import builders as care
from carecoord.caremodel import terminology as t
from carecoord.caremodel import workflow
from carecoord.core import catalog, vocabulary
from carecoord.handlers.billing import rules as billing_rules
from carecoord.handlers.care import model as care_model
from support.paths import ROOT

SRC = ROOT / "src" / "carecoord"

# code set -> the one module allowed to spell it out
HOMES: dict[frozenset[str], str] = {
    frozenset(get_args(vocabulary.Program)): "core/vocabulary.py",
    frozenset(get_args(vocabulary.Channel)): "core/vocabulary.py",
    frozenset(get_args(vocabulary.Outcome)): "core/vocabulary.py",
    frozenset(get_args(vocabulary.TaskStatus)): "core/vocabulary.py",
    frozenset(workflow.FINAL): "caremodel/workflow.py",
    frozenset(workflow.OPEN): "caremodel/workflow.py",
    frozenset(billing_rules.DEFAULT_CONSENT_REQUIRED): "handlers/care/model.py",
}
# Names whose value is a different concept over the same codes: an order, not the set.
ORDERINGS = {"PROGRAM_PRIORITY"}  # billing_rules: which exclusive program is billed on a tie


def _strings(node: ast.AST) -> frozenset[str] | None:
    """The strings of a tuple/list/set display of string constants (a Literal[...]'s too)."""
    if not isinstance(node, ast.Tuple | ast.List | ast.Set) or len(node.elts) < 3:
        return None
    values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
    if len(values) != len(node.elts) or not all(isinstance(v, str) for v in values):
        return None
    return frozenset(values)


def copies(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    orderings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(getattr(target, "id", None) in ORDERINGS for target in node.targets)
    }
    found = []
    for node in ast.walk(tree):
        values = _strings(node) if id(node) not in orderings else None
        home = HOMES.get(values) if values is not None else None
        if home is not None and home != where:
            found.append(f"{where}:{node.lineno} copies {home}")
    return found


def test_the_check_finds_a_copy() -> None:
    literal = 'P = Literal["CCM", "PCM", "RPM", "TCM", "BHI", "APCM"]\n'
    assert copies(literal, "caremodel/builders.py")
    final = '"completed", "cancelled", "failed", "rejected", "entered-in-error"'
    assert copies(f"if s in ({final}):\n    pass\n", "handlers/care/task_paths.py")
    assert copies(f"F = frozenset({{{final}}})\n", "handlers/care/model.py")
    assert not copies(f"F = frozenset({{{final}}})\n", "caremodel/workflow.py")
    assert not copies('x = ("CCM", "PCM")\n', "handlers/billing/handler.py")
    ranked = 'PROGRAM_PRIORITY = ("APCM", "CCM", "PCM", "BHI", "RPM", "TCM")\n'
    assert not copies(ranked, "handlers/billing/rules.py")


def test_no_module_spells_out_a_shared_code_set_outside_its_home() -> None:
    found = [
        c
        for path in sorted(SRC.rglob("*.py"))
        for c in copies(path.read_text(), path.relative_to(SRC).as_posix())
    ]
    assert found == []


def test_every_layer_uses_the_same_types() -> None:
    for module in (catalog, care):
        assert module.Program is vocabulary.Program
        assert module.Channel is vocabulary.Channel
        assert module.Outcome is vocabulary.Outcome
    assert catalog.TaskStatus is workflow.TaskStatus is vocabulary.TaskStatus
    assert care_model.PROGRAMS == vocabulary.PROGRAMS


def test_every_program_and_channel_has_its_fhir_coding() -> None:
    assert set(t.PROGRAMS) == set(vocabulary.PROGRAMS)
    assert set(t.CHANNEL_MEDIUM) == set(vocabulary.CHANNELS)
    assert set(care_model.DEFAULT_MONTHLY_TASKS) == set(vocabulary.PROGRAMS)
    assert set(billing_rules.PROGRAM_PRIORITY) == set(vocabulary.PROGRAMS)  # every one ranked


def test_the_care_config_asks_consent_for_the_programs_billing_requires_it_for() -> None:
    from carecoord.handlers.billing.handler import BillingConfig

    assert care_model.CareConfig().consent_required == list(billing_rules.DEFAULT_CONSENT_REQUIRED)
    assert BillingConfig().consent_required == list(billing_rules.DEFAULT_CONSENT_REQUIRED)


def test_open_final_and_draft_partition_the_task_statuses() -> None:
    open_, final = set(workflow.OPEN), set(workflow.FINAL)
    assert not open_ & final and "draft" not in open_ | final
    assert open_ | final | {"draft"} == set(vocabulary.TASK_STATUSES)
