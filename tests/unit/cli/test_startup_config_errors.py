"""Every configuration mistake stops a command at start-up with exit code 2 and ONE line that names
the setting and the fix (docs/configuration-errors.md), in the log format the operator chose; a
server a CLI command needs that cannot be reached is exit code 3, one line, soon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.paths import ROOT

# Nothing listens on port 9 (discard): a check that let the command through would hang or fail
# differently, never pass.
NOWHERE_KAFKA = "127.0.0.1:9"
NOWHERE_FHIR = "http://127.0.0.1:9/fhir"
PRACTICE = {"CARECOORD_HANDLERS__referrals__organization": "Organization/practice"}
SAMPLE_DIRECTORY = ROOT / "examples/directory/springfield-hsds.json"


def carecoord(
    *args: str, cwd: Path, timeout: float = 60, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`carecoord <args>` as a user runs it: a fresh process with only `settings` as CARECOORD_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(CARECOORD_HEALTH_PORT="0", CARECOORD_SWEEPER_INTERVAL="0", **settings)
    return subprocess.run(
        [sys.executable, "-c", "from carecoord.cli import app; app()", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(run: subprocess.CompletedProcess[str]) -> str:
    """The command's only stderr line (its message when it was logged as JSON)."""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr[-3000:]
    (line,) = lines
    return str(json.loads(line)["msg"]) if line.startswith("{") else line


def run_service(
    tmp_path: Path, *, practice: bool = True, **settings: str
) -> subprocess.CompletedProcess[str]:
    given = {"CARECOORD_KAFKA_BOOTSTRAP": NOWHERE_KAFKA, "CARECOORD_FHIR_BASE_URL": NOWHERE_FHIR}
    return carecoord("run", cwd=tmp_path, **{**given, **(PRACTICE if practice else {}), **settings})


def test_kafka_options_that_are_not_json_name_the_setting_and_the_position(
    tmp_path: Path,
) -> None:
    run = run_service(tmp_path, CARECOORD_KAFKA_OPTIONS='{"session_timeout_ms": 6000,')
    assert run.returncode == 2
    line = one_line(run)
    assert "CARECOORD_KAFKA_OPTIONS is not valid JSON (line 1 column 29" in line
    assert 'use a JSON object of kafka-python options, e.g. {"session_timeout_ms": 6000}' in line
    assert "SettingsError" not in run.stderr and "uncaught" not in run.stderr


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ('{"no_such_option": 1}', "kafka-python has no option 'no_such_option'"),
        ('{"retry_backoff_ms": "soon"}', "has retry_backoff_ms of the wrong type: use a number"),
        ('{"max_poll_records": "many"}', "has max_poll_records of the wrong type: use a number"),
    ],
    ids=["unknown-name", "kafka-python-type", "runtime-type"],
)
def test_kafka_options_are_checked_before_anything_connects(
    tmp_path: Path, options: str, says: str
) -> None:
    run = run_service(tmp_path, CARECOORD_KAFKA_OPTIONS=options)
    assert run.returncode == 2
    assert says in one_line(run)  # the only line: the service did not start


@pytest.mark.parametrize(
    ("bootstrap", "says"),
    [
        ("127.0.0.1:notaport", "CARECOORD_KAFKA_BOOTSTRAP has no valid port"),
        ("kafka", "CARECOORD_KAFKA_BOOTSTRAP is not host:port: give the port too"),
        ("127.0.0.1:9092,kafka:70000", "CARECOORD_KAFKA_BOOTSTRAP entry 2 has no valid port"),
    ],
    ids=["not-a-port", "no-port", "second-entry"],
)
def test_each_bootstrap_entry_must_be_host_and_port(
    tmp_path: Path, bootstrap: str, says: str
) -> None:
    run = run_service(tmp_path, CARECOORD_KAFKA_BOOTSTRAP=bootstrap)
    assert run.returncode == 2
    line = one_line(run)
    assert says in line
    assert "KAFKA_OPTIONS" not in line  # the setting at fault, not another


