"""(e) The pipeline benchmark: real handlers, the embedded broker and FHIR server, and a counting
proxy in front of the server (tests/support/fhir_proxy.py), over a realistic mix.

Per patient, in the measured month: an enrolment, three unanswered attempts (the third
escalates), two time entries (the second crosses CCM 99490), and for every fourth patient a
social need (a community referral). Before it, each patient gets `history` months of past
outreach (the monthly request and three attempts) and time entries, written straight to the
server, so searches that are not bounded to their period would grow with it.

- Requests per event type: a few patients' events one at a time through an in-process runtime,
  each event's requests counted (and the first patient's requests, and the outbound messages
  its events produced, kept as the floor's templates).
- The drains run in service processes of their own (bench/drain.py, bench/worker.py): the
  other patients' events published one type at a time after an unmeasured warm-up; events/s
  publish -> last processed; CPU per event and per event type of the service process(es), of
  the server, of this bench process (the producer and the counting proxy) and of the embedded
  broker, from /proc/<pid>/stat. At 1 month of history, on patients of their own against the
  same server, also the floor consumer (bench/floor.py: the same requests and the same outbound
  messages for the same events; carecoord and the floor drained twice each, interleaved, and
  the least CPU per event of each compared: cpu_ratio_to_floor) and 2 and 3 service processes in one
  consumer group (events_per_s_by_processes; by_processes adds their failed attempts and the
  processor's re-runs on version conflicts).
- Cores (bench/pinning.py): with 2 or more, the server owns core 0, everything else (this
  process, the service processes, the broker, the replays) shares the rest, for the drains and
  the raw replays alike; `pinning` in the results says which (None: not pinned).
- Each history level runs on a fresh embedded server (the same one where
  CARECOORD_FHIR_BASE_URL names an external server), so the only thing that grows is the
  history per patient, not the database the earlier levels left behind.
- The server's own rate for this work, raw_events_per_s: every request the 1-process drain sent
  for its measured events (the proxy's trace: batch reads, reads, transactions), replayed phase
  by phase as the drain ran them, in a phase each patient's requests in the order sent (reads
  as they were, against the same data; transactions with the patient renamed so their creates
  are new, without If-Match), 16 patients at a time (the runtime's max_in_flight), from a
  process of its own (bench/replay.py), through the same proxy: measured events / seconds.
  server_ratio = carecoord events/s / raw_events_per_s.
- The earlier figure, kept beside it: raw_transactions_per_s, only the transaction bundles (one
  per event, 8 clients, from this process); server_ratio_to_transactions = events/s / that.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.condition import Condition

from bench import pinning
from bench.drain import cpu_seconds, drain
from bench.floor import headers_of
from carecoord.caremodel import terminology as t
from carecoord.caremodel.identifiers import add_create, business_identifier_json
from carecoord.core.catalog import INBOUND
from carecoord.core.effects import Effects, Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.directory.hsds import import_directory
from carecoord.events.producer import emit_to_event, event_message
from carecoord.fhir.client import FhirClient
from carecoord.handlers.care.model import Month
from carecoord.handlers.processing import HandlerProcessor
from carecoord.handlers.programs.outreach import monthly_request

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.enrolment import consented
from support.fhir_proxy import FhirProxy, classify
from support.pipeline import Pipeline

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "directory" / "springfield-hsds.json"
MONTH = Month(2026, 12)
CM = "Practitioner/cm-bench"
CONFIG = {"referrals": {"requester": "Organization/clinic-bench"}}
RAW_CLIENTS = 8  # the transactions-only replay (the figure of earlier runs)
RAW_EVENT_CLIENTS = 16  # the raw events replay: as many as the runtime's default max_in_flight
WARMUP_PATIENTS = 4  # per drain, not measured
ESCALATION = "outreach.attempted (escalates)"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CONDITION_CODES = ("E11.9", "I10")


def _month_back(n: int) -> Month:
    index = MONTH.year * 12 + MONTH.month - 1 - n
    return Month(index // 12, index % 12 + 1)


def events_of(patient: str, with_referral: bool) -> list[tuple[str, CloudEvent]]:
    """(type label, event) of one patient's measured month, in order."""
    day = MONTH.start.isoformat()[:8]
    out: list[tuple[str, CloudEvent]] = []
    enrol = consented({"program": "CCM", "provider": "Practitioner/doc-bench", "care_manager": CM,
                       "start": f"{day}02", "conditions": conditions_of(patient)})  # fmt: skip
    out.append(("patient.enrolled", new_event("carecoord.patient.enrolled", patient, enrol,
                                              id=f"{patient}-enrol")))  # fmt: skip
    for n, outcome in enumerate(("no-answer", "voicemail", "no-answer"), start=1):
        data = {"channel": "phone", "outcome": outcome, "by": CM,
                "attempted_at": f"{day}{5 + n:02d}T10:00:00+00:00"}  # fmt: skip
        label = ESCALATION if n == 3 else "outreach.attempted"
        out.append((label, new_event("carecoord.outreach.attempted", patient, data,
                                     id=f"{patient}-att-{n}")))  # fmt: skip
    for n, minutes in enumerate((15, 10), start=1):
        data = {"program": "CCM", "minutes": minutes, "activity": "care coordination", "by": CM,
                "performed_at": f"{day}{10 + n:02d}T10:00:00+00:00"}  # fmt: skip
        out.append(("time.logged", new_event("carecoord.time.logged", patient, data,
                                             id=f"{patient}-time-{n}")))  # fmt: skip
    if with_referral:
        data = {"domain": "food-insecurity", "postal_code": "62701", "consent_to_contact": True}
        out.append(("sdoh.need-identified", new_event("carecoord.sdoh.need-identified", patient,
                                                      data, id=f"{patient}-need")))  # fmt: skip
    return out


