"""RSS by progress through one long no-op drain: `python -m bench.rss_progress [EVENTS]`.

(d) judges "flat" by the peaks of a 50k and a 200k drain, which mixes warm-up with retention
(the 50k drain ends before RSS stops climbing). This drains one backlog (600k events by
default, 5,000 keys, 6 partitions, the embedded broker) and prints the highest RSS seen by the
time 10 %, 25 %, 50 %, 75 % and 90 % of it were processed (the last samples, taken while the
runtime stops, are left out): if nothing is kept per event, RSS stops climbing once warm.
"""

from __future__ import annotations

import sys
import threading
import time

from bench import kafka_patch
from bench.harness import NoopProcessor, RuntimeRun, quiet_logs, runtime_options, unique
from bench.memory import status_mb
from bench.workload import create_topics, produce

PROGRESS = (0.1, 0.25, 0.5, 0.75, 0.9)


def main(events: int) -> None:
    from carecoord.local import start_kafka

    kafka_patch.apply()
    quiet_logs()
    kafka = start_kafka()
    try:
        topic = unique("bench-rss")
        create_topics(kafka.bootstrap, {topic: 6})
        produce(kafka.bootstrap, topic, events, 5000)
        run = RuntimeRun(NoopProcessor(), runtime_options(kafka.bootstrap, topic, 16), events)
        run.start().wait_ready()
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((run.counter.processed, status_mb("self", "VmRSS") or 0.0))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        result = run.wait(900)
        done.set()
        sampler.join()
    finally:
        kafka.close()
    for share in PROGRESS:
        seen = [rss for n, rss in samples if n <= share * events < events]
        print(f"{share:>5.0%} processed: RSS at most {max(seen, default=0.0):.1f} MB")
    print(f"{events / result.seconds:,.0f} events/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 600_000)