def test_a_bad_toml_config_file_gives_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "carecoord.toml"
    config.write_text('kafka_bootstrap = "127.0.0.1:9"\nconcurrency = \n')
    run = carecoord("run", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 2
    line = one_line(run)
    assert "config file is not valid TOML (line 2 column 15: Invalid value)" in line
    assert str(config) in line


def test_a_truncated_json_config_file_gives_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "carecoord.json"
    config.write_text('{"kafka_bootstrap": "127.0.0.1:9",\n "concurrency": ')
    run = carecoord("run", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 2
    assert "config file is not valid JSON (line 2 column 17: Expecting value)" in one_line(run)


def test_under_log_format_text_a_start_up_error_is_one_plain_line(tmp_path: Path) -> None:
    run = run_service(tmp_path, CARECOORD_LOG_FORMAT="text", CARECOORD_CONCURRENCY="0",
                      CARECOORD_FHIR_TIMEOUT="-1")  # fmt: skip
    assert run.returncode == 2
    line = one_line(run)
    assert not line.startswith("{")  # a plain line, not JSON
    assert " ERROR carecoord.run carecoord run failed: configuration error: " in line
    assert "CARECOORD_CONCURRENCY is invalid" in line
    assert "CARECOORD_FHIR_TIMEOUT is invalid" in line  # every problem, on the same line


def test_referrals_without_a_practice_or_requester_fail_at_start_not_per_event(
    tmp_path: Path,
) -> None:
    run = run_service(tmp_path, practice=False)
    assert run.returncode == 2
    line = one_line(run)
    assert "CARECOORD_HANDLERS__referrals__organization is not set" in line
    assert "set CARECOORD_HANDLERS__referrals__organization=Organization/<practice id>" in line
    assert "CARECOORD_HANDLERS_DISABLED=referrals" in line


def test_a_practitioner_as_the_referral_requester_is_refused_at_start(tmp_path: Path) -> None:
    run = run_service(
        tmp_path, practice=False, CARECOORD_HANDLERS__referrals__requester="Practitioner/cm-1"
    )
    assert run.returncode == 2
    assert "CARECOORD_HANDLERS__referrals__requester is a Practitioner" in one_line(run)


def test_a_bad_handler_setting_is_one_line_too(tmp_path: Path) -> None:
    run = run_service(tmp_path, CARECOORD_HANDLERS__billing__addon_limits="not json")
    assert run.returncode == 2
    assert "CARECOORD_HANDLERS__billing__addon_limits is invalid" in one_line(run)


def test_a_misspelt_subscription_kind_fails_at_start_even_when_nothing_registers(
    tmp_path: Path,
) -> None:
    # `subscriptions ensure` is not run at start by default: the typo must not wait for it.
    run = run_service(tmp_path, CARECOORD_SUBSCRIPTIONS_KINDS="referal-tasks")
    assert run.returncode == 2
    line = one_line(run)
    assert "CARECOORD_SUBSCRIPTIONS_KINDS names unknown kinds ['referal-tasks']" in line
    assert "referral-tasks" in line  # the fix: the kinds there are


def test_dlq_list_checks_the_bootstrap_before_connecting(tmp_path: Path) -> None:
    run = carecoord("dlq", "list", cwd=tmp_path, CARECOORD_KAFKA_BOOTSTRAP="kafka")
    assert run.returncode == 2
    assert "CARECOORD_KAFKA_BOOTSTRAP is not host:port" in one_line(run)


def test_a_truncated_directory_file_gives_line_and_column(tmp_path: Path) -> None:
    export = tmp_path / "directory.json"
    export.write_text('[{"id": "svc-1",\n  "name": "Food pantry",\n  "organization": {')
    run = carecoord("directory", "import", str(export), "--dry-run", cwd=tmp_path)
    assert run.returncode == 2
    line = one_line(run)
    assert f"{export} is not valid JSON (line 3 column 20:" in line


def test_worklist_against_an_unreachable_server_exits_3_soon_with_one_line(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    run = carecoord(
        "worklist",
        "--care-manager",
        "Practitioner/cm-1",
        cwd=tmp_path,
        CARECOORD_FHIR_BASE_URL="http://svc:s3cret-pw@127.0.0.1:9/fhir",
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 3  # not 2: nothing is wrong with the configuration
    line = one_line(run)  # no retry lines
    assert "the FHIR server at http://***@127.0.0.1:9/fhir is unreachable" in line
    assert "check CARECOORD_FHIR_BASE_URL and that the server is up" in line
    assert "s3cret" not in run.stderr
    # The task asks an interactive command to give up within about 10 s (5 s of retries here,
    # plus the interpreter's start); generous for a loaded machine.
    assert elapsed < 20, elapsed


def test_dlq_list_against_an_unreachable_broker_exits_3_soon_with_one_line(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    run = carecoord("dlq", "list", cwd=tmp_path, CARECOORD_KAFKA_BOOTSTRAP=NOWHERE_KAFKA)
    elapsed = time.monotonic() - started
    assert run.returncode == 3
    line = one_line(run)  # no traceback, no kafka-python lines
    assert "no Kafka broker of CARECOORD_KAFKA_BOOTSTRAP (127.0.0.1:9) accepts a connection" in line
    assert elapsed < 20, elapsed  # kafka-python alone would wait out its 30 s bootstrap


def test_directory_import_to_an_unreachable_server_exits_3_and_a_bad_map_gives_its_position(
    tmp_path: Path,
) -> None:
    export = SAMPLE_DIRECTORY
    run = carecoord("directory", "import", str(export), cwd=tmp_path,
                    CARECOORD_FHIR_BASE_URL=NOWHERE_FHIR)  # fmt: skip
    assert run.returncode == 3
    assert "the FHIR server at http://127.0.0.1:9/fhir is unreachable" in one_line(run)

    mapping = tmp_path / "map.json"
    mapping.write_text('{"Food Pantries": "food-insecurity",\n "Housing": }')
    run = carecoord("directory", "import", str(export), "--dry-run", "--taxonomy-map",
                    str(mapping), cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2
    assert f"the taxonomy map {mapping} does not parse (line 2 column 13:" in one_line(run)
