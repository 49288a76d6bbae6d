"""`carecoord run` as a user runs it: a subprocess configured by environment variables, against the
session's real Kafka broker and FHIR server, with a test handler from CARECOORD_HANDLER_MODULES."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecoord.core.envelope import new_event
from carecoord.events.broker import KafkaBroker, KafkaConnection, Message
from carecoord.local import free_port
from support.waiting import wait_for

pytestmark = pytest.mark.integration

SYSTEM = "urn:carecoord:test:service-run"

HANDLER_MODULE = """
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerSpec

SYSTEM = "{system}"


def make_task(event, ctx):
    effects = Effects()
    task = Task(
        status="requested",
        intent="order",
        identifier=[{{"system": SYSTEM, "value": event.id}}],
        businessStatus={{"text": ctx.config["stage"]}},
    )
    effects.create(task, SYSTEM, event.id)
    effects.emit("itest.task-made", event.subject, {{"for": event.id}}, event.id + ":made")
    return effects


HANDLERS = [
    HandlerSpec("{name}", ("itest.make-task",), make_task, default_config={{"stage": "new"}})
]
"""


@pytest.fixture
def service_env(
    tmp_path: Path, kafka_bootstrap: str, fhir_base_url: str, unique: str
) -> Iterator[dict[str, str]]:
    name = f"itest_{unique}"
    (tmp_path / f"cc_itest_{unique}.py").write_text(HANDLER_MODULE.format(system=SYSTEM, name=name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
    env.update(
        PYTHONPATH=str(tmp_path),
        CARECOORD_HANDLER_MODULES=f"cc_itest_{unique}",
        CARECOORD_HANDLERS_ENABLED=name,
        CARECOORD_KAFKA_BOOTSTRAP=kafka_bootstrap,
        CARECOORD_FHIR_BASE_URL=fhir_base_url,
        CARECOORD_TOPIC_IN=f"svc-in-{unique}",
        CARECOORD_TOPIC_OUT=f"svc-out-{unique}",
        CARECOORD_TOPIC_DLQ=f"svc-dlq-{unique}",
        CARECOORD_GROUP_ID=f"svc-{unique}",
        CARECOORD_KAFKA_OPTIONS=json.dumps(
            {
                "session_timeout_ms": 4000,
                "heartbeat_interval_ms": 1000,
                "create_topics_partitions": 2,
            }
        ),
        CARECOORD_HEALTH_HOST="127.0.0.1",
        CARECOORD_HEALTH_PORT=str(free_port()),
        CARECOORD_SWEEPER_INTERVAL="0",
        CARECOORD_DRAIN_TIMEOUT="10",
        CARECOORD_FHIR_AUTH="bearer",
        CARECOORD_FHIR_TOKEN=f"tok-{unique}-secret",
    )
    env[f"CARECOORD_HANDLERS__{name}__stage"] = "triaged"
    yield env


def carecoord(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start the CLI; its stderr (the JSON logs) goes to `log`: a pipe nobody reads would fill up
    and block the service."""
    with open(log, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-c", "from carecoord.cli import app; app()", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def test_run_processes_an_event_end_to_end_and_stops_on_sigterm(
    service_env: dict[str, str],
    kafka_bootstrap: str,
    fhir_base_url: str,
    unique: str,
    tmp_path: Path,
) -> None:
    health = f"http://127.0.0.1:{service_env['CARECOORD_HEALTH_PORT']}"
    log = tmp_path / "run.log"
    proc = carecoord(service_env, log, "run")
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"carecoord run exited: {log.read_text()[-3000:]}")
            return httpx.get(f"{health}/readyz").status_code == 200

        wait_for(ready, 60, "/readyz")
        event = new_event("itest.make-task", f"pat-{unique}", {}, id=f"evt-{unique}")
        producer = KafkaBroker(KafkaConnection(bootstrap=kafka_bootstrap)).producer()
        producer.send_all(
            [Message(service_env["CARECOORD_TOPIC_IN"], event.key, event.to_json_bytes())], 30
        )
        producer.close()

        def task_written() -> bool:
            r = httpx.get(
                f"{fhir_base_url}/Task", params={"identifier": f"{SYSTEM}|{event.id}"}, timeout=10
            )
            return bool(r.json().get("entry"))

        wait_for(task_written, 60, "the Task on the FHIR server")
        bundle = httpx.get(
            f"{fhir_base_url}/Task", params={"identifier": f"{SYSTEM}|{event.id}"}, timeout=10
        ).json()
        assert len(bundle["entry"]) == 1
        assert bundle["entry"][0]["resource"]["businessStatus"]["text"] == "triaged"

        def processed_metric() -> bool:
            lines = httpx.get(f"{health}/metrics").text.splitlines()
            return any(
                line.startswith("carecoord_events_processed_total{")
                and 'event_type="itest.make-task"' in line
                and line.endswith(" 1.0")
                for line in lines
            )

        wait_for(processed_metric, 30, "the processed metric")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    logs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert "-secret" not in text  # the bearer token never reaches the logs
    started = next(line for line in logs if line["msg"] == "carecoord service starting")
    assert started["settings"]["fhir_token"] == "**********"
    assert any(line["msg"] == "carecoord service stopped" for line in logs)


