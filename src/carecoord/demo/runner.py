"""Runs the simulated month through the real service: `run_demo(scale)`.

Per simulated day: the sweeper's time-based triggers (Mondays and the last days of the month, on
the demo's clock), then the day's events from the simulator, then the community organisations'
Task updates on the FHIR server with their notifications to the service's notification listener.
After each step the runner waits until the service has processed (or dead-lettered) everything
published so far, so the next day sees the FHIR server as the handlers left it. The service's
clock is the demo's: handlers and the sweeper see the simulated date, never the wall clock.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import httpx

from carecoord.caremodel import terminology as t
from carecoord.caremodel import workflow
from carecoord.core.envelope import CloudEvent
from carecoord.demo.fhirdata import FhirData, code_values, ident, patient_id
from carecoord.demo.screens import ASSESSMENT_COMPLETED
from carecoord.demo.sim import (
    MONTH_START,
    PROVIDERS,
    CareKind,
    CareTaskView,
    OrgUpdate,
    ReferralTaskView,
    Scale,
    Simulator,
    condition_resources,
    patient_resources,
)
from carecoord.directory.hsds import import_directory
from carecoord.events.broker import TP, Message
from carecoord.fhir.client import FhirClient
from carecoord.handlers.jobs.sweeper import sweep, sweep_config
from carecoord.handlers.loader import discover
from carecoord.service.app import Service
from carecoord.service.logging import configure_logging
from carecoord.service.metrics import ServiceMetrics
from carecoord.settings import Settings, load_settings

# The sample community directory (Open Referral HSDS) ships inside the package, so the demo runs
# from an installed wheel (samples/); examples/directory/ keeps the same file for `carecoord
# directory import` and the tests (tests/unit/demo/test_demo_package_data.py checks they are equal).
DIRECTORY = "springfield-hsds.json"
SUPERVISOR = "Practitioner/supervisor-adams"
FULL_TIME_CAPACITY = 250  # patients a month (CMS-typical caseload of one care manager)
PART_TIME_CAPACITY = 150
OPEN_REFERRAL = ("requested", "received", "accepted", "in-progress")
OPEN_WORK = workflow.OPEN


class SimClock:
    """The demo's clock, shared by the handlers and the sweeper."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def set(self, now: datetime) -> None:
        with self._lock:
            self._now = now

    def __call__(self) -> datetime:
        with self._lock:
            return self._now


class CountingMetrics(ServiceMetrics):
    """The service's metrics, plus a count of finished events (processed or dead-lettered)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = 0
        self.dead = 0
        self.cond = threading.Condition()

    def on_processed(self, tp: TP, event_type: str, seconds: float) -> None:
        super().on_processed(tp, event_type, seconds)
        with self.cond:
            self.done += 1
            self.cond.notify_all()

    def on_dead_lettered(self, tp: TP, error_type: str) -> None:
        super().on_dead_lettered(tp, error_type)
        with self.cond:
            self.done += 1
            self.dead += 1
            self.cond.notify_all()


class DemoService(Service):
    """The real service; counts what is published to its input topic (by the demo and by the
    notification listener) so the demo knows when everything is processed."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.published = 0
        self._count_lock = threading.Lock()

    def publish(self, events: Sequence[CloudEvent], topic: str | None = None) -> None:
        super().publish(events, topic)
        if topic is None or topic == self.settings.topic_in:
            with self._count_lock:
                self.published += len(events)


def capacities(sim: Simulator) -> dict[str, int]:
    """Full-time care managers, the last of three or more part-time. The practice's EHR assigns
    patients round-robin, whatever the capacity: the caseload chart shows the part-time care
    manager over capacity (what the reassignment sweep, or a lead, would act on)."""
    cms = sim.care_managers
    return {
        cm: PART_TIME_CAPACITY if len(cms) >= 3 and i == len(cms) - 1 else FULL_TIME_CAPACITY
        for i, cm in enumerate(cms)
    }


