"""HandlerProcessor: one event -> enabled handlers -> one transaction -> emits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task

from carecoord.core.effects import Effects, FhirWrite, Update
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.core.handler import HandlerContext, HandlerSpec
from carecoord.errors import HandlerError, MalformedEvent
from carecoord.fhir.errors import FhirInvalid, FhirNotFound, FhirPreconditionFailed
from carecoord.fhir.models import to_json
from carecoord.handlers.processing import ConflictRetriesExhausted, HandlerProcessor

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class FakeFhir:
    """Tasks in memory with versions; `apply` checks If-Match like a server would."""

    def __init__(self) -> None:
        self.tasks: dict[str, tuple[Task, str]] = {}
        self.transactions: list[list[FhirWrite]] = []
        self.concurrent_bumps = 0  # a concurrent writer bumps the version before our next apply

    def read(self, resource_type: str, resource_id: str) -> Resource:
        if resource_id not in self.tasks:
            raise FhirNotFound("not found", status=404, resource=f"{resource_type}/{resource_id}")
        task, version = self.tasks[resource_id]
        return Task.model_validate({**to_json(task), "meta": {"versionId": version}})

    def search(
        self, resource_type: str, params: Mapping[str, str] | Sequence[tuple[str, str]]
    ) -> list[Resource]:
        return [self.read("Task", tid) for tid in self.tasks]

    def apply(self, writes: Sequence[FhirWrite]) -> object:
        if self.concurrent_bumps:
            self.concurrent_bumps -= 1
            for tid, (task, version) in self.tasks.items():
                self.tasks[tid] = (task, str(int(version) + 1))
        for w in writes:
            if isinstance(w, Update):
                assert w.resource.id is not None
                _, current = self.tasks[w.resource.id]
                if w.version_id != current:
                    raise FhirPreconditionFailed("version mismatch", status=412)
        self.transactions.append(list(writes))
        for w in writes:
            if isinstance(w, Update):
                assert isinstance(w.resource, Task) and w.resource.id is not None
                _, current = self.tasks[w.resource.id]
                self.tasks[w.resource.id] = (w.resource, str(int(current) + 1))
        return None


def start_task(event: CloudEvent, ctx: HandlerContext) -> Effects:
    """Reads the task, moves it to in-progress, version-checked; emits one event."""
    task = ctx.fhir.read("Task", event.data["task"])
    assert isinstance(task, Task) and task.meta is not None
    effects = Effects()
    effects.update(
        task.model_copy(update={"status": "in-progress", "meta": None}), task.meta.versionId
    )
    effects.emit(
        "t.started", event.subject or "", {"task": f"Task/{task.id}"}, f"{event.id}:started"
    )
    return effects


def note_limit(event: CloudEvent, ctx: HandlerContext) -> Effects:
    effects = Effects()
    effects.emit(
        "t.noted",
        event.subject or "",
        {"limit": ctx.config["limit"], "at": ctx.now().isoformat()},
        f"{event.id}:noted",
    )
    return effects


SPECS = [
    HandlerSpec("starter", ("task.start",), start_task),
    HandlerSpec("noter", ("task.start", "other"), note_limit, default_config={"limit": 1}),
]


@pytest.fixture
def fhir() -> FakeFhir:
    f = FakeFhir()
    f.tasks["t1"] = (Task(id="t1", status="ready", intent="order"), "1")
    return f


def processor(fhir: FakeFhir, **kw: object) -> HandlerProcessor:
    return HandlerProcessor(
        SPECS,
        fhir,
        config={"noter": {"limit": 5}},
        clock=lambda: NOW,
        **kw,  # type: ignore[arg-type]
    )


def event(type: str = "task.start") -> CloudEvent:
    return new_event(type, "p1", {"task": "t1"}, id="evt-1")


def test_all_handlers_for_the_type_run_and_their_writes_go_in_one_transaction(
    fhir: FakeFhir,
) -> None:
    emits = processor(fhir).process(event())
    assert [e.type for e in emits] == ["t.started", "t.noted"]
    assert emits[1].data == {"limit": 5, "at": NOW.isoformat()}
    assert len(fhir.transactions) == 1
    assert fhir.tasks["t1"][0].status == "in-progress"


def test_unknown_event_type_is_malformed(fhir: FakeFhir) -> None:
    with pytest.raises(MalformedEvent, match="no enabled handler") as err:
        processor(fhir).process(event("carecoord.nobody.listens"))
    assert err.value.permanent
    assert fhir.transactions == []


def test_no_writes_means_no_transaction(fhir: FakeFhir) -> None:
    emits = processor(fhir).process(event("other"))
    assert [e.type for e in emits] == ["t.noted"]
    assert fhir.transactions == []


def test_precondition_failed_reruns_handlers_on_fresh_reads(fhir: FakeFhir) -> None:
    fhir.concurrent_bumps = 2
    seen: list[str] = []
    emits = processor(fhir, observe_handler=lambda name, s: seen.append(name)).process(event())
    assert [e.type for e in emits] == ["t.started", "t.noted"]
    assert len(fhir.transactions) == 1  # only the third attempt got through
    assert seen.count("starter") == 3
    assert fhir.tasks["t1"][1] == "4"  # 1, two concurrent bumps, then ours


def test_conflicts_beyond_the_limit_are_transient(fhir: FakeFhir) -> None:
    fhir.concurrent_bumps = 10
    with pytest.raises(ConflictRetriesExhausted) as err:
        processor(fhir, max_conflict_retries=2).process(event())
    assert err.value.transient
    assert fhir.transactions == []
    assert fhir.concurrent_bumps == 7  # 1 try + 2 re-runs


def test_permanent_fhir_errors_pass_through(fhir: FakeFhir) -> None:
    def invalid(writes: Sequence[FhirWrite]) -> object:
        raise FhirInvalid("rejected", status=422)

    fhir.apply = invalid  # type: ignore[method-assign]
    with pytest.raises(FhirInvalid):
        processor(fhir).process(event())


def test_a_crashing_handler_becomes_a_handler_error_without_its_message(fhir: FakeFhir) -> None:
    def crash(event: CloudEvent, ctx: HandlerContext) -> Effects:
        raise KeyError("Jane Doe")

    proc = HandlerProcessor([HandlerSpec("crashy", ("x",), crash)], fhir)
    with pytest.raises(HandlerError) as err:
        proc.process(event("x"))
    assert "crashy" in str(err.value) and "KeyError" in str(err.value)
    assert "Jane" not in str(err.value)
    assert err.value.permanent


def test_the_default_clock_is_utc() -> None:
    from carecoord.handlers import processing

    assert processing._utc_now().tzinfo is UTC