def conditions_of(patient: str) -> list[str]:
    """The two chronic conditions CCM billing needs (created by `seed_history`)."""
    return [f"Condition/{patient}-{code.replace('.', '')}" for code in CONDITION_CODES]


def seed_history(fhir: FhirClient, patient: str, months: int) -> None:
    """`months` past months of outreach (request + 3 attempts) and time entries, one
    transaction per month, as the handlers would have written them; and the patient's two
    chronic conditions (stable ids)."""
    for ref, code in zip(conditions_of(patient), CONDITION_CODES, strict=True):
        condition = {"resourceType": "Condition", "id": ref.split("/", 1)[1],
                     "subject": {"reference": f"Patient/{patient}"},
                     "code": {"coding": [{"system": ICD10, "code": code}]}}  # fmt: skip
        fhir.update(Condition.model_validate(condition))
    for back in range(1, months + 1):
        month = _month_back(back)
        fx = Effects()
        plan = f"CarePlan/hist-{patient}"
        req = add_create(fx, monthly_request(patient_id=patient, program="CCM", month=month,
                                             requester=CM, care_plan=plan, channel="phone",
                                             authored=month.start))  # fmt: skip
        for n in range(3):
            key = f"h{back}-{n}-{patient}"
            reason = {
                "system": t.COMMUNICATION_NOT_DONE_REASON_SYSTEM,
                "code": "recipient-unavailable",
            }
            comm = {
                "resourceType": "Communication",
                "identifier": [business_identifier_json("outreach-attempt", key)],
                "status": "not-done",
                "statusReason": {"coding": [reason]},
                "subject": {"reference": f"Patient/{patient}"},
                "basedOn": [{"reference": req}],
            }
            add_create(fx, Communication.model_validate(comm))
        item = {
            "resourceType": "ChargeItem",
            "identifier": [business_identifier_json("time-entry", f"h{back}-{patient}")],
            "status": "not-billable",
            "code": {"text": "care management time"},
            "subject": {"reference": f"Patient/{patient}"},
            "occurrenceDateTime": date(month.year, month.month, 12).isoformat() + "T10:00:00Z",
            "quantity": {"value": 12, "unit": "min"},
        }
        add_create(fx, ChargeItem.model_validate(item))
        fhir.apply(fx.writes)


