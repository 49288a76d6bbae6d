"""Old module paths of 0.1 that moved in 0.2 keep working for one release, with a
DeprecationWarning naming the new path (docs/moved.md lists them). A finder at the end of
`sys.meta_path` answers only for these names, after the real modules were looked for."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

MOVED: dict[str, str] = {
    "carecoord.business_hours": "carecoord.handlers.care.business_hours",
    "carecoord.calendar": "carecoord.handlers.care.business_days",
    "carecoord.fhir._build": "carecoord.caremodel._build",
    "carecoord.fhir.care": "carecoord.caremodel.builders",
    "carecoord.fhir.clinical_loop": "carecoord.handlers.clinical.builders",
    "carecoord.fhir.directory": "carecoord.directory.builders",
    "carecoord.fhir.directory_shape": "carecoord.directory.shape",
    "carecoord.fhir.hsds": "carecoord.directory.hsds",
    "carecoord.fhir.hsds_forms": "carecoord.directory.hsds_forms",
    "carecoord.fhir.hsds_sync": "carecoord.directory.sync",
    "carecoord.fhir.hsds_tabular": "carecoord.directory.tabular",
    "carecoord.fhir.hsds_taxonomy": "carecoord.directory.taxonomy",
    "carecoord.fhir.identifiers": "carecoord.caremodel.identifiers",
    "carecoord.fhir.open_eligibility": "carecoord.directory.open_eligibility",
    "carecoord.fhir.outbox": "carecoord.caremodel.outbox",
    "carecoord.fhir.profiles": "carecoord.caremodel.profiles",
    "carecoord.fhir.referral": "carecoord.handlers.referrals.builders",
    "carecoord.fhir.roles": "carecoord.handlers.care.roles",
    "carecoord.fhir.sdoh_consent": "carecoord.handlers.referrals.sdoh_consent",
    "carecoord.fhir.terminology": "carecoord.caremodel.terminology",
    "carecoord.fhir.workflow": "carecoord.caremodel.workflow",
    "carecoord.handlers.billing_reads": "carecoord.handlers.billing.reads",
    "carecoord.handlers.billing_rules": "carecoord.handlers.billing.rules",
    "carecoord.handlers.care_model": "carecoord.handlers.care.model",
    "carecoord.handlers.care_tasks": "carecoord.handlers.programs.care_tasks",
    "carecoord.handlers.caseload": "carecoord.handlers.programs.caseload",
    "carecoord.handlers.clinical_loop": "carecoord.handlers.clinical.loop",
    "carecoord.handlers.consent": "carecoord.handlers.programs.consent",
    "carecoord.handlers.directory_ranking": "carecoord.handlers.referrals.ranking",
    "carecoord.handlers.disenrolment": "carecoord.handlers.programs.disenrolment",
    "carecoord.handlers.enrolment": "carecoord.handlers.programs.enrolment",
    "carecoord.handlers.event_ids": "carecoord.handlers.care.event_ids",
    "carecoord.handlers.outreach": "carecoord.handlers.programs.outreach",
    "carecoord.handlers.patient_context": "carecoord.handlers.care.patient_context",
    "carecoord.handlers.reassignment": "carecoord.handlers.programs.reassignment",
    "carecoord.handlers.referral_consent": "carecoord.handlers.referrals.consent",
    "carecoord.handlers.referral_notifications": "carecoord.handlers.notifications.referrals",
    "carecoord.handlers.referral_outcome": "carecoord.handlers.referrals.outcome",
    "carecoord.handlers.sweeper": "carecoord.handlers.jobs.sweeper",
    "carecoord.handlers.task_notifications": "carecoord.handlers.notifications.tasks",
    "carecoord.handlers.task_paths": "carecoord.handlers.care.task_paths",
    "carecoord.handlers.tcm": "carecoord.handlers.programs.tcm",
    "carecoord.handlers.worklist": "carecoord.handlers.jobs.worklist",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new} in carecoord 0.2; the old path goes in 0.3",
        DeprecationWarning,
        stacklevel=4,
    )


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)  # the same module object under both names

    def exec_module(self, module: ModuleType) -> None:
        """Already executed under its new name."""


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return importlib.util.spec_from_loader(fullname, _Alias(new)) if new else None


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())


def forward(old: str, new: str, name: str) -> Any:
    """For a package that took the place of a module (`carecoord.handlers.referrals`): its
    module `__getattr__` hands out the old module's names from `new`, with the warning."""
    module = importlib.import_module(new)
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {old!r} has no attribute {name!r}")
    _warn(f"{old}.{name}", f"{new}.{name}")
    return getattr(module, name)


install()
