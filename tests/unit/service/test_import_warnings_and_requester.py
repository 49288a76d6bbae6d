"""Two things a user meets before any event flows (issue 22):

- importing carecoord (and its test kit, building handlers, the in-memory broker) emits no
  DeprecationWarning in the user's own test run: kafka-python 3's legacy importlib.resources
  calls are silenced around its import, nothing else;
- the referrals handler's requester: checked at start-up (a setting, not a per-event dead
  letter).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from carecoord.errors import ConfigError
from carecoord.handlers.loader import load_handlers
from carecoord.handlers.referrals.handler import requester_problem
from carecoord.service.app import startup_checks
from carecoord.settings import load_settings
from support.paths import ROOT

EXAMPLE_DIR = ROOT / "examples" / "custom_handler"

USER_TEST_RUN = textwrap.dedent(
    f"""
    import sys
    import carecoord
    import carecoord.testing
    from carecoord import InMemoryBroker
    from carecoord.handlers.loader import load_handlers
    from carecoord.testing import events, run_handler

    sys.path.insert(0, {str(EXAMPLE_DIR)!r})
    table = load_handlers(extra_modules=["acme_tcm"])
    (spec,) = table.for_type("acme.patient.discharged")
    event = events.event("acme.patient.discharged", "p-1",
                         {{"discharged_at": "2026-11-01T18:00:00Z"}}, id="d-1")
    run_handler(spec, event)
    InMemoryBroker().producer()
    print("ok")
    """
)


def test_a_user_test_run_sees_no_deprecation_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",)}
    run = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", USER_TEST_RUN],
        cwd=tmp_path,  # not the project: none of its pytest configuration applies
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "ok"
    assert "DeprecationWarning" not in run.stderr


def test_other_deprecation_warnings_are_still_shown(tmp_path: Path) -> None:
    # Only kafka-python's legacy resource calls are silenced, not the category.
    code = "import carecoord, warnings; warnings.warn('mine', DeprecationWarning)"
    run = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "DeprecationWarning: mine" in run.stderr


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "CARECOORD_HANDLERS__referrals__organization is not set"),
        ({"requester": "Practitioner/cm-1"}, "requester is a Practitioner"),
        ({"organization": "Organization/practice"}, None),
        ({"requester": "Organization/clinic"}, None),
        ({"requester": "PractitionerRole/cm-1-role"}, None),
    ],
    ids=["nothing", "practitioner", "organization", "requester-org", "requester-role"],
)
def test_the_requester_settings_that_can_request_a_referral(
    config: dict[str, Any], problem: str | None
) -> None:
    found = requester_problem({"organization": None, "requester": None, **config})
    assert found is None if problem is None else (found is not None and problem in found)


def test_the_service_start_checks_the_requester_only_when_referrals_is_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("CARECOORD_")]:
        monkeypatch.delenv(name)
    settings = load_settings(kafka_bootstrap="kafka:9092", fhir_base_url="http://fhir.test")
    with pytest.raises(ConfigError, match="referrals__organization is not set"):
        startup_checks(settings, load_handlers(group="none"), real_broker=True)
    startup_checks(settings, load_handlers(disabled=["referrals"], group="none"), real_broker=True)
    configured = {"referrals": {"organization": "Organization/practice"}}
    startup_checks(settings, load_handlers(config=configured, group="none"), real_broker=True)