def handler_config(sim: Simulator) -> dict[str, dict[str, Any]]:
    """The practice's configuration of the built-in handlers.

    Work Tasks: only TCM's medication reconciliation (due in 7 days) is created; no catalog event
    completes a work Task yet, so enabling the others would only show every one of them overdue.
    """
    care = {
        "care_managers": [{"reference": cm, "capacity": c} for cm, c in capacities(sim).items()],
        "supervisor": SUPERVISOR,
        "lead_care_manager": sim.care_managers[0],
        "enrolment_tasks": {"TCM": ["medication-reconciliation"]},
        "monthly_tasks": {},
    }
    wanted: dict[str, dict[str, Any]] = {
        "enrolment": care,
        "outreach": care,
        "care-tasks": care,
        # The practice: care managers request referrals as their PractitionerRole there
        # (SDOHCC Task requester: PractitionerRole or Organization).
        "referrals": {
            "organization": "Organization/demo-practice",
            "practice_phone": "+1 555 0100",
        },
        # The demo's screenings are done on a care manager's call, who asks then whether a
        # community organisation may contact the patient (the handler's default holds them).
        "assessments": {"sdoh_consent_to_contact": True},
        "billing": {"addon_limits": {"99439": 2, "99458": 2}},
        "tcm": {"owner": sim.care_managers[0]},  # a discharge before the patient has a manager
        # who answers when the patient's provider does not (in time): the covering provider,
        # then the clinical lead; a patient without a care-team provider yet goes to the first
        "clinical-routing": {
            "provider": PROVIDERS[0],
            "covering_provider": "Practitioner/dr-reyes",
            "clinical_lead": "Practitioner/dr-adeyemi",
        },
    }
    # each handler gets the keys it declares (a key it does not know fails at start-up)
    declared = {d.spec.name: set(d.spec.default_config) for d in discover()}
    return {
        name: {k: v for k, v in values.items() if k in declared.get(name, set())}
        for name, values in wanted.items()
        if name in declared
    }


@dataclass
class Servers:
    bootstrap: str
    fhir_url: str
    pids: dict[str, int] = field(default_factory=dict)  # embedded ones: name -> pid


@contextmanager
def servers() -> Iterator[Servers]:
    """The servers named by CARECOORD_KAFKA_BOOTSTRAP and CARECOORD_FHIR_BASE_URL, or embedded
    ones started here (and stopped on the way out)."""
    import os

    from carecoord.local import start_fhir, start_kafka

    with ExitStack() as stack:
        bootstrap = os.environ.get("CARECOORD_KAFKA_BOOTSTRAP")
        fhir_url = os.environ.get("CARECOORD_FHIR_BASE_URL")
        pids: dict[str, int] = {}
        if not bootstrap:
            kafka = start_kafka()
            stack.callback(kafka.close)
            bootstrap, pids["Kafka broker"] = kafka.bootstrap, kafka.proc.pid
        workdir: Path | None = None
        finished = False
        if not fhir_url:
            workdir = Path(tempfile.mkdtemp(prefix="carecoord-demo-fhir-"))
            stack.callback(_remove_unless_failed, workdir, lambda: finished)
            fhir = start_fhir(workdir=workdir)  # kept if the demo fails: its log is there
            stack.callback(fhir.close)
            fhir_url, pids["FHIR server"] = fhir.base_url, fhir.proc.pid
        try:
            yield Servers(bootstrap, fhir_url.rstrip("/"), pids)
        except BaseException:
            if workdir is not None:
                print(f"demo: the embedded FHIR server's log is in {workdir}", file=sys.stderr)
            raise
        finished = True


def _remove_unless_failed(workdir: Path, finished: Callable[[], bool]) -> None:
    if finished():
        shutil.rmtree(workdir, ignore_errors=True)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class DayLog:
    day: int
    events: int = 0
    org_updates: int = 0
    notifications: int = 0
    poison: int = 0
    sweep_events: int = 0
    screenings: int = 0  # completed questionnaires (on FHIR + carecoord.assessment.completed)


@dataclass
class DemoRun:
    """Everything the summary needs to find this run's data (not its results: those are read
    back from the FHIR server and the topics)."""

    scale: Scale
    settings: Settings
    fhir_url: str
    bootstrap: str
    care_managers: list[str]
    capacities: dict[str, int]
    handler_config: dict[str, dict[str, Any]]
    ended_at: datetime  # the demo's clock at the end of the last simulated day
    days: list[DayLog] = field(default_factory=list)
    directory_services: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds
    snapshots: list[dict[str, int]] = field(default_factory=list)  # referral statuses per day
    skipped_mix: list[str] = field(default_factory=list)
    # why screenings and check-ins were not simulated (None: they were)
    screenings_skipped: str | None = None

    @property
    def patient_prefix(self) -> str:
        return f"{self.scale.run}-"


