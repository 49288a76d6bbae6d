"""carecoord's own Subscriptions from the settings: one spec per kind with its criteria, a topic
where one is configured (the Task kinds narrowed to carecoord's codes), the channel with the
endpoint's token; unknown kinds and a missing URL or token are ConfigErrors naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from carecoord.errors import ConfigError
from carecoord.service.subscriptions import KINDS, channel_from_settings, specs_from_settings
from carecoord.settings import Settings, load_settings


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "k.invalid:9092",
        "fhir_base_url": "https://fhir.example.org/r4",
        "notifications_token": "tok",
        "notifications_public_url": "https://cc.example.org/fhir/notifications",
        **overrides,
    }
    return load_settings(**values)


def test_every_kind_by_default_criteria_based() -> None:
    specs = specs_from_settings(settings())
    assert [s.key for s in specs] == list(KINDS)
    by_key = {s.key: s for s in specs}
    assert by_key["referral-tasks"].criteria == (
        "Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill"
    )
    assert by_key["clinical-questions"].criteria == (
        "Task?code=https://carecoord.dev/fhir/CodeSystem/task-type|clinical-review"
    )
    assert all(s.topic is None for s in specs)


def test_a_topic_per_kind_and_the_task_kinds_filtered() -> None:
    specs = specs_from_settings(
        settings(
            subscriptions_kinds="referral-tasks,encounters",
            subscriptions_topics={"referral-tasks": "https://x/t", "encounters": "https://x/e"},
        )
    )
    referral, encounters = specs
    assert referral.topic == "https://x/t" and referral.topic_filter == referral.criteria
    assert encounters.topic == "https://x/e" and encounters.topic_filter is None


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"subscriptions_kinds": "referral-tasks,patients"}, "CARECOORD_SUBSCRIPTIONS_KINDS"),
        ({"subscriptions_topics": {"patients": "https://x"}}, "CARECOORD_SUBSCRIPTIONS_TOPICS"),
    ],
)
def test_an_unknown_kind_names_the_setting(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        specs_from_settings(settings(**overrides))


def test_the_channel_sends_the_endpoints_token_and_the_heartbeat() -> None:
    channel = channel_from_settings(
        settings(subscriptions_heartbeat_period=120, notifications_hmac_secret="h")
    )
    assert channel.endpoint == "https://cc.example.org/fhir/notifications"
    assert channel.headers == ("Authorization: Bearer tok",)
    assert (channel.heartbeat_period, channel.secret) == (120, "h")
    assert (
        channel_from_settings(settings(subscriptions_heartbeat_period=0)).heartbeat_period is None
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"notifications_public_url": None}, "CARECOORD_NOTIFICATIONS_PUBLIC_URL"),
        ({"notifications_token": None}, "CARECOORD_NOTIFICATIONS_TOKEN"),
    ],
)
def test_the_channel_needs_the_url_and_the_token(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        channel_from_settings(settings(**overrides))


def test_ensure_at_start_without_a_public_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CARECOORD_NOTIFICATIONS_PUBLIC_URL"):
        settings(subscriptions_ensure_at_start=True, notifications_public_url=None)