def _per_type(samples: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    return {
        label: {"events": len(v), "max": max(v), "mean": round(sum(v) / len(v), 2)}
        for label, v in sorted(samples.items())
    }


def raw_transactions(base_url: str, bodies: list[bytes], rename: tuple[str, str]) -> float:
    """The captured bundles again (patient ids renamed: new creates), RAW_CLIENTS at a time."""
    old, new = rename
    payloads = []
    for body in bodies:  # updates lose If-Match: the versions they were based on have moved on
        bundle = json.loads(body.replace(old.encode(), new.encode()))
        for entry in bundle.get("entry") or []:
            entry.get("request", {}).pop("ifMatch", None)
        payloads.append(json.dumps(bundle).encode())
    headers = {"Content-Type": "application/fhir+json", "Prefer": "return=representation"}
    local = threading.local()

    def post(body: bytes) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        r = client.post(base_url, content=body, headers=headers)
        if r.status_code >= 300:
            raise RuntimeError(f"raw transaction answered {r.status_code}")

    started = time.perf_counter()
    with ThreadPoolExecutor(RAW_CLIENTS) as pool:
        list(pool.map(post, payloads))
    return len(payloads) / (time.perf_counter() - started)


def event_sequences(
    traced: list[tuple[str, str, bytes]], patient: re.Pattern[str]
) -> list[list[tuple[str, str, bytes]]]:
    """The drain's requests (the proxy's trace, in order) grouped by the patient they are for:
    each patient's requests in the order the service sent them; a request that names no patient
    (a read by id) is a sequence of its own. The server's CapabilityStatement is left out."""
    by_patient: dict[str, list[tuple[str, str, bytes]]] = {}
    loose: list[list[tuple[str, str, bytes]]] = []
    for method, path, body in traced:
        if classify(method, path)[0] == "metadata":
            continue
        found = patient.search(path) or patient.search(body.decode(errors="replace"))
        if found is None:
            loose.append([(method, path, body)])
        else:
            by_patient.setdefault(found.group(0), []).append((method, path, body))
    return [*by_patient.values(), *loose]


def raw_events(
    base_url: str, phases: list[list[list[tuple[str, str, bytes]]]], rename: tuple[str, str]
) -> float:
    """The drain's own requests again, phase by phase as the drain ran them, in a phase each
    patient's in order (batch reads and reads as they were, against the same data; transactions
    with the patient renamed, so the creates are new, and without If-Match), RAW_EVENT_CLIENTS
    patients at a time, from a process of its own (bench/replay.py): the seconds it took."""
    old, new = rename

    def replayed(method: str, path: str, body: bytes) -> list[Any]:
        headers = headers_of(method, path, body)
        if headers:  # a transaction
            bundle = json.loads(body.replace(old.encode(), new.encode()))
            for entry in bundle.get("entry") or []:
                entry.get("request", {}).pop("ifMatch", None)
            body = json.dumps(bundle).encode()
        return [method, path, body.decode(), headers]

    plan = [[[replayed(*r) for r in sequence] for sequence in phase] for phase in phases]
    out = Path(f"/tmp/bench-replay-{os.getpid()}.json")
    out.write_text(json.dumps(plan))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.replay", base_url, str(out), str(RAW_EVENT_CLIENTS)],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        out.unlink(missing_ok=True)
    return float(done.stdout.strip())


class _CpuMeter:
    """CPU milliseconds per item spent by this process and by the server between two marks."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.own = time.process_time()
        self.server = cpu_seconds(server_pid)

    def per_item(self, items: int) -> dict[str, float | None]:
        server_now = cpu_seconds(self.server_pid)
        server = None
        if server_now is not None and self.server is not None:
            server = round(1000 * (server_now - self.server) / items, 1)
        own = round(1000 * (time.process_time() - self.own) / items, 1)
        return {"this_process": own, "server": server}


def _phases(
    names: list[str], first: int = 0
) -> tuple[list[tuple[str, list[CloudEvent]]], dict[str, str]]:
    """The patients' events grouped by type label (enrolments first, ... referrals last), and
    the label of each event kind (the event-id suffix the floor keys its templates by)."""
    phases: dict[str, list[CloudEvent]] = {}
    kinds: dict[str, str] = {}
    for i, name in enumerate(names):
        for label, event in events_of(name, with_referral=(first + i) % 4 == 0):
            phases.setdefault(label, []).append(event)
            kinds[event.id[len(name) + 1 :]] = label
    return list(phases.items()), kinds


class _Recording:
    """The calibration runtime's processor: the handlers' own, keeping each event's emits."""

    def __init__(self, inner: HandlerProcessor) -> None:
        self.inner = inner
        self.emits: dict[str, Sequence[Emit]] = {}

    @property
    def event_types(self) -> frozenset[str]:
        return self.inner.event_types

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        emits = self.inner.process(event)
        self.emits[event.id] = emits
        return emits


def _wire(emit: Emit) -> str:
    """The value bytes carecoord's producer sends for `emit` (its time aside)."""
    return event_message(emit_to_event(emit), "").value.decode()


def _templates(
    traced: list[tuple[str, str, bytes]],
    marks: list[tuple[str, int]],
    emits: dict[str, Sequence[Emit]],
    patient: str,
    out: Path,
) -> None:
    """bench/floor.py's templates: the requests each event kind of `patient` sent, and the
    outbound messages it produced (the value bytes carecoord's producer sends for them)."""
    by_kind: dict[str, list[list[str]]] = {}
    produced: dict[str, list[list[str]]] = {}
    for n, (kind, begin) in enumerate(marks):
        end = marks[n + 1][1] if n + 1 < len(marks) else len(traced)
        by_kind[kind] = [[m, path, body.decode()] for m, path, body in traced[begin:end]]
        produced[kind] = [
            ["in" if e.type in INBOUND else "out", _wire(e)]
            for e in emits.get(f"{patient}-{kind}", ())
        ]
    out.write_text(json.dumps({"patient": patient, "by_kind": by_kind, "produced": produced}))


def run_level(
    bootstrap: str,
    fhir_url: str,
    history: int,
    patients: int,
    calibrate: int,
    tag: str,
    server_pid: int | None = None,
    compare: bool = False,
    sets: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """One history level. With `compare`: also the floor consumer and 2 and 3 service
    processes, each on patients of its own (same history), against the same server. `sets`
    (for profiling runs): only these of the drains ("c1" first, "floor", "c2", "c3")."""
    proxy = FhirProxy(fhir_url, keep_alive=True)
    direct = FhirClient(fhir_url)
    prefix = f"b{tag}h{history}"
    rest = patients - calibrate
    sets = sets or (("c1", "floor", "c1r", "floorr", "c2", "c3") if compare else ("c1",))
    names = [f"{prefix}-p{i:03d}" for i in range(calibrate)]
    drains = {k: [f"{prefix}-{k}-{i:03d}" for i in range(rest)] for k in sets}
    warm = {k: [f"{prefix}-{k}-w{i}" for i in range(WARMUP_PATIENTS)] for k in sets}
    everyone = [
        *names,
        *(n for v in drains.values() for n in v),
        *(n for v in warm.values() for n in v),
    ]
    for name in everyone:
        seed_history(direct, name, history)
    pipeline = Pipeline(bootstrap, proxy.base_url, config=CONFIG, partitions=6)
    templates = Path(f"/tmp/bench-floor-{prefix}.json")
    try:
        pipeline.fhir.capability_statement()
        samples: dict[str, list[int]] = {}
        kinds: dict[str, Counter[str]] = {}
        proxy.traced = []
        marks: list[tuple[str, int]] = []
        assert pipeline._runtime is not None
        recording = _Recording(pipeline._runtime.processor)  # type: ignore[arg-type]
        pipeline._runtime.processor = recording
        for i, name in enumerate(names):
            for label, event in events_of(name, with_referral=i % 4 == 0):
                start = proxy.count()
                if i == 0:
                    marks.append((event.id[len(name) + 1 :], len(proxy.traced)))
                pipeline.publish(event)
                pipeline.wait_idle()
                got = proxy.since(start)
                samples.setdefault(label, []).append(sum(got.values()))
                kinds[label] = kinds.get(label, Counter()) | got
            if i == 0:
                _templates(proxy.traced, marks, recording.emits, name, templates)
        proxy.traced = None
    finally:
        pipeline.close()
    results: dict[str, dict[str, Any]] = {}
    for key in sets:
        phases, _ = _phases(drains[key])
        mode = "floor" if key.startswith("floor") else "carecoord"
        processes = int(key[1]) if key.startswith("c") else 1
        marks: list[int] = []  # where each measured phase's requests start in the trace
        if key == "c1":
            proxy.captured = []
            proxy.traced = []
            start = proxy.count()
        warmup = [e for i, n in enumerate(warm[key]) for _, e in events_of(n, i % 4 == 0)]
        results[key] = drain(
            mode, bootstrap, proxy.base_url, phases, processes=processes, warmup=warmup,
            server_pid=server_pid, broker_pid=pinning.local_broker_pid(bootstrap),
            templates=str(templates) if mode == "floor" else None,
            on_phase=lambda _, marks=marks: marks.append(len(proxy.traced or ())),
        )  # fmt: skip
        if key == "c1":
            requests = sum(proxy.since(start).values())
            server_ms = proxy.mean_ms_since(start)
            bodies, proxy.captured = proxy.captured or [], None
            traced, proxy.traced = proxy.traced or [], None
            phase_marks = [*marks, len(traced)]
    meter = _CpuMeter(server_pid)
    raw = raw_transactions(proxy.base_url, bodies, (f"{prefix}-c1-", f"{prefix}-raw-"))
    cpu_per_raw = meter.per_item(len(bodies))
    patient = re.compile(rf"{re.escape(prefix)}-c1-\d{{3}}")
    phased = [
        event_sequences(traced[begin:end], patient)
        for begin, end in itertools.pairwise(phase_marks)
    ]
    replayed = results["c1"]["events"]
    meter = _CpuMeter(server_pid)
    seconds = raw_events(proxy.base_url, phased, (f"{prefix}-c1-", f"{prefix}-rawe-"))
    cpu_per_raw_event = meter.per_item(replayed)
    raw_rate = replayed / seconds
    proxy.close()
    direct.close()
    main = results["c1"]
    events = main["events"]
    events_per_s = main["events_per_s"]
    by_type = _per_type(samples)
    for label, kind in kinds.items():
        by_type[label]["max_by_kind"] = dict(kind)  # type: ignore[assignment]
    out: dict[str, Any] = {
        "history_months": history,
        "patients": patients,
        "events": events,
        "dead_lettered": main["dead_lettered"],
        "events_per_s": events_per_s,
        "requests_per_event_mean": round(requests / (events + main["warmup_events"]), 2),
        "server_ms_by_kind": server_ms,
        "cpu_ms_per_event": main["cpu_ms_per_event"],
        "cpu_ms_per_event_by_type": main["cpu_ms_per_event_by_type"],
        "cpu_ms_per_raw_transaction": cpu_per_raw,
        "raw_transactions": len(bodies),
        "raw_transactions_per_s": round(raw, 1),
        "server_ratio_to_transactions": round(events_per_s / raw, 3),
        "cpu_ms_per_raw_event": cpu_per_raw_event,
        "raw_events": replayed,
        "raw_requests": sum(len(s) for phase in phased for s in phase),
        "raw_events_per_s": round(raw_rate, 1),
        "server_ratio": round(events_per_s / raw_rate, 3),
        "by_type": by_type,
    }
    scaled = [k for k in ("c1", "c2", "c3") if k in results]
    if len(scaled) > 1:
        out["events_per_s_by_processes"] = {k[1]: results[k]["events_per_s"] for k in scaled}
        out["by_processes"] = {
            k[1]: {
                "events_per_s": results[k]["events_per_s"],
                "cpu_ms_per_event": results[k]["cpu_ms_per_event"],
                "failed_attempts": results[k]["failed_attempts"],
                "conflict_reruns": results[k]["conflict_reruns"],
            }
            for k in scaled
        }
    if compare and "floor" in results:
        out["floor"] = results["floor"]
        out["floor_repeat"] = results.get("floorr")
        out["carecoord_repeat"] = results.get("c1r")
        out |= _cpu_compared(
            [results[k] for k in ("c1", "c1r") if k in results],
            [results[k] for k in ("floor", "floorr") if k in results],
        )

    return out


def _cpu_compared(
    carecoord: Sequence[dict[str, Any]], floor: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """carecoord's CPU per event against the floor's: each the least of its drains (interleaved:
    carecoord, floor, carecoord, floor), overall and per event type, as (a) takes the least of
    its repeats. Same-code drains on this VM differ by up to a fifth (docs/benchmarks.md)."""

    def least(drains: Sequence[dict[str, Any]]) -> float:
        return float(min(d["cpu_ms_per_event"]["service"] for d in drains))

    def least_by_type(drains: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = drains[0]["cpu_ms_per_event_by_type"]
        return {
            label: min(d["cpu_ms_per_event_by_type"][label]["service"] for d in drains)
            for label in labels
        }

    ours, theirs = least(carecoord), least(floor)
    return {
        "cpu_ms_per_event_compared": {
            "carecoord": ours,
            "floor": theirs,
            "carecoord_drains": [d["cpu_ms_per_event"]["service"] for d in carecoord],
            "floor_drains": [d["cpu_ms_per_event"]["service"] for d in floor],
            "carecoord_by_type": least_by_type(carecoord),
            "floor_by_type": least_by_type(floor),
        },
        "cpu_ratio_to_floor": round(ours / theirs, 2),
    }


def _summary(level: dict[str, Any]) -> dict[str, Any]:
    keys: tuple[str, ...] = ("history_months", "events_per_s", "requests_per_event_mean")
    more = (
        "raw_events_per_s",
        "server_ratio",
        "raw_transactions_per_s",
        "server_ratio_to_transactions",
        "cpu_ms_per_event",
        "server_ms_by_kind",
    )
    out = {k: level[k] for k in (*keys, *more)}
    out["requests_max_by_type"] = {k: v["max"] for k, v in level["by_type"].items()}
    return out


def _level_on_server(
    bootstrap: str, history: int, patients: int, calibrate: int, tag: str, compare: bool = False
) -> dict[str, Any]:
    from carecoord.local import start_fhir

    external = os.environ.get("CARECOORD_FHIR_BASE_URL")
    server = None if external else start_fhir()
    cores = pinning.plan()
    if server is not None and cores is not None:
        pinning.pin(server.proc.pid, cores.server)
    fhir_url = external.rstrip("/") if external else server.base_url  # type: ignore[union-attr]
    try:
        with FhirClient(fhir_url) as client:
            import_directory(client, json.loads(SAMPLE.read_text()))
        pid = server.proc.pid if server is not None else None
        return run_level(bootstrap, fhir_url, history, patients, calibrate, tag, pid, compare)
    finally:
        if server is not None:
            server.close()


def pipeline_benchmark(bootstrap: str, quick: bool, step: Any) -> dict[str, Any]:
    import uuid

    tag = uuid.uuid4().hex[:6]
    patients, calibrate = (24, 4) if quick else (100, 8)
    levels = []
    with _pinned(bootstrap) as cores:
        for history in (1, 6, 12):
            levels.append(_level(bootstrap, history, patients, calibrate, tag, step))
    return _figures(levels) | {"pinning": cores.describe() if cores else None}


@contextmanager
def _pinned(bootstrap: str) -> Iterator[pinning.Plan | None]:
    """This process and the embedded broker on the service's cores while the pipeline runs (the
    server is pinned where it starts: `_level_on_server`); as they were afterwards."""
    cores = pinning.plan()
    if cores is None:
        yield None
        return
    own, broker = pinning.affinity(), pinning.local_broker_pid(bootstrap)
    before = pinning.affinity(broker) if broker is not None else own
    pinning.pin(os.getpid(), cores.service)
    if broker is not None:
        pinning.pin(broker, cores.service)
    try:
        yield cores
    finally:
        pinning.pin(os.getpid(), own)
        if broker is not None:
            pinning.pin(broker, before)


def _level(
    bootstrap: str, history: int, patients: int, calibrate: int, tag: str, step: Any
) -> dict[str, Any]:
    level = _level_on_server(bootstrap, history, patients, calibrate, tag, history == 1)
    cpu = level["cpu_ms_per_event"]
    step(
        f"(e) {history:>2} months of history: {level['events_per_s']} events/s, "
        f"{level['requests_per_event_mean']} requests/event, server "
        f"{level['raw_events_per_s']} events/s raw ({level['raw_transactions_per_s']} tx/s) "
        f"-> ratio {level['server_ratio']}; "
        f"CPU ms/event service {cpu['service']}, server {cpu['server']}"
        + (
            f"; floor {level['floor']['cpu_ms_per_event']['service']} -> "
            f"{level['cpu_ratio_to_floor']}x; events/s by processes "
            f"{level['events_per_s_by_processes']}"
            if "floor" in level
            else ""
        )
    )
    return level


def _figures(levels: list[dict[str, Any]]) -> dict[str, Any]:
    main = levels[0]
    compared = main["cpu_ms_per_event_compared"]
    by_type = main["by_type"]
    common = [v["max"] for k, v in by_type.items() if k != ESCALATION]
    common_no_referral = [
        v["max"] for k, v in by_type.items() if k not in (ESCALATION, "sdoh.need-identified")
    ]
    return {
        "requests_per_event": max(common),
        "requests_per_event_without_referrals": max(common_no_referral),
        "requests_per_escalation": by_type[ESCALATION]["max"],
        "events_per_s": main["events_per_s"],
        "server_raw_events_per_s": main["raw_events_per_s"],
        "server_ratio": main["server_ratio"],
        "server_raw_transactions_per_s": main["raw_transactions_per_s"],
        "server_ratio_to_transactions": main["server_ratio_to_transactions"],
        "cpu_ms_per_event": {
            "carecoord": compared["carecoord"],
            "floor": compared["floor"],
            "carecoord_drains": compared["carecoord_drains"],
            "floor_drains": compared["floor_drains"],
            "server": main["cpu_ms_per_event"]["server"],
            "server_under_floor": main["floor"]["cpu_ms_per_event"]["server"],
            "bench_process": main["cpu_ms_per_event"]["bench_process"],
            "broker": main["cpu_ms_per_event"]["broker"],
        },
        "cpu_ratio_to_floor": main["cpu_ratio_to_floor"],
        "cpu_ms_per_event_by_type": {
            label: {
                "carecoord": compared["carecoord_by_type"][label],
                "floor": compared["floor_by_type"][label],
                "server": v["server"],
            }
            for label, v in main["cpu_ms_per_event_by_type"].items()
        },
        "events_per_s_by_processes": main["events_per_s_by_processes"],
        "by_processes": main["by_processes"],
        "by_type": by_type,
        "by_history": [_summary(lv) for lv in levels],
        "levels": levels,
        "mix": "per patient: enrolment, 3 unanswered attempts (3rd escalates), 2 time entries, "
        "a referral for every 4th patient",
    }
