"""Every enabled handler's configuration is validated when the handlers load, not per event."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from carecoord.errors import ConfigError
from carecoord.handlers.loader import load_handlers

# One invalid value per built-in handler whose configuration can be invalid, as it would arrive
# from an environment variable (text) or a TOML file (typed).
BAD: list[tuple[str, str, Any, str]] = [
    ("enrolment", "capacity", "-1", ">= 0"),
    ("outreach", "max_unanswered", "0", ">= 1"),
    ("outreach", "escalation_owner", "nobody", "'lead-care-manager' or 'provider'"),
    ("care-tasks", "supervisor", 5, "string"),
    ("reassignment", "care_managers", '[{"capacity": 3}]', "reference"),
    ("referrals", "max_attempts", "0", ">= 1"),
    ("referrals", "requester", "Jane Doe", "pattern"),
    ("clinical-routing", "provider", "Dr Jane", "pattern"),
    ("billing", "addon_limits", '{"99439": "many"}', "integer"),
]


@pytest.mark.parametrize(
    ("handler", "key", "value", "why"), BAD, ids=[f"{h}.{k}" for h, k, _, _ in BAD]
)
def test_a_bad_value_fails_at_load_naming_the_setting(
    handler: str, key: str, value: Any, why: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_handlers(config={handler: {key: value}}, group="none")
    message = str(err.value)
    assert f"CARECOORD_HANDLERS__{handler}__{key} is invalid" in message
    assert why in message
    assert "Jane" not in message  # names the setting, never echoes the value


def test_valid_values_and_disabled_handlers_load() -> None:
    table = load_handlers(
        config={"outreach": {"max_unanswered": "5"}, "billing": {"addon_limits": "not json"}},
        disabled=("billing",),
        group="none",
    )
    assert table.configs["outreach"]["max_unanswered"] == 5
    assert "billing" not in table.names


def test_run_exits_2_before_connecting_on_a_bad_handler_setting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(
        CARECOORD_KAFKA_BOOTSTRAP="127.0.0.1:9",  # nothing listens: it must fail before trying
        CARECOORD_FHIR_BASE_URL="http://127.0.0.1:9/fhir",
        CARECOORD_HEALTH_PORT="0",
        CARECOORD_SWEEPER_INTERVAL="0",  # the sweeper's own check must not be what catches it
        CARECOORD_HANDLERS__outreach__max_unanswered="0",
    )
    run = subprocess.run(
        [sys.executable, "-c", "from carecoord.cli import main; main()", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "CARECOORD_HANDLERS__outreach__max_unanswered is invalid" in run.stderr
    assert "Traceback" not in run.stderr
