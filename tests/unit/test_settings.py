"""Settings: what an operator sees when a setting is missing or wrong, and what gets logged."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from carecoord.errors import ConfigError
from carecoord.service.logging import JsonFormatter
from carecoord.settings import load_settings

BASE = {
    "CARECOORD_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
    "CARECOORD_FHIR_BASE_URL": "http://127.0.0.1:8080/fhir",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("CARECOORD_"):
            monkeypatch.delenv(name)
    return monkeypatch


def setenv(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for k, v in {**BASE, **values}.items():
        monkeypatch.setenv(k, v)


def test_defaults_are_the_ones_the_readme_documents(clean_env: pytest.MonkeyPatch) -> None:
    setenv(clean_env)
    s = load_settings()
    assert (s.topic_in, s.topic_out, s.topic_dlq) == (
        "carecoord.events",
        "carecoord.outbound",
        "carecoord.dlq",
    )
    assert s.group_id == "carecoord"
    assert s.fhir_version == "R4"
    assert s.fhir_auth == "none"


def test_missing_bootstrap_and_url_say_how_to_fix(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "CARECOORD_KAFKA_BOOTSTRAP is not set: point it at your Kafka brokers" in msg
    assert (
        "CARECOORD_FHIR_BASE_URL is not set: point it at your FHIR server's base URL, "
        "e.g. http://127.0.0.1:8080/fhir" in msg
    )


def test_bad_sasl_mechanism_lists_the_valid_ones(clean_env: pytest.MonkeyPatch) -> None:
    setenv(
        clean_env,
        CARECOORD_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        CARECOORD_KAFKA_SASL_MECHANISM="GSSAPI",
        CARECOORD_KAFKA_SASL_USERNAME="svc",
        CARECOORD_KAFKA_SASL_PASSWORD="pw",
    )
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "CARECOORD_KAFKA_SASL_MECHANISM is invalid" in str(err.value)
    assert "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" in str(err.value)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_bad_port_names_the_valid_range(clean_env: pytest.MonkeyPatch, port: str) -> None:
    setenv(clean_env, CARECOORD_HEALTH_PORT=port)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "CARECOORD_HEALTH_PORT is invalid" in str(err.value)
    assert "use a TCP port from 0 to 65535" in str(err.value)


def test_invalid_value_is_not_echoed(clean_env: pytest.MonkeyPatch) -> None:
    setenv(clean_env, CARECOORD_FHIR_BASE_URL="not-a-url-s3cr3t")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "CARECOORD_FHIR_BASE_URL is invalid" in str(err.value)
    assert "s3cr3t" not in str(err.value)


def test_sasl_protocol_needs_mechanism_and_credentials(clean_env: pytest.MonkeyPatch) -> None:
    setenv(clean_env, CARECOORD_KAFKA_SECURITY_PROTOCOL="sasl_ssl")
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert "CARECOORD_KAFKA_SASL_MECHANISM is not set" in msg
    assert "CARECOORD_KAFKA_SASL_USERNAME is not set" in msg
    assert "CARECOORD_KAFKA_SASL_PASSWORD is not set" in msg


@pytest.mark.parametrize(
    ("kind", "missing"),
    [
        ("bearer", ["CARECOORD_FHIR_TOKEN"]),
        (
            "client-credentials",
            [
                "CARECOORD_FHIR_TOKEN_URL",
                "CARECOORD_FHIR_CLIENT_ID",
                "CARECOORD_FHIR_CLIENT_SECRET",
            ],
        ),
        ("smart-backend", ["CARECOORD_FHIR_PRIVATE_KEY_FILE", "CARECOORD_FHIR_KEY_ID"]),
    ],
)
def test_fhir_auth_kind_needs_its_settings(
    clean_env: pytest.MonkeyPatch, kind: str, missing: list[str]
) -> None:
    setenv(clean_env, CARECOORD_FHIR_AUTH=kind)
    with pytest.raises(ConfigError) as err:
        load_settings()
    for name in missing:
        assert f"{name} is not set: CARECOORD_FHIR_AUTH={kind} needs it" in str(err.value)


def test_missing_tls_file_is_reported(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    setenv(
        clean_env,
        CARECOORD_KAFKA_SECURITY_PROTOCOL="SSL",
        CARECOORD_KAFKA_SSL_CAFILE=str(tmp_path / "nope.pem"),
    )
    with pytest.raises(ConfigError, match="CARECOORD_KAFKA_SSL_CAFILE names no readable file"):
        load_settings()


def test_secrets_are_absent_from_redacted_view_and_logs(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    setenv(
        clean_env,
        CARECOORD_FHIR_BASE_URL="https://svc:urlpass@fhir.example.org/fhir",
        CARECOORD_KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        CARECOORD_KAFKA_SASL_MECHANISM="scram-sha-512",
        CARECOORD_KAFKA_SASL_USERNAME="svc",
        CARECOORD_KAFKA_SASL_PASSWORD="kafkapass",
        CARECOORD_FHIR_AUTH="client-credentials",
        CARECOORD_FHIR_TOKEN_URL="https://auth.example.org/token",
        CARECOORD_FHIR_CLIENT_ID="carecoord",
        CARECOORD_FHIR_CLIENT_SECRET="clientsecret",
    )
    s = load_settings()
    assert s.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == "kafkapass"
    view = json.dumps(s.redacted())
    with caplog.at_level(logging.INFO):
        logging.getLogger("carecoord.test").info("settings", extra={"settings": s.redacted()})
        logging.getLogger("carecoord.test").info("settings %s", s)
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    for secret in ("kafkapass", "clientsecret", "urlpass"):
        assert secret not in view
        assert secret not in logged
    assert "fhir.example.org" in view  # the non-secret parts stay useful


def test_config_file_toml_with_handler_tables_env_wins(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "carecoord.toml"
    path.write_text(
        'kafka_bootstrap = "file-broker:9092"\n'
        'fhir_base_url = "http://fhir.internal/fhir"\n'
        "concurrency = 4\n"
        "[handlers.outreach]\n"
        "max_unanswered = 2\n"
        'owner = "provider"\n'
    )
    clean_env.setenv("CARECOORD_CONFIG_FILE", str(path))
    clean_env.setenv("CARECOORD_CONCURRENCY", "8")
    clean_env.setenv("CARECOORD_HANDLERS__outreach__max_unanswered", "3")
    s = load_settings()
    assert s.kafka_bootstrap == "file-broker:9092"
    assert s.concurrency == 8
    assert s.handlers["outreach"] == {"max_unanswered": "3", "owner": "provider"}


def test_config_file_json_via_argument(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "carecoord.json"
    path.write_text(json.dumps({**{k.lower()[10:]: v for k, v in BASE.items()}, "group_id": "g"}))
    s = load_settings(path)
    assert s.group_id == "g"


def test_config_file_problems_are_config_errors(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="config file cannot be read"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("kafka_bootstrap = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('kafka_bootstrapp = "x"\n')
    setenv(clean_env)
    with pytest.raises(ConfigError, match=r"'kafka_bootstrapp' .* is not a carecoord setting"):
        load_settings(typo)


def test_handler_lists_are_comma_separated(clean_env: pytest.MonkeyPatch) -> None:
    setenv(
        clean_env,
        CARECOORD_HANDLERS_ENABLED="outreach, referrals",
        CARECOORD_HANDLERS_DISABLED="billing",
    )
    s = load_settings()
    assert s.handlers_enabled == ["outreach", "referrals"]
    assert s.handlers_disabled == ["billing"]


# Every secret-bearing setting and option, each with a value of its own, so a leak names itself.
EVERY_SECRET = {
    "CARECOORD_FHIR_BASE_URL": "https://svc:leak-fhir-url-pw@fhir.example.org/fhir",
    "CARECOORD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "CARECOORD_KAFKA_SASL_MECHANISM": "PLAIN",
    "CARECOORD_KAFKA_SASL_USERNAME": "svc",
    "CARECOORD_KAFKA_SASL_PASSWORD": "leak-sasl-pw",
    "CARECOORD_KAFKA_SSL_PASSWORD": "leak-ssl-pw",
    "CARECOORD_KAFKA_OPTIONS": json.dumps(
        {
            "session_timeout_ms": 6000,
            "sasl_plain_password": "leak-opt-sasl-pw",
            "ssl_password": "leak-opt-ssl-pw",
            "sasl_oauth_token_provider": {"client_secret": "leak-opt-nested-secret"},
            "extra": {"apiKey": "leak-opt-api-key", "Credentials": ["leak-opt-credential"]},
            "metrics_url": "https://m:leak-opt-url-pw@metrics.example.org/push",
        }
    ),
    "CARECOORD_FHIR_AUTH": "client-credentials",
    "CARECOORD_FHIR_TOKEN_URL": "https://cc:leak-token-url-pw@auth.example.org/token",
    "CARECOORD_FHIR_CLIENT_ID": "carecoord",
    "CARECOORD_FHIR_CLIENT_SECRET": "leak-client-secret",
    "CARECOORD_FHIR_TOKEN": "leak-fhir-token",
    "CARECOORD_NOTIFICATIONS_ENABLED": "true",
    "CARECOORD_NOTIFICATIONS_TOKEN": "leak-notification-token",
    "CARECOORD_HANDLERS__referrals__api_token": "leak-handler-token",
}


def leaked(text: str) -> list[str]:
    return sorted(set(re.findall(r"leak-[a-z-]+", text)))


def test_a_secret_in_every_option_appears_in_no_view_of_the_settings(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    setenv(clean_env, **EVERY_SECRET)
    s = load_settings()
    assert s.kafka_options["sasl_plain_password"] == "leak-opt-sasl-pw"  # still usable
    view = json.dumps(s.redacted())
    with caplog.at_level(logging.INFO):
        logging.getLogger("carecoord.test").info("settings", extra={"settings": s.redacted()})
        logging.getLogger("carecoord.test").info("settings %r %s", s, s)
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert leaked(view) == []
    assert leaked(repr(s)) == []
    assert leaked(str(s)) == []
    assert leaked(logged) == []
    # what is not secret stays readable for the operator
    redacted = s.redacted()
    assert redacted["kafka_options"]["session_timeout_ms"] == 6000
    assert redacted["fhir_token_url"] == "https://***@auth.example.org/token"
    assert redacted["kafka_options"]["metrics_url"] == "https://***@metrics.example.org/push"


@pytest.mark.parametrize("token", [None, "", "   "])
def test_notifications_need_a_token_an_empty_one_is_not_open(
    clean_env: pytest.MonkeyPatch, token: str | None
) -> None:
    setenv(clean_env, CARECOORD_NOTIFICATIONS_ENABLED="true")
    if token is not None:
        clean_env.setenv("CARECOORD_NOTIFICATIONS_TOKEN", token)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "CARECOORD_NOTIFICATIONS_TOKEN is not set" in str(err.value)
    assert "CARECOORD_NOTIFICATIONS_ENABLED=true needs it" in str(err.value)


def test_the_notification_listener_is_local_by_default_and_apart_from_health(
    clean_env: pytest.MonkeyPatch,
) -> None:
    setenv(clean_env)
    s = load_settings()
    assert (s.notifications_host, s.notifications_port) == ("127.0.0.1", 8081)
    assert (s.health_host, s.health_port) == ("0.0.0.0", 8000)
    assert s.notifications_max_body_bytes == 1024 * 1024
