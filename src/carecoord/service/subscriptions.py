"""carecoord's own FHIR Subscriptions, from its settings: what `carecoord subscriptions ensure`
registers (carecoord.fhir.subscriptions does the registering).

One Subscription per kind (CARECOORD_SUBSCRIPTIONS_KINDS), each tagged
`<SUBSCRIPTION_TAG>|<kind>` so `ensure` finds its own again:

- referral-tasks: the Gravity referral Tasks carecoord requests (code `fulfill`, task-code system;
  carecoord's have a `referral-task` identifier and the translator keeps only those);
- clinical-questions: the clinical-review Tasks carecoord sends providers (its task-type code);
- questionnaire-responses: completed or amended QuestionnaireResponses (assessments answered);
- encounters: Encounters that start or finish (admissions, discharges: transitional care).

Channel: rest-hook to CARECOORD_NOTIFICATIONS_PUBLIC_URL with the endpoint's bearer token as
`Authorization` header; topic-based ones get id-only payloads and the heartbeat period
(CARECOORD_SUBSCRIPTIONS_HEARTBEAT_PERIOD), criteria-based ones Medplum's signing secret when
CARECOORD_NOTIFICATIONS_HMAC_SECRET is set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from carecoord.caremodel import terminology as t
from carecoord.errors import ConfigError
from carecoord.fhir.subscriptions import (
    Channel,
    EnsureReport,
    JsonFhir,
    SubscriptionManager,
    SubscriptionSpec,
)
from carecoord.settings import Settings, env_name

log = logging.getLogger(__name__)

SUBSCRIPTION_TAG = f"{t.CODESYSTEM_BASE}subscription"

_CRITERIA: dict[str, tuple[str, str]] = {
    "referral-tasks": (
        f"Task?code={t.TASK_FULFILL.system}|{t.TASK_FULFILL.code}",
        "carecoord: community organisations' updates of referral Tasks",
    ),
    "clinical-questions": (
        f"Task?code={t.TASK_CLINICAL_REVIEW.system}|{t.TASK_CLINICAL_REVIEW.code}",
        "carecoord: providers' answers to clinical questions",
    ),
    "questionnaire-responses": (
        "QuestionnaireResponse?status=completed,amended",
        "carecoord: answered assessments",
    ),
    "encounters": (
        "Encounter?status=in-progress,finished",
        "carecoord: admissions and discharges",
    ),
}
KINDS: tuple[str, ...] = tuple(_CRITERIA)
_FILTERED = frozenset({"referral-tasks", "clinical-questions"})


def specs_from_settings(settings: Settings) -> list[SubscriptionSpec]:
    unknown = [k for k in settings.subscriptions_kinds if k not in _CRITERIA]
    if unknown:
        raise ConfigError(
            f"{env_name('subscriptions_kinds')} names unknown kinds {unknown}: "
            f"use some of {', '.join(KINDS)}"
        )
    stray = [k for k in settings.subscriptions_topics if k not in _CRITERIA]
    if stray:
        raise ConfigError(
            f"{env_name('subscriptions_topics')} has topics for unknown kinds {stray}: "
            f"use some of {', '.join(KINDS)}"
        )
    return [
        SubscriptionSpec(
            key=kind,
            reason=_CRITERIA[kind][1],
            criteria=_CRITERIA[kind][0],
            topic=settings.subscriptions_topics.get(kind),
            # a topic says what changed; the Task topics are narrowed to carecoord's Task codes
            topic_filter=_CRITERIA[kind][0] if kind in _FILTERED else None,
        )
        for kind in settings.subscriptions_kinds
    ]


def channel_from_settings(settings: Settings) -> Channel:
    url = settings.notifications_public_url
    if not url:
        raise ConfigError(
            f"{env_name('notifications_public_url')} is not set: the Subscriptions need the URL "
            "the FHIR server posts notifications to, e.g. "
            "https://carecoord.example.org/fhir/notifications"
        )
    given = settings.notifications_token
    token = given.get_secret_value().strip() if given else ""
    if not token:
        raise ConfigError(
            f"{env_name('notifications_token')} is not set: the Subscriptions send it as "
            "'Authorization: Bearer <token>' (the endpoint refuses notifications without it)"
        )
    secret = settings.notifications_hmac_secret
    period = settings.subscriptions_heartbeat_period
    return Channel(
        endpoint=url,
        headers=(f"Authorization: Bearer {token}",),
        heartbeat_period=period or None,
        secret=secret.get_secret_value() if secret else None,
    )


def manager(fhir: JsonFhir) -> SubscriptionManager:
    return SubscriptionManager(fhir, tag_system=SUBSCRIPTION_TAG)


def ensure(settings: Settings, fhir: JsonFhir, *, prune: bool = True) -> EnsureReport:
    """Create or update carecoord's Subscriptions; with `prune`, remove those of kinds no longer
    in the settings."""
    specs = specs_from_settings(settings)
    subs = manager(fhir)
    report = subs.ensure(specs, channel_from_settings(settings))
    if prune:
        wanted = {s.key for s in specs}
        stale = sorted({r.key for r in subs.registered()} - wanted)
        if stale:
            report.removed += subs.remove(stale)
    return report


def remove(fhir: JsonFhir, kinds: Sequence[str] = ()) -> list[str]:
    return manager(fhir).remove(kinds)
