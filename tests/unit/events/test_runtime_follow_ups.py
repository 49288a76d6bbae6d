"""An emitted event of an inbound catalog type is a follow-up for another care domain: the runtime
produces it to the input topic (where that domain's handler takes it), everything else to the
outbound topic."""

from __future__ import annotations

from collections.abc import Sequence

from carecoord.core.effects import Emit
from carecoord.core.envelope import CloudEvent, new_event
from carecoord.events.broker import Message
from carecoord.events.memory import InMemoryBroker
from carecoord.events.runtime import EventRuntime, RuntimeOptions

COMPLETED = "carecoord.assessment.completed"
QUESTION = "carecoord.clinical.question"


class FollowUps:
    """Answers an assessment with a clinical question (inbound type) and a scored event."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def process(self, event: CloudEvent) -> Sequence[Emit]:
        self.seen.append(event.type)
        if event.type != COMPLETED:
            return []
        data = {"question": "review", "urgency": "urgent", "raised_by": "x"}
        return [
            Emit(QUESTION, event.subject or "", data, id=f"{event.id}/q"),
            Emit("carecoord.assessment.scored", event.subject or "", {}, id=f"{event.id}/s"),
        ]


def test_inbound_typed_emits_go_to_the_input_topic_and_are_consumed() -> None:
    broker = InMemoryBroker(default_partitions=1)
    event = new_event(COMPLETED, "p1", {"questionnaire_response": "QuestionnaireResponse/q"})
    broker.producer().send_all([Message("in", b"p1", event.to_json_bytes())], 5)
    processor = FollowUps()
    options = RuntimeOptions(
        topic_in="in", topic_out="out", topic_dlq="dlq", group_id="g",
        poll_timeout_seconds=0.02, commit_interval_seconds=0.01,
    )  # fmt: skip
    assert EventRuntime(processor, options, broker=broker).run_until_idle(timeout=10)

    out = [CloudEvent.from_json_bytes(r.value).type for r in broker.records("out")]
    follow_ups = [r for r in broker.records("in") if r.offset > 0]
    assert out == ["carecoord.assessment.scored"]
    assert [CloudEvent.from_json_bytes(r.value).type for r in follow_ups] == [QUESTION]
    assert follow_ups[0].key == b"p1"  # the patient's key: in order with their other events
    assert processor.seen == [COMPLETED, QUESTION]
