"""Work around a kafka-python 3.0.x consumer stall after pause()/resume() (seen on 3.0.12).

Fetcher.fetched_records restores records parked for a paused partition only when
`_next_partition_records is None`; after another partition's records were consumed that slot
holds a drained (falsy, not None) PartitionRecords, so the parked records are never restored,
and `_fetchable_partitions` keeps excluding the parked partitions from fetches: once every
partition has been paused with data parked, poll() returns nothing forever.

The runtime pauses partitions for backpressure (max_in_flight_per_partition), so a backlog
larger than that can stall it. The bench applies the fix below (clear the drained slot before
each fetched_records call) in its own processes, so the figures do not depend on whether
carecoord's Kafka adapter carries the same workaround; results.json records both.
"""

from __future__ import annotations

from typing import Any

_applied = False


def apply() -> bool:
    """Patch kafka-python's Fetcher in this process; True if the patch is (now) in place."""
    global _applied
    if _applied:
        return True
    from kafka.consumer.fetcher import Fetcher

    original = Fetcher.fetched_records

    def fetched_records(self: Any, *args: Any, **kwargs: Any) -> Any:
        current = self._next_partition_records
        if current is not None and not current:
            self._next_partition_records = None
        return original(self, *args, **kwargs)

    Fetcher.fetched_records = fetched_records
    _applied = True
    return True


def runtime_has_workaround() -> bool:
    """Whether carecoord's Kafka adapter carries its own fix for the stall."""
    from carecoord.events.broker import KafkaConsumerAdapter

    return hasattr(KafkaConsumerAdapter, "_unpark_resumed_records")
