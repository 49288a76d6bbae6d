"""The built-in handlers register through the router: no module dispatches on the event type by
hand, and every catalog event type reaches exactly the built-in specs it reached before the
conversion (names, event types and their order, configuration keys, config models)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime

import pytest

from carecoord.core.catalog import INBOUND
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.errors import MalformedEvent
from carecoord.handlers.loader import BUILTIN_MODULES, discover, load_handlers
from carecoord.testing import InMemoryFhir, events
from support.paths import ROOT

HANDLERS_DIR = ROOT / "src" / "carecoord" / "handlers"

# What each built-in spec subscribed to before the handlers moved onto the router, in order.
ROUTES_BEFORE: list[tuple[str, tuple[str, ...]]] = [
    ("enrolment", ("carecoord.patient.enrolled",)),
    ("outreach", ("carecoord.outreach.attempted", "carecoord.outreach.due")),
    ("care-tasks", ("carecoord.task.overdue",)),
    ("referrals", ("carecoord.sdoh.need-identified", "carecoord.referral.status-changed")),
    (
        "clinical-routing",
        (
            "carecoord.clinical.question",
            "carecoord.clinical.overdue",
            "carecoord.task.status-changed",
        ),
    ),
    # carecoord.rpm.reading added with RPM device supply (CY 2026 PFS, issue 26).
    ("billing", ("carecoord.time.logged", "carecoord.rpm.reading")),
    ("reassignment", ("carecoord.care-manager.reassign",)),
    ("consent", ("carecoord.consent.recorded",)),
    ("disenrolment", ("carecoord.patient.disenrolled",)),
    ("tcm", ("carecoord.patient.discharged", "carecoord.tcm.episode-ended")),
    ("assessments", ("carecoord.assessment.completed",)),
]
# Their settings (default_config keys) and config models before the conversion.
CARE = "CareConfig"
SETTINGS_BEFORE: dict[str, tuple[str | None, set[str]]] = {
    "enrolment": (
        CARE,
        {
            "capacity", "care_managers", "supervisor", "pool", "outreach_channel",
            "enrolment_tasks", "monthly_tasks", "task_due_days", "consent_required",
            "consent_due_days",
        },
    ),
    "outreach": (
        CARE,
        {
            "outreach_channel", "max_unanswered", "escalation_owner", "lead_care_manager",
            "supervisor", "pool", "alternative_channels", "monthly_tasks",
            "days_before_period_end", "unreachable_months",
        },
    ),
    "care-tasks": (CARE, {"supervisor", "pool"}),
    "referrals": (
        "ReferralConfig", {"max_attempts", "organization", "practice_phone", "requester"}
    ),
    "assessments": (
        "AssessmentConfig",
        {
            "phq9_item9_urgent_above", "phq9_review_at", "gad7_review_at", "medication_question",
            "unsafe_question", "sdoh_referral", "sdoh_consent_to_contact",
        },
    ),
    "clinical-routing": (
        "ClinicalConfig",
        {
            "clinical_lead", "covering_provider", "holidays", "on_call", "practice_hours",
            "provider", "routine_response_business_days", "timezone",
            "urgent_response_business_hours",
        },
    ),
    "billing": (
        "BillingConfig",
        {
            "addon_limits", "apcm_bundles", "billing_practitioner", "complex_ccm",
            "consent_required", "exclusive_programs", "min_conditions",
            "rpm_requires_interaction", "timezone",
        },
    ),
    "reassignment": (CARE, {"capacity", "care_managers", "supervisor", "pool"}),
    "consent": (None, set()),
    "disenrolment": (None, set()),
    "tcm": ("TcmConfig", {"contact_attempts", "federal_holidays", "holidays", "owner"}),
}  # fmt: skip


def hand_dispatch(source: str) -> list[int]:
    """Lines that compare an attribute named `type` (`event.type == ...`, `ev.type in (...)`)
    or `match` on one: a handler choosing its own route instead of the router."""

    def is_type(node: ast.expr) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "type"

    def dispatches(node: ast.AST) -> bool:
        if isinstance(node, ast.Compare):
            return any(map(is_type, [node.left, *node.comparators]))
        return isinstance(node, ast.Match) and is_type(node.subject)

    return [node.lineno for node in ast.walk(ast.parse(source)) if dispatches(node)]


def test_the_check_finds_hand_dispatch() -> None:
    assert hand_dispatch("if event.type == QUESTION:\n    pass\n") == [1]
    assert hand_dispatch("x = 1\nok = ev.type in TYPES\n") == [2]
    assert hand_dispatch("match event.type:\n    case _:\n        pass\n") == [1]
    assert hand_dispatch("log(event_type=event.type)\n") == []


def test_no_builtin_handler_module_dispatches_on_the_event_type() -> None:
    found = {
        path.name: lines
        for path in sorted(HANDLERS_DIR.glob("*.py"))
        if (lines := hand_dispatch(path.read_text()))
    }
    assert found == {}


def _builtin_specs() -> list[HandlerSpec]:
    return [d.spec for d in discover(builtin_modules=BUILTIN_MODULES, group="none")]


def test_builtin_specs_subscribe_to_what_they_did_in_the_same_order() -> None:
    assert [(s.name, s.event_types) for s in _builtin_specs()] == ROUTES_BEFORE


@pytest.mark.parametrize("event_type", sorted(INBOUND))
def test_each_catalog_type_reaches_exactly_its_former_specs(event_type: str) -> None:
    table = load_handlers(group="none")
    before = [name for name, types in ROUTES_BEFORE if event_type in types]
    assert [s.name for s in table.for_type(event_type)] == before


def test_builtin_settings_and_config_models_are_unchanged() -> None:
    now = {
        s.name: (s.config_model.__name__ if s.config_model else None, set(s.default_config))
        for s in _builtin_specs()
    }
    assert now == SETTINGS_BEFORE


def _ctx() -> HandlerContext:
    return HandlerContext(fhir=InMemoryFhir(), config={}, clock=lambda: datetime.now(UTC))


@pytest.mark.parametrize("spec", _builtin_specs(), ids=lambda s: s.name)
def test_each_route_validates_its_catalog_payload_and_other_types_do_nothing(
    spec: HandlerSpec,
) -> None:
    for event_type in INBOUND:
        bad = events.event(event_type, "p1", {"unexpected": True})
        if event_type in spec.event_types:
            with pytest.raises(MalformedEvent, match="invalid data"):
                spec.handle(bad, _ctx())
        else:
            assert spec.handle(bad, _ctx()) == Effects()
