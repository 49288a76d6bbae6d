"""`carecoord run` refuses a poll interval below the IG's 15 minutes and a discharge mapping
that is not one, before it connects to anything: exit 2 and one line naming the setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_service(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(
        CARECOORD_HEALTH_PORT="0",
        CARECOORD_SWEEPER_INTERVAL="0",
        CARECOORD_KAFKA_BOOTSTRAP="127.0.0.1:9",  # nothing listens: a check let through hangs
        CARECOORD_FHIR_BASE_URL="http://127.0.0.1:9/fhir",
        CARECOORD_HANDLERS__referrals__organization="Organization/practice",
        **settings,
    )
    return subprocess.run(
        [sys.executable, "-c", "from carecoord.cli import app; app()", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"CARECOORD_RECONCILE_INTERVAL": "600"},
            "SHOULD NOT query more often than every 15 minutes",
        ),
        (
            {"CARECOORD_DISCHARGE_MAPPING": '{"complexity": "extreme"}'},
            "CARECOORD_DISCHARGE_MAPPING is not valid at complexity",
        ),
    ],
    ids=["interval", "discharge-mapping"],
)
def test_a_bad_poller_setting_stops_run_with_one_line(
    tmp_path: Path, settings: dict[str, str], says: str
) -> None:
    run = run_service(tmp_path, **settings)
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr[-2000:]
    line = str(json.loads(lines[0])["msg"]) if lines[0].startswith("{") else lines[0]
    assert says in line