R = TypeVar("R")
Progress = Callable[[str, int, int], None]  # (what, done, total)


SCREENINGS_SKIPPED = (
    f"no loaded handler takes {ASSESSMENT_COMPLETED} (the assessments handler) to score them"
)


def screening_handled(event_types: Sequence[str]) -> bool:
    """Whether the loaded handlers score completed questionnaires (else the demo skips them)."""
    return ASSESSMENT_COMPLETED in event_types


def put_all(fhir: FhirClient, resources: Sequence[dict[str, Any]], chunk: int = 200) -> None:
    """Write `resources` with PUT at their ids (batches of `chunk`); a failed entry stops the
    demo (a screening the FHIR server refused would have no response to score)."""
    for i in range(0, len(resources), chunk):
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources[i : i + chunk]
        ]
        fhir.batch({"resourceType": "Bundle", "type": "batch", "entry": entries}).raise_for_errors()


def _wait_done(service: DemoService, metrics: CountingMetrics, extra: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with metrics.cond:
        while metrics.done < service.published + extra:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(
                    f"demo: timed out: {metrics.done} of {service.published + extra} events done"
                )
            metrics.cond.wait(min(left, 0.5))


def open_referrals(data: FhirData, prefix: str) -> list[ReferralTaskView]:
    tasks = data.search(
        "Task",
        [
            ("code", f"{t.TASK_FULFILL.system}|{t.TASK_FULFILL.code}"),
            ("status", ",".join(OPEN_REFERRAL)),
        ],
    )
    out = []
    for task in tasks:
        pid = patient_id(task)
        key = ident(task, "referral-task")
        if pid and pid.startswith(prefix) and key and task.get("status") in OPEN_REFERRAL:
            out.append(ReferralTaskView(str(task["id"]), key, str(task["status"]), pid))
    return out


CARE_TASKS: dict[str, CareKind] = {
    t.TASK_TCM_INTERACTIVE_CONTACT.code: "tcm-contact",
    t.TASK_TCM_FACE_TO_FACE.code: "tcm-visit",
    t.TASK_CLINICAL_REVIEW.code: "clinical-review",
}


def open_care_tasks(data: FhirData, prefix: str) -> list[CareTaskView]:
    """The open TCM deadline and clinical-review Tasks of this run's patients."""
    codes = ",".join(f"{t.TASK_TYPE_SYSTEM}|{code}" for code in CARE_TASKS)
    out = []
    for task in data.search("Task", [("code", codes), ("status", ",".join(OPEN_WORK))]):
        pid = patient_id(task)
        kind = next((CARE_TASKS[c] for c in code_values(task.get("code")) if c in CARE_TASKS), None)
        if pid and pid.startswith(prefix) and kind and task.get("status") in OPEN_WORK:
            out.append(CareTaskView(str(task["id"]), kind, pid))
    return out


def _notification(base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    """An id-only R4 Subscriptions Backport notification, as a FHIR server would post it."""
    ref = f"Task/{task['id']}/_history/{task['meta']['versionId']}"
    status = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subscription", "valueReference": {"reference": "Subscription/cbo-tasks"}},
            {"name": "status", "valueCode": "active"},
            {"name": "type", "valueCode": "event-notification"},
            {"name": "notification-event",
             "part": [{"name": "focus", "valueReference": {"reference": ref}}]},
        ],
    }  # fmt: skip
    return {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": status},
            {"fullUrl": f"{base_url}/{ref}", "request": {"method": "PUT", "url": ref}},
        ],
    }


def apply_org_updates(
    http: httpx.Client,
    base_url: str,
    notify_url: str,
    token: str,
    updates: Sequence[OrgUpdate],
    now: datetime,
) -> int:
    """The organisations update their Tasks on the FHIR server; the server notifies carecoord.
    Returns the number of notifications carecoord accepted."""
    accepted = 0
    for update in updates:
        response = http.get(f"{base_url}/Task/{update.task_id}")
        response.raise_for_status()
        task = response.json()
        task["status"] = update.status
        if update.reason:
            task["statusReason"] = {"text": update.reason}
        task["lastModified"] = now.isoformat()
        version = task.get("meta", {}).get("versionId")
        headers = {"Content-Type": "application/fhir+json"}
        if version:
            headers["If-Match"] = f'W/"{version}"'
        put = http.put(f"{base_url}/Task/{update.task_id}", json=task, headers=headers)
        if put.status_code == 412:  # carecoord moved it meanwhile: the organisation gives up
            continue
        put.raise_for_status()
        stored = http.get(f"{base_url}/Task/{update.task_id}").json()
        sent = http.post(
            notify_url,
            content=json.dumps(_notification(base_url, stored)),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
        )
        sent.raise_for_status()
        accepted += 1
    return accepted