def run_to_exit(env: dict[str, str], tmp_path: Path) -> tuple[int, list[str]]:
    """`carecoord run` until it exits by itself: its exit code and every line it wrote."""
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.run(
            [sys.executable, "-c", "from carecoord.cli import app; app()", "run"],
            env=env,
            stdout=stdout,
            stderr=stderr,
            timeout=90,
        )
    return proc.returncode, out.read_text().splitlines() + err.read_text().splitlines()


def json_lines(lines: list[str]) -> list[dict[str, Any]]:
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line[:200]!r}")
    return parsed


def test_run_with_missing_settings_exits_2_with_the_fix(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in service_env.items() if k != "CARECOORD_FHIR_BASE_URL"}
    code, lines = run_to_exit(env, tmp_path)
    assert code == 2
    (failure,) = json_lines(lines)
    assert failure["level"] == "ERROR"
    assert (
        "CARECOORD_FHIR_BASE_URL is not set: point it at your FHIR server's base URL"
        in (failure["msg"])
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another process holds (here: a listening socket of the test)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_run_with_the_health_port_taken_exits_1_with_one_json_line_saying_so(
    service_env: dict[str, str], tmp_path: Path, taken_port: int
) -> None:
    env = {**service_env, "CARECOORD_HEALTH_PORT": str(taken_port)}
    code, lines = run_to_exit(env, tmp_path)
    assert code == 1
    logged = json_lines(lines)  # no traceback: every line is JSON
    (failure,) = [r for r in logged if r["level"] == "ERROR"]
    assert f"CARECOORD_HEALTH_PORT {taken_port} is already in use" in failure["msg"]
    assert "set CARECOORD_HEALTH_PORT to a free port" in failure["msg"]


def test_the_start_up_log_carries_no_secret_of_any_setting(
    service_env: dict[str, str], tmp_path: Path, taken_port: int
) -> None:
    env = {
        **service_env,
        # the taken port ends the run right after the start-up lines: those are under test
        "CARECOORD_HEALTH_PORT": str(taken_port),
        "CARECOORD_FHIR_BASE_URL": service_env["CARECOORD_FHIR_BASE_URL"].replace(
            "://", "://svc:leak-fhir-url-pw@", 1
        ),
        "CARECOORD_FHIR_AUTH": "client-credentials",
        "CARECOORD_FHIR_TOKEN_URL": "https://cc:leak-token-url-pw@auth.example.org/token",
        "CARECOORD_FHIR_CLIENT_ID": "carecoord",
        "CARECOORD_FHIR_CLIENT_SECRET": "leak-client-secret",
        "CARECOORD_FHIR_TOKEN": "leak-fhir-token",
        "CARECOORD_KAFKA_SASL_PASSWORD": "leak-sasl-pw",
        "CARECOORD_KAFKA_SSL_PASSWORD": "leak-ssl-pw",
        "CARECOORD_KAFKA_OPTIONS": json.dumps(
            {
                **json.loads(service_env["CARECOORD_KAFKA_OPTIONS"]),
                "sasl_plain_password": "leak-opt-sasl-pw",
                "sasl_oauth_token_provider": {"client_secret": "leak-opt-nested-secret"},
            }
        ),
        "CARECOORD_NOTIFICATIONS_ENABLED": "true",
        "CARECOORD_NOTIFICATIONS_TOKEN": "leak-notification-token",
        "CARECOORD_NOTIFICATIONS_PORT": "0",
    }
    code, lines = run_to_exit(env, tmp_path)
    assert sorted({m for line in lines for m in re.findall(r"leak-[a-z-]+", line)}) == []
    logged = json_lines(lines)
    assert any(r["msg"] == "carecoord service starting" for r in logged)
    assert code == 1
