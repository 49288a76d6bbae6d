"""`carecoord subscriptions ensure|list|remove` on the embedded FHIR server: one Subscription per
kind however often ensure runs, a changed setting updated in place, topic-based where the server
offers the topic, and remove deleting only carecoord's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from carecoord.cli import app
from carecoord.fhir.client import FhirClient
from carecoord.service.subscriptions import KINDS, SUBSCRIPTION_TAG, ensure, manager, remove
from carecoord.settings import Settings, load_settings

pytestmark = pytest.mark.integration

TOKEN = "subs-ensure-token"
# One of the embedded server's built-in topics (sekmet's BUILTIN_TOPICS).
ENCOUNTER_TOPIC = "http://sekmet.dev/fhir/SubscriptionTopic/encounter-complete"


def _settings(fhir_base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "unused.invalid:9092",
        "fhir_base_url": fhir_base_url,
        "notifications_token": TOKEN,
        "notifications_public_url": "http://127.0.0.1:9/fhir/notifications",
        **overrides,
    }
    return load_settings(**values)


def _ours(fhir_base_url: str) -> list[dict[str, Any]]:
    """Every Subscription on the server tagged as carecoord's (read without carecoord's code)."""
    response = httpx.get(
        f"{fhir_base_url}/Subscription", params={"_tag": f"{SUBSCRIPTION_TAG}|"}, timeout=30
    )
    response.raise_for_status()
    return [e["resource"] for e in response.json().get("entry", [])]


@pytest.fixture
def fhir(fhir_base_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_base_url) as client:
        remove(client)
        yield client
        remove(client)


def test_ensure_twice_leaves_one_subscription_per_kind(
    fhir: FhirClient, fhir_base_url: str
) -> None:
    settings = _settings(fhir_base_url)
    first = ensure(settings, fhir)
    assert len(first.created) == len(KINDS) and not first.updated
    second = ensure(settings, fhir)
    assert second.created == [] and second.updated == []
    assert sorted(second.unchanged) == sorted(first.created)

    subs = _ours(fhir_base_url)
    kinds = sorted(
        t["code"] for s in subs for t in s["meta"]["tag"] if t["system"] == SUBSCRIPTION_TAG
    )
    assert kinds == sorted(KINDS)
    referral = next(s for s in subs if s["meta"]["tag"][0]["code"] == "referral-tasks")
    assert referral["criteria"] == "Task?code=http://hl7.org/fhir/CodeSystem/task-code|fulfill"
    assert referral["channel"]["endpoint"] == "http://127.0.0.1:9/fhir/notifications"
    assert referral["channel"]["header"] == [f"Authorization: Bearer {TOKEN}"]
    assert referral["status"] == "active"  # the server accepted the criteria


def test_a_changed_setting_updates_in_place(fhir: FhirClient, fhir_base_url: str) -> None:
    first = ensure(_settings(fhir_base_url), fhir)
    moved = "http://127.0.0.1:10/fhir/notifications"
    report = ensure(_settings(fhir_base_url, notifications_public_url=moved), fhir)
    assert sorted(report.updated) == sorted(first.created) and report.created == []
    subs = _ours(fhir_base_url)
    assert sorted(s["id"] for s in subs) == sorted(first.created)
    assert {s["channel"]["endpoint"] for s in subs} == {moved}


def test_a_kind_dropped_from_the_settings_is_removed(fhir: FhirClient, fhir_base_url: str) -> None:
    ensure(_settings(fhir_base_url), fhir)
    report = ensure(_settings(fhir_base_url, subscriptions_kinds="referral-tasks"), fhir)
    assert len(report.removed) == len(KINDS) - 1
    assert [r.key for r in manager(fhir).registered()] == ["referral-tasks"]


def test_topic_based_where_the_server_offers_the_topic(
    fhir: FhirClient, fhir_base_url: str
) -> None:
    settings = _settings(
        fhir_base_url,
        subscriptions_kinds="encounters,questionnaire-responses",
        subscriptions_topics={
            "encounters": ENCOUNTER_TOPIC,
            "questionnaire-responses": "https://example.org/no-such-topic",
        },
        subscriptions_heartbeat_period=120,
    )
    ensure(settings, fhir)
    by_kind = {r.key: r for r in manager(fhir).registered()}
    encounters = by_kind["encounters"].resource
    assert by_kind["encounters"].shape == "topic"
    assert encounters["criteria"] == ENCOUNTER_TOPIC
    assert encounters["meta"]["profile"] == [
        "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"
    ]
    assert encounters["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
    assert by_kind["encounters"].heartbeat_period == 120
    # a topic the server does not list: criteria-based instead; the embedded server declares no
    # `status` search on QuestionnaireResponse, so the criteria are the type alone (not `error`)
    questionnaires = by_kind["questionnaire-responses"]
    assert questionnaires.shape == "criteria"
    assert questionnaires.resource["criteria"] == "QuestionnaireResponse"
    assert questionnaires.status == "active"


def test_the_cli_lists_and_removes_only_carecoords(
    fhir: FhirClient, fhir_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = httpx.post(
        f"{fhir_base_url}/Subscription",
        json={
            "resourceType": "Subscription", "status": "requested", "reason": "not ours",
            "criteria": "Patient?name=nobody",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/other"},
        },
        timeout=30,
    ).json()  # fmt: skip
    try:
        for name, value in {
            "CARECOORD_FHIR_BASE_URL": fhir_base_url,
            "CARECOORD_NOTIFICATIONS_TOKEN": TOKEN,
            "CARECOORD_NOTIFICATIONS_PUBLIC_URL": "http://127.0.0.1:9/fhir/notifications",
        }.items():
            monkeypatch.setenv(name, value)
        runner = CliRunner()
        ensured = runner.invoke(app, ["subscriptions", "ensure"])
        assert ensured.exit_code == 0, ensured.output
        assert ensured.output.count("created\t") == len(KINDS)
        again = runner.invoke(app, ["subscriptions", "ensure"])
        assert again.output.count("unchanged\t") == len(KINDS), again.output
        listed = runner.invoke(app, ["subscriptions", "list"])
        assert listed.exit_code == 0, listed.output
        rows = [line.split("\t") for line in listed.output.splitlines()]
        assert sorted(r[0] for r in rows) == sorted(KINDS)
        assert {(r[2], r[3]) for r in rows} == {("active", "criteria")}
        removed = runner.invoke(app, ["subscriptions", "remove"])
        assert removed.output.count("removed\t") == len(KINDS), removed.output
        assert _ours(fhir_base_url) == []
        still = httpx.get(f"{fhir_base_url}/Subscription/{foreign['id']}", timeout=30)
        assert still.status_code == 200
    finally:
        httpx.delete(f"{fhir_base_url}/Subscription/{foreign['id']}", timeout=30)


def test_ensure_without_a_public_url_names_the_setting(
    fhir_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARECOORD_FHIR_BASE_URL", fhir_base_url)
    monkeypatch.setenv("CARECOORD_NOTIFICATIONS_TOKEN", TOKEN)
    monkeypatch.delenv("CARECOORD_NOTIFICATIONS_PUBLIC_URL", raising=False)
    result = CliRunner().invoke(app, ["subscriptions", "ensure"])
    assert result.exit_code == 2
    assert "CARECOORD_NOTIFICATIONS_PUBLIC_URL" in result.output