def directory_json(directory: Path | None = None) -> Any:
    """The community directory to import: `directory`, or the sample shipped with the package."""
    if directory is None:
        return json.loads((files("carecoord.demo") / "samples" / DIRECTORY).read_text("utf-8"))
    if not directory.is_file():
        raise SystemExit(
            f"demo: the community directory {directory} is not there: pass --directory FILE "
            "(Open Referral HSDS JSON), or leave it out for the sample directory"
        )
    return json.loads(directory.read_text("utf-8"))


def sweep_day(day: int, days: int) -> bool:
    """The sweeper runs on Mondays, on the first day of the month's last five (outreach "nearly
    overdue"), and on the last simulated day. (`carecoord run` sweeps every few minutes; daily
    sweeps would find the same triggers and only cost time.)"""
    weekday = (MONTH_START + timedelta(days=day - 1)).weekday()
    return day > 1 and (weekday == 0 or day == 25 or day == days)


def run_demo(
    scale: Scale,
    *,
    progress: Progress | None = None,
    snapshot: Callable[[FhirData, DemoRun, int], dict[str, int]] | None = None,
    finish: Callable[[DemoRun, FhirData, Service], R],
    directory: Path | None = None,
) -> R:
    """Simulate the month through the real service, then `finish(run, data, service)` while the
    servers are still up (the summary reads them) and return what it returns."""
    with _demo_logging():
        return _run_demo(scale, progress=progress, snapshot=snapshot, finish=finish,
                         directory=directory)  # fmt: skip


