"""A service process of the pipeline benchmark (bench/pipeline.py starts one or more):

    python -m bench.worker carecoord BOOTSTRAP FHIR_URL TOPIC GROUP
    python -m bench.worker floor BOOTSTRAP FHIR_URL TOPIC GROUP TEMPLATES.json

`carecoord`: the real runtime and built-in handlers (as tests/support/pipeline.py runs them);
`floor`: bench/floor.py. Each runs in a process of its own, so /proc/<pid>/stat is its CPU alone
(the bench's proxy and producer stay in the parent). It prints `done <n>` whenever its count of
finished events changes (at most every 50 ms), with how many of them were dead-lettered and
(carecoord) how many attempts failed (to be retried later) and how many times the processor
re-ran an event's handlers on a version conflict; it stops on SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable

from bench import kafka_patch


def report_until(stop: threading.Event, count: Callable[[], tuple[int, ...]]) -> None:
    last: tuple[int, ...] = ()
    while not stop.wait(0.05):
        now = count()
        if now != last:
            print("done", *now, flush=True)
            last = now


def run_carecoord(bootstrap: str, fhir_url: str, topic: str, group: str) -> None:
    from bench.pipeline import CONFIG
    from carecoord.events.broker import KafkaConnection
    from carecoord.events.runtime import EventRuntime, RuntimeOptions
    from carecoord.fhir.client import FhirClient
    from carecoord.handlers.loader import load_handlers
    from carecoord.handlers.processing import HandlerProcessor
    from carecoord.service.gc_tuning import tune_gc

    tune_gc()  # as `carecoord service run` does for its process

    sys.path.insert(0, "tests")
    from support.pipeline import Counter

    class Counting(Counter):
        failed = 0  # attempts that failed (conflicts, timeouts), retried later or dead

        def on_failed(self, tp: object, error_type: str) -> None:
            self.failed += 1

    class Reruns(logging.Handler):
        count = 0  # the processor's own re-runs on a version conflict (it logs each)

        def emit(self, record: logging.LogRecord) -> None:
            if record.msg == "version conflict; re-running handlers":
                self.count += 1

    options = RuntimeOptions(
        topic_in=topic,
        topic_out=f"{topic}-out",
        topic_dlq=f"{topic}-dlq",
        group_id=group,
        kafka=KafkaConnection(
            bootstrap=bootstrap, session_timeout_ms=4000, heartbeat_interval_ms=1000
        ),
        retry_budget_seconds=20.0,
        backoff_base_seconds=0.05,
        backoff_max_seconds=1.0,
        shutdown_drain_seconds=10.0,
    )
    table = load_handlers(config=CONFIG)
    fhir = FhirClient(fhir_url)
    counter, reruns = Counting(), Reruns(logging.INFO)
    processing = logging.getLogger("carecoord.handlers.processing")
    processing.setLevel(logging.INFO)
    processing.addHandler(reruns)
    processing.propagate = False
    if os.environ.get("BENCH_SPLIT"):
        from bench.split import install

        install(os.environ["BENCH_SPLIT"], os.getpid())
    processor = HandlerProcessor(table.specs, fhir, config=table.configs)
    runtime = EventRuntime(processor, options, observer=counter)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = lambda: (counter.done, counter.dead, counter.failed, reruns.count)  # noqa: E731
    reporter = threading.Thread(target=report_until, args=(stop, counts))
    reporter.start()
    print("ready", flush=True)
    runtime.run(stop)
    reporter.join()


def main(argv: list[str]) -> int:
    kafka_patch.apply()
    mode, bootstrap, fhir_url, topic, group, *rest = argv
    if mode == "carecoord":
        run_carecoord(bootstrap, fhir_url, topic, group)
    else:
        from bench.floor import run_floor

        run_floor(bootstrap, fhir_url, topic, group, rest[0], report_until)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
