"""The code sets every layer shares, each defined once: the event catalog validates events with
them, the FHIR builders and the handlers take them as types.

- `Program`: the care-management programs carecoord enrols into (CMS care management services:
  chronic, principal, remote monitoring, transitional, behavioural health integration, advanced
  primary care); their FHIR codings are `carecoord.caremodel.terminology.PROGRAMS`.
- `Channel`: how an outreach reaches the patient; the FHIR medium of each is
  `carecoord.caremodel.terminology.CHANNEL_MEDIUM` (v3 ParticipationMode).
- `Outcome`: what an outreach attempt achieved.
- `TaskStatus`: FHIR R4 Task.status (http://hl7.org/fhir/R4/valueset-task-status.html); which of
  them are final is the state machine's (`carecoord.caremodel.workflow.FINAL`).
"""

from __future__ import annotations

from typing import Literal, get_args

Program = Literal["CCM", "PCM", "RPM", "TCM", "BHI", "APCM"]
Channel = Literal["phone", "sms", "video", "letter", "portal"]
Outcome = Literal["answered", "no-answer", "voicemail", "wrong-number", "declined"]
TaskStatus = Literal[
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
]  # fmt: skip

PROGRAMS: tuple[Program, ...] = get_args(Program)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
TASK_STATUSES: frozenset[TaskStatus] = frozenset(get_args(TaskStatus))