@contextmanager
def _demo_logging() -> Iterator[None]:
    """Quiet logs while the demo runs, and the caller's logging as it was afterwards (the demo
    is also a library function, e.g. in a test run)."""
    root = logging.getLogger()
    quiet = {
        "kafka": logging.CRITICAL,
        "carecoord.fhir": logging.ERROR,
        "carecoord.events.runtime": logging.ERROR,
    }  # fmt: skip  (retries, the poison)
    saved = (list(root.handlers), root.level, {n: logging.getLogger(n).level for n in quiet})
    configure_logging("WARNING", "text")  # the service's JSON logs would drown the progress bar
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def _run_demo(
    scale: Scale,
    *,
    progress: Progress | None,
    snapshot: Callable[[FhirData, DemoRun, int], dict[str, int]] | None,
    finish: Callable[[DemoRun, FhirData, Service], R],
    directory: Path | None,
) -> R:
    hsds = directory_json(directory)
    started = time.monotonic()
    sim = Simulator(scale)
    clock = SimClock(sim.at(1, 7))
    config = handler_config(sim)
    token = uuid.uuid4().hex
    cpu_start = time.process_time()
    with servers() as found, ExitStack() as stack:
        bootstrap, fhir_url = found.bootstrap, found.fhir_url
        with FhirClient(fhir_url) as fhir:
            imported = import_directory(fhir, hsds)
            conditions = condition_resources(sim)
            for i in range(0, len(conditions), 200):  # the EHR's problem lists, before the month
                entries = [
                    {"resource": c, "request": {"method": "PUT", "url": f"Condition/{c['id']}"}}
                    for c in conditions[i : i + 200]
                ]
                fhir.batch({"resourceType": "Bundle", "type": "batch", "entry": entries})
        run = scale.run
        settings = load_settings(
            kafka_bootstrap=bootstrap,
            fhir_base_url=fhir_url,
            group_id=f"carecoord-demo-{run}",
            topic_in=f"carecoord.events.demo-{run}",
            topic_out=f"carecoord.outbound.demo-{run}",
            topic_dlq=f"carecoord.dlq.demo-{run}",
            health_host="127.0.0.1",
            health_port=0,
            sweeper_interval=0,  # the demo runs the sweeper itself, on its clock
            notifications_enabled=True,
            notifications_token=token,
            notifications_host="127.0.0.1",
            notifications_port=0,
            handlers=config,
            kafka_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                           "create_topics_partitions": 6},
        )  # fmt: skip
        metrics = CountingMetrics()
        service = DemoService(settings, clock=clock, metrics=metrics)
        worker = threading.Thread(target=service.run, name="carecoord-service", daemon=True)
        worker.start()
        stack.callback(worker.join, 30)
        stack.callback(service.request_stop)
        deadline = time.monotonic() + 90
        while not service.ready():
            if time.monotonic() > deadline or not worker.is_alive():
                raise SystemExit("demo: the service did not become ready")
            time.sleep(0.1)
        assert service.notifications is not None
        notify_url = f"http://127.0.0.1:{service.notifications.port}{settings.notifications_path}"
        result = DemoRun(
            scale=scale,
            settings=settings,
            fhir_url=fhir_url,
            bootstrap=bootstrap,
            care_managers=list(sim.care_managers),
            capacities=capacities(sim),
            handler_config=config,
            ended_at=sim.at(scale.days, 17),
            directory_services=imported.imported,
            skipped_mix=[f"{m.name} ({m.event_type})" for m in sim.skipped],
        )
        loaded = [t for spec in service.handlers.specs for t in spec.event_types]
        sim.screening = screening_handled(loaded)
        result.screenings_skipped = None if sim.screening else SCREENINGS_SKIPPED
        sweeper_config = sweep_config(service.handlers.configs)
        producer = service.runtime.broker.producer()
        stack.callback(producer.close)
        poison = 0
        data = stack.enter_context(FhirData(fhir_url))
        http = stack.enter_context(httpx.Client(timeout=60))
        sweep_fhir = stack.enter_context(FhirClient(fhir_url))
        timeout = max(120.0, scale.patients * 0.5)
        if sim.screening:  # the postal codes a positive SDOH screen is referred by
            put_all(sweep_fhir, patient_resources(sim))
        for day in range(1, scale.days + 1):
            log = DayLog(day)
            published: list[CloudEvent] = []
            if sweep_day(day, scale.days):  # the sweeper's 7 am run sees yesterday's FHIR state
                clock.set(sim.at(day, 7))
                published += [
                    e for e in sweep(sweep_fhir, clock(), sweeper_config)
                    if (e.subject or "").startswith(f"Patient/{result.patient_prefix}")
                ]  # fmt: skip
                log.sweep_events = len(published)
            plan = sim.day(day, open_referrals(data, result.patient_prefix))
            clock.set(sim.at(day, 17))
            # the organisations' overnight/morning updates: on FHIR, then notified
            log.org_updates = len(plan.org_updates)
            log.notifications = apply_org_updates(
                http, fhir_url, notify_url, token, plan.org_updates, sim.at(day, 8, 30)
            )
            put_all(sweep_fhir, [s.resource() for s in plan.screenings])  # before their events
            log.screenings = len(plan.screenings)
            published += sorted(plan.events, key=lambda e: (e.time or clock(), e.id))
            service.publish(published)
            if plan.poison:
                raw = [Message(settings.topic_in, k, v) for k, v in plan.poison]
                producer.send_all(raw, timeout=30)
                poison += len(raw)
            log.events, log.poison = len(plan.events), len(plan.poison)
            _wait_done(service, metrics, poison, timeout)
            # the practice's own people finish their Tasks at the end of the day (on FHIR)
            care = sim.care_team(day, open_care_tasks(data, result.patient_prefix))
            if care:
                log.notifications += apply_org_updates(
                    http, fhir_url, notify_url, token, care, sim.at(day, 17)
                )
                _wait_done(service, metrics, poison, timeout)
            if snapshot is not None:
                result.snapshots.append(snapshot(data, result, day))
            result.days.append(log)
            if progress is not None:
                progress(f"day {day}/{scale.days}", day, scale.days)
        result.seconds = time.monotonic() - started
        result.cpu["carecoord (service, simulator, summary)"] = time.process_time() - cpu_start
        for name, pid in found.pids.items():
            if (used := cpu_seconds(pid)) is not None:
                result.cpu[f"embedded {name}"] = used
        return finish(result, data, service)
