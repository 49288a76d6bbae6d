"""A subscriber's side of FHIR Subscriptions: register one's own, read their status, fetch events.

carecoord-agnostic: what to subscribe to is a list of `SubscriptionSpec`s (the service builds
carecoord's from its settings, carecoord.service.subscriptions). Two shapes, chosen per spec:

- topic-based (Subscriptions R4 Backport IG, STU 1.1): `criteria` is the topic canonical, the
  search filter goes in `_criteria`'s backport-filter-criteria extension, `channel.payload`
  carries backport-payload-content (`id-only`), `channel` the heartbeat period, timeout and max
  count. Used when the server's CapabilityStatement lists the topic
  (capabilitystatement-subscriptiontopic-canonical on the Subscription resource entry);
- R4 criteria-based otherwise (`criteria` the search, `channel.payload` the MIME type: the
  server posts the bare resource; Medplum signs it with the subscription-secret extension).

Shapes from HL7/fhir-subscription-backport-ig at v1.1.0 (commit
1037e74baec348cf6cb72acc7ff5675d48d55bc0): input/fsh/BackportSubscription.fsh (profile
backport-subscription; extensions backport-filter-criteria valueString, backport-payload-content
valueCode, backport-heartbeat-period / backport-timeout / backport-max-count valueUnsignedInt),
input/fsh/BackportNotificationR4.fsh (the status Parameters: `subscription`, `status`, `type`,
`events-since-subscription-start` valueString, `notification-event` with part `event-number`
valueString and `focus`), input/fsh/Operations.fsh (`$status`: a searchset of status Parameters;
`$events`: eventsSinceNumber / eventsUntilNumber / content in, a history notification Bundle
out). Medplum's extension: https://www.medplum.com/docs/subscriptions/subscription-extensions.

The Subscriptions carecoord owns carry a `meta.tag` (system + the spec's key): `ensure` finds them
by it, creates what is missing, updates in place what differs and leaves the rest untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlencode

from carecoord.fhir.errors import FhirError, FhirNotFound
from carecoord.fhir.notification_bundles import parse_reference

log = logging.getLogger(__name__)

BACKPORT_SD = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
BACKPORT_PROFILE = f"{BACKPORT_SD}/backport-subscription"
FILTER_CRITERIA = f"{BACKPORT_SD}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{BACKPORT_SD}/backport-payload-content"
HEARTBEAT_PERIOD = f"{BACKPORT_SD}/backport-heartbeat-period"
TIMEOUT = f"{BACKPORT_SD}/backport-timeout"
MAX_COUNT = f"{BACKPORT_SD}/backport-max-count"
TOPIC_CANONICAL = f"{BACKPORT_SD}/capabilitystatement-subscriptiontopic-canonical"
EVENTS_OPERATION = (
    "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-events"
)
MEDPLUM_SECRET = "https://www.medplum.com/fhir/StructureDefinition/subscription-secret"
FHIR_JSON = "application/fhir+json"

Shape = Literal["topic", "criteria"]
_EVENT_NUMBER = ("event-number", "eventNumber")
_SINCE = ("events-since-subscription-start", "eventsSinceSubscriptionStart")


class JsonFhir(Protocol):
    """What this module needs of a client (carecoord.fhir.FhirClient has it)."""

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class SubscriptionSpec:
    """One Subscription to own. `criteria` is an R4 search ("Task?code=sys|fulfill"); `topic`
    the SubscriptionTopic canonical to use instead where the server offers it."""

    key: str
    reason: str
    criteria: str
    topic: str | None = None
    topic_filter: str | None = None  # backport-filter-criteria of the topic-based shape


@dataclass(frozen=True)
class Channel:
    endpoint: str
    headers: tuple[str, ...] = ()
    heartbeat_period: int | None = None
    timeout: int | None = None
    max_count: int | None = None
    secret: str | None = None  # Medplum's HMAC signing secret (criteria-based)


@dataclass(frozen=True)
class Registered:
    """One of our Subscriptions as the server has it."""

    id: str
    key: str
    status: str
    shape: Shape
    criteria: str
    error: str | None
    heartbeat_period: int | None
    resource: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StatusInfo:
    """A notification's or `$status`'s status Parameters (R4 backport) / SubscriptionStatus."""

    subscription: str | None  # the Subscription id
    type: str | None
    status: str | None
    events_since_start: int | None
    event_numbers: tuple[int, ...]
    error: str | None = None
    # each event's (number, focus reference): what a repeat of the same event repeats
    events: tuple[tuple[int, str | None], ...] = ()


@dataclass
class EnsureReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


# --- building ------------------------------------------------------------------------------


def offered_topics(statement: Mapping[str, Any] | None) -> frozenset[str]:
    """The topic canonicals a CapabilityStatement lists (extension on the Subscription entry,
    or on rest / the statement itself, where some servers put it)."""
    found: set[str] = set()

    def collect(node: Any) -> None:
        for ext in (node or {}).get("extension") or [] if isinstance(node, Mapping) else []:
            if isinstance(ext, Mapping) and ext.get("url") == TOPIC_CANONICAL:
                value = ext.get("valueCanonical") or ext.get("valueUri")
                if isinstance(value, str):
                    found.add(value)

    collect(statement)
    for rest in (statement or {}).get("rest") or []:
        collect(rest)
        for res in rest.get("resource") or [] if isinstance(rest, Mapping) else []:
            if isinstance(res, Mapping) and res.get("type") == "Subscription":
                collect(res)
    return frozenset(found)


def offers_events(statement: Mapping[str, Any] | None) -> bool:
    """Does the server declare `$events` on Subscription (the IG makes it a MAY)?"""
    for rest in (statement or {}).get("rest") or []:
        for res in rest.get("resource") or [] if isinstance(rest, Mapping) else []:
            if not isinstance(res, Mapping) or res.get("type") != "Subscription":
                continue
            for op in res.get("operation") or []:
                if isinstance(op, Mapping) and (
                    op.get("name") == "events" or op.get("definition") == EVENTS_OPERATION
                ):
                    return True
    return False


def subscription_resource(
    spec: SubscriptionSpec, channel: Channel, *, shape: Shape, tag_system: str
) -> dict[str, Any]:
    """The Subscription JSON for `spec` (status `requested`: the server activates it)."""
    body: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"tag": [{"system": tag_system, "code": spec.key}]},
        "status": "requested",
        "reason": spec.reason,
    }
    chan: dict[str, Any] = {"type": "rest-hook", "endpoint": channel.endpoint}
    if channel.headers:
        chan["header"] = list(channel.headers)
    chan["payload"] = FHIR_JSON
    if shape == "topic":
        if spec.topic is None:
            raise ValueError("a topic-based Subscription needs its spec's topic")
        body["meta"]["profile"] = [BACKPORT_PROFILE]
        body["criteria"] = spec.topic
        if spec.topic_filter:
            filters = [{"url": FILTER_CRITERIA, "valueString": spec.topic_filter}]
            body["_criteria"] = {"extension": filters}
        chan["_payload"] = {"extension": [{"url": PAYLOAD_CONTENT, "valueCode": "id-only"}]}
        extensions = [
            {"url": url, "valueUnsignedInt": value}
            for url, value in (
                (HEARTBEAT_PERIOD, channel.heartbeat_period),
                (TIMEOUT, channel.timeout),
                (MAX_COUNT, channel.max_count),
            )
            if value
        ]
        if extensions:
            chan["extension"] = extensions
    else:
        body["criteria"] = spec.criteria
        if channel.secret:
            body["extension"] = [{"url": MEDPLUM_SECRET, "valueString": channel.secret}]
    body["channel"] = chan
    return body


def declared_criteria(criteria: str, statement: Mapping[str, Any] | None) -> str:
    """`criteria` without the search parameters the server does not declare for the type: a
    server puts a Subscription with one it cannot evaluate in `error` (the embedded one does),
    and the notifications are re-read and filtered by carecoord anyway. Unknown capabilities
    (no statement) keep the criteria whole."""
    rtype, _, query = criteria.partition("?")
    if statement is None or not query:
        return criteria
    declared: set[str] = set()
    for rest in statement.get("rest") or []:
        for res in rest.get("resource") or [] if isinstance(rest, Mapping) else []:
            if isinstance(res, Mapping) and res.get("type") == rtype:
                declared |= {
                    str(q.get("name"))
                    for q in res.get("searchParam") or []
                    if isinstance(q, Mapping)
                }
    kept = [(k, v) for k, v in parse_qsl(query) if k.split(":")[0] in declared]
    if len(kept) < len(parse_qsl(query)):
        log.warning(
            "the FHIR server does not declare every search parameter of a Subscription's "
            "criteria: subscribing more broadly (carecoord filters what it is told)",
            extra={"resource_type": rtype},
        )
    return f"{rtype}?{urlencode(kept, safe='|:/,')}" if kept else rtype


# What `ensure` compares: the elements it writes (a server adds others, and sets `status`).
_COMPARED = ("reason", "criteria", "_criteria", "channel", "extension")


def _same(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if any(existing.get(k) != wanted.get(k) for k in _COMPARED):
        return False
    profiles = set((existing.get("meta") or {}).get("profile") or [])
    return set(wanted["meta"].get("profile") or []) <= profiles


# --- reading -------------------------------------------------------------------------------


def _key_of(resource: Mapping[str, Any], tag_system: str) -> str | None:
    for tag in (resource.get("meta") or {}).get("tag") or []:
        if isinstance(tag, Mapping) and tag.get("system") == tag_system:
            code = tag.get("code")
            return code if isinstance(code, str) else None
    return None


def _registered(resource: Mapping[str, Any], key: str) -> Registered:
    criteria = str(resource.get("criteria") or "")
    topic = BACKPORT_PROFILE in ((resource.get("meta") or {}).get("profile") or []) or bool(
        (resource.get("_criteria") or {}).get("extension")
    )
    heartbeat = None
    for ext in (resource.get("channel") or {}).get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == HEARTBEAT_PERIOD:
            value = ext.get("valueUnsignedInt")
            heartbeat = _int(value)
    error = resource.get("error")
    return Registered(
        id=str(resource.get("id")),
        key=key,
        status=str(resource.get("status") or "unknown"),
        shape="topic" if topic else "criteria",
        criteria=criteria,
        error=error if isinstance(error, str) else None,
        heartbeat_period=heartbeat,
        resource=resource,
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def status_info(status: Mapping[str, Any]) -> StatusInfo:
    """A status resource (R4 backport Parameters or R4B/R5 SubscriptionStatus) read leniently:
    kebab-case names per the IG, camelCase as some servers send them."""

    def sub_id(ref: Any) -> str | None:
        ref = ref.get("reference") if isinstance(ref, Mapping) else None
        parsed = parse_reference(ref) if isinstance(ref, str) else None
        return parsed[1] if parsed and parsed[0] == "Subscription" else None

    if status.get("resourceType") == "SubscriptionStatus":
        found = [
            (_int(e.get("eventNumber")), _focus(e.get("focus")))
            for e in status.get("notificationEvent") or []
            if isinstance(e, Mapping)
        ]
        pairs = tuple((n, f) for n, f in found if n is not None)
        errors = status.get("error") or []
        return StatusInfo(
            sub_id(status.get("subscription")),
            status.get("type") if isinstance(status.get("type"), str) else None,
            status.get("status") if isinstance(status.get("status"), str) else None,
            _int(status.get("eventsSinceSubscriptionStart")),
            tuple(n for n, _ in pairs),
            "error reported" if errors else None,
            pairs,
        )
    values: dict[str, Any] = {}
    events: list[tuple[int, str | None]] = []
    error = None
    for param in status.get("parameter") or []:
        if not isinstance(param, Mapping):
            continue
        name = param.get("name")
        if name in ("notification-event", "notificationEvent"):
            parts = [p for p in param.get("part") or [] if isinstance(p, Mapping)]
            number = next(
                (
                    _int(p.get("valueString", p.get("valueInteger")))
                    for p in parts
                    if p.get("name") in _EVENT_NUMBER
                ),
                None,
            )
            focus = next(
                (_focus(p.get("valueReference")) for p in parts if p.get("name") == "focus"), None
            )
            if number is not None:
                events.append((number, focus))
        elif name == "error":
            error = "error reported"
        elif isinstance(name, str):
            values[name] = next((v for k, v in param.items() if k.startswith("value")), None)
    since = values.get(_SINCE[0], values.get(_SINCE[1]))
    kind, state = values.get("type"), values.get("status")
    return StatusInfo(
        sub_id(values.get("subscription")),
        kind if isinstance(kind, str) else None,
        state if isinstance(state, str) else None,
        _int(since),
        tuple(n for n, _ in events),
        error,
        tuple(events),
    )


def _focus(reference: Any) -> str | None:
    value = reference.get("reference") if isinstance(reference, Mapping) else None
    return value if isinstance(value, str) else None


def notification_status(payload: Any) -> StatusInfo | None:
    """The status of a backport notification Bundle (its first entry), None for anything else
    (a bare resource, a feed item: criteria-based notifications carry no status)."""
    if not isinstance(payload, Mapping) or payload.get("resourceType") != "Bundle":
        return None
    entries = payload.get("entry")
    first = entries[0] if isinstance(entries, list) and entries else None
    resource = first.get("resource") if isinstance(first, Mapping) else None
    if not isinstance(resource, Mapping) or resource.get("resourceType") not in (
        "Parameters",
        "SubscriptionStatus",
    ):
        return None
    return status_info(resource)


# --- the manager ---------------------------------------------------------------------------


class SubscriptionManager:
    """Registers, lists and removes the Subscriptions tagged `tag_system`; `$status`, `$events`."""

    def __init__(self, fhir: JsonFhir, *, tag_system: str) -> None:
        self._fhir = fhir
        self.tag_system = tag_system

    def statement(self) -> Mapping[str, Any] | None:
        """The CapabilityStatement, fetched now (topics come and go; clients cache theirs)."""
        try:
            return self._fhir.request_json("GET", "metadata")
        except FhirError as exc:
            if exc.unavailable:
                raise
            why = type(exc).__name__
            log.warning("no CapabilityStatement: topics unknown", extra={"error": why})
            return None

    def shape_for(self, spec: SubscriptionSpec, topics: frozenset[str]) -> Shape:
        if spec.topic and spec.topic in topics:
            return "topic"
        if spec.topic:
            log.warning(
                "the FHIR server does not offer the Subscription's topic: criteria-based instead",
                extra={"subscription_key": spec.key},
            )
        return "criteria"

    def registered(self) -> list[Registered]:
        found: list[Registered] = []
        params = [("_tag", f"{self.tag_system}|"), ("_count", "100")]
        body = self._fhir.request_json("GET", "Subscription", params=params)
        for entry in (body or {}).get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if not isinstance(resource, Mapping) or resource.get("resourceType") != "Subscription":
                continue
            key = _key_of(resource, self.tag_system)  # a server ignoring _tag sends others too
            if key is not None:
                found.append(_registered(resource, key))
        return sorted(found, key=lambda r: (r.key, r.id))

    def ensure(self, specs: Sequence[SubscriptionSpec], channel: Channel) -> EnsureReport:
        """Create what is missing, update what differs (or is off / in error), keep the rest;
        a second of our Subscriptions for one key is removed (an earlier, interrupted run)."""
        statement = self.statement()
        topics = offered_topics(statement)
        report = EnsureReport()
        existing: dict[str, list[Registered]] = {}
        for reg in self.registered():
            existing.setdefault(reg.key, []).append(reg)
        for spec in specs:
            shape = self.shape_for(spec, topics)
            if shape == "criteria":
                spec = replace(spec, criteria=declared_criteria(spec.criteria, statement))
            wanted = subscription_resource(spec, channel, shape=shape, tag_system=self.tag_system)
            mine = existing.get(spec.key, [])
            for extra in mine[1:]:
                self._delete(extra.id)
                report.removed.append(extra.id)
            if not mine:
                created = self._fhir.request_json("POST", "Subscription", body=wanted)
                report.created.append(str((created or {}).get("id", "?")))
                log.info("Subscription created", extra={"subscription_key": spec.key})
                continue
            current = mine[0]
            healthy = current.status in ("active", "requested")
            if healthy and _same(current.resource, wanted):
                report.unchanged.append(current.id)
                continue
            self._fhir.request_json(
                "PUT", f"Subscription/{current.id}", body={**wanted, "id": current.id}
            )
            report.updated.append(current.id)
            log.info(
                "Subscription updated",
                extra={"subscription_key": spec.key, "subscription": current.id},
            )
        return report

    def remove(self, keys: Sequence[str] = ()) -> list[str]:
        """Delete our Subscriptions (those of `keys`, or all); their ids."""
        gone = [r.id for r in self.registered() if not keys or r.key in keys]
        for sub_id in gone:
            self._delete(sub_id)
        return gone

    def _delete(self, sub_id: str) -> None:
        with contextlib.suppress(FhirNotFound):
            self._fhir.request_json("DELETE", f"Subscription/{sub_id}")

    def status(self, sub_id: str) -> StatusInfo | None:
        """`Subscription/<id>/$status`: the server's status and event count, None if absent."""
        body = self._fhir.request_json("GET", f"Subscription/{sub_id}/$status")
        for entry in (body or {}).get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping) and resource.get("resourceType") in (
                "Parameters",
                "SubscriptionStatus",
            ):
                return status_info(resource)
        return None

    def events(self, sub_id: str, since: int, until: int) -> dict[str, Any] | None:
        """`Subscription/<id>/$events` for event numbers since..until (inclusive): a history
        notification Bundle whose entries name the events' focus (id-only asked)."""
        params = [
            ("eventsSinceNumber", str(since)),
            ("eventsUntilNumber", str(until)),
            ("content", "id-only"),
        ]
        return self._fhir.request_json("GET", f"Subscription/{sub_id}/$events", params=params)


__all__ = [
    "Channel",
    "EnsureReport",
    "JsonFhir",
    "Registered",
    "StatusInfo",
    "SubscriptionManager",
    "SubscriptionSpec",
    "notification_status",
    "offered_topics",
    "offers_events",
    "status_info",
    "subscription_resource",
]
