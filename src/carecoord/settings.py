"""Service settings: `CARECOORD_*` environment variables, optionally a TOML or JSON file.

Precedence (highest first): keyword arguments, environment variables, the config file, defaults.
The file is named by `--config FILE` (the `config_file` argument) or `CARECOORD_CONFIG_FILE`; its
keys are the setting names below in lower case without the prefix, e.g. ``kafka_bootstrap =
"broker:9092"``, with per-handler configuration in ``[handlers.<name>]`` tables.

Every setting is stated once, as a field of `Settings` below: its default, what it is and how to
fix a bad value. docs/configuration.md's table is generated from them (`reference()`, run
`python -m carecoord.settings`); the runtime's defaults (`RuntimeOptions`) are the same ones.

A mistake is a ConfigError of ONE line naming the variable and the fix, never the value; a file
or JSON variable that does not parse gives the line and column. docs/configuration-errors.md lists
every check `carecoord run` makes at start-up and the commands' exit codes (2: configuration).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from carecoord.errors import ConfigError
from carecoord.events.runtime import RuntimeOptions
from carecoord.handlers.jobs.worklist_checkins import CheckinConfig
from carecoord.handlers.programs.assessment_schedule import DEFAULT_GRACE_DAYS

ENV_PREFIX = "CARECOORD_"
CONFIG_FILE_ENV = "CARECOORD_CONFIG_FILE"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
FhirAuthKind = Literal["none", "bearer", "client-credentials", "smart-backend"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

NameList = Annotated[list[str], NoDecode]

# The runtime's own defaults are the service's: one place for each (RuntimeOptions).
_RUNTIME = RuntimeOptions()


def setting(default: Any, description: str, fix: str, *, group: str, **constraints: Any) -> Any:
    """A setting, stated once: its default, what it is (the docs table is generated from it) and
    how to fix a bad value (the start-up error names it). Secrets are SecretStr fields."""
    if isinstance(default, list | dict):
        factory = (lambda v: lambda: type(v)(v))(default)
        return Field(default_factory=factory, description=description,
                     json_schema_extra={"fix": fix, "group": group}, **constraints)  # fmt: skip
    return Field(default, description=description,
                 json_schema_extra={"fix": fix, "group": group}, **constraints)  # fmt: skip


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _split_names(value: Any) -> Any:
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    return value


class Settings(BaseSettings):
    """Validated service settings. Build with `load_settings()` to get `ConfigError`s that say how
    to fix a bad value; secrets are `SecretStr` and `redacted()` is the view to log."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        frozen=True,
    )

    config_file: Path | None = setting(
        None,
        "a TOML or JSON file of these settings (also CARECOORD_CONFIG_FILE)",
        "set --config / CARECOORD_CONFIG_FILE to a readable .toml or .json file",
        group="File",
    )

    # Kafka
    kafka_bootstrap: str = setting(
        ...,
        "host:port[,host:port...] of the brokers, each entry with its port",
        "point it at your Kafka brokers, e.g. 127.0.0.1:9092",
        group="Kafka",
        min_length=1,
    )
    topic_in: str = setting(
        _RUNTIME.topic_in,
        "the topic of the events carecoord consumes",
        "name a topic",
        group="Kafka",
        min_length=1,
    )
    topic_out: str = setting(
        _RUNTIME.topic_out,
        "the topic of the events carecoord emits",
        "name a topic",
        group="Kafka",
        min_length=1,
    )
    topic_dlq: str = setting(
        _RUNTIME.topic_dlq,
        "the dead-letter topic",
        "name a topic",
        group="Kafka",
        min_length=1,
    )
    group_id: str = setting(
        _RUNTIME.group_id,
        "the consumer group: scale out by running more instances",
        "name a consumer group",
        group="Kafka",
        min_length=1,
    )
    concurrency: int = setting(
        _RUNTIME.max_in_flight,
        "events in flight at once, across patients",
        "use a whole number from 1 to 1024, e.g. 16",
        group="Kafka",
        ge=1,
        le=1024,
    )
    retry_budget: float = setting(
        _RUNTIME.retry_budget_seconds,
        "seconds spent retrying one event's transient failure",
        "use a number of seconds above 0, e.g. 30",
        group="Kafka",
        gt=0,
    )
    drain_timeout: float = setting(
        _RUNTIME.shutdown_drain_seconds,
        "seconds to finish in-flight work on SIGTERM",
        "use a number of seconds of 0 or more, e.g. 30",
        group="Kafka",
        ge=0,
    )
    kafka_security_protocol: SecurityProtocol = setting(
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        "use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        group="Kafka",
    )
    kafka_sasl_mechanism: SaslMechanism | None = setting(
        None,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
        "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
        group="Kafka",
    )
    kafka_sasl_username: str | None = setting(None, "the SASL user", "give the user", group="Kafka")
    kafka_sasl_password: SecretStr | None = setting(
        None, "the SASL password (secret)", "give the password", group="Kafka"
    )
    kafka_ssl_cafile: Path | None = setting(
        None, "PEM file of the CA certificates", "give a PEM file's path", group="Kafka"
    )
    kafka_ssl_certfile: Path | None = setting(
        None, "PEM file of the client certificate", "give a PEM file's path", group="Kafka"
    )
    kafka_ssl_keyfile: Path | None = setting(
        None, "PEM file of the client key", "give a PEM file's path", group="Kafka"
    )
    kafka_ssl_password: SecretStr | None = setting(
        None, "the client key's password (secret)", "give the password", group="Kafka"
    )
    kafka_options: dict[str, Any] = setting(
        {},
        "JSON object: KafkaConnection and RuntimeOptions fields (session_timeout_ms, "
        "request_timeout_ms, max_poll_records, create_topics_partitions, ...) and any other "
        "kafka-python option, passed to the clients that take it; a name none takes fails",
        'use a JSON object of kafka-python options, e.g. {"session_timeout_ms": 6000}',
        group="Kafka",
    )

    # FHIR
    # Required by `carecoord run` (load_settings(need_fhir=True)); the dlq commands do without.
    fhir_base_url: str | None = setting(
        None,
        "the FHIR server's base URL (required by run, sweep, worklist, directory)",
        "point it at your FHIR server's base URL, e.g. http://127.0.0.1:8080/fhir",
        group="FHIR",
    )
    fhir_version: Literal["R4", "R5"] = setting("R4", "R4 or R5", "use R4 or R5", group="FHIR")
    fhir_timeout: float = setting(
        10.0,
        "seconds for one FHIR request",
        "use a number of seconds above 0, e.g. 10",
        group="FHIR",
        gt=0,
    )
    fhir_retry_budget: float = setting(
        30.0,
        "seconds of retries of one FHIR request",
        "use a number of seconds of 0 or more, e.g. 30",
        group="FHIR",
        ge=0,
    )
    fhir_auth: FhirAuthKind = setting(
        "none",
        "none, bearer, client-credentials or smart-backend",
        "use one of none, bearer, client-credentials, smart-backend",
        group="FHIR",
    )
    fhir_token: SecretStr | None = setting(
        None, "bearer: the token (secret)", "give the token", group="FHIR"
    )
    fhir_token_url: str | None = setting(
        None, "client-credentials, smart-backend: the token endpoint", "give its URL", group="FHIR"
    )
    fhir_client_id: str | None = setting(
        None, "client-credentials, smart-backend: the client id", "give the id", group="FHIR"
    )
    fhir_client_secret: SecretStr | None = setting(
        None, "client-credentials: the client secret (secret)", "give the secret", group="FHIR"
    )
    fhir_scope: str | None = setting(
        None,
        "client-credentials, smart-backend: the scopes asked for",
        "give the scopes",
        group="FHIR",
    )
    fhir_private_key_file: Path | None = setting(
        None, "smart-backend: PEM private key", "give the PEM file's path", group="FHIR"
    )
    fhir_key_id: str | None = setting(
        None, "smart-backend: the key's kid", "give the kid", group="FHIR"
    )
    fhir_jwt_algorithm: Literal["RS384", "ES384"] = setting(
        "RS384", "smart-backend: RS384 or ES384", "use RS384 or ES384", group="FHIR"
    )

    # Service
    health_host: str = setting(
        "0.0.0.0", "address of /healthz /readyz /metrics", "give an address", group="Service"
    )
    health_port: int = setting(
        8000,
        "port of /healthz /readyz /metrics (0: any free port)",
        "use a TCP port from 0 to 65535 (0 picks a free one), e.g. 8000",
        group="Service",
        ge=0,
        le=65535,
    )
    log_level: LogLevel = setting(
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        "use one of DEBUG, INFO, WARNING, ERROR",
        group="Service",
    )
    log_format: Literal["json", "text"] = setting(
        "json",
        "json (one object a line) or text; logs carry ids only, never PHI",
        "use json or text",
        group="Service",
    )
    sweeper_interval: float = setting(
        300.0,
        "seconds between sweeps of time-based triggers in `carecoord run`; 0: off",
        "use a number of seconds of 0 (off) or more, e.g. 300",
        group="Service",
        ge=0,
    )
    health_check_interval: float = setting(
        15.0,
        "seconds between probes of the FHIR server and the broker while they answer",
        "use a number of seconds above 0, e.g. 15",
        group="Service",
        gt=0,
    )

    # FHIR change notifications (carecoord.service.notification_endpoint)
    notifications_enabled: bool = setting(
        False,
        "accept FHIR rest-hook notifications on a listener of their own",
        "use true or false",
        group="FHIR notifications",
    )
    notifications_path: str = setting(
        "/fhir/notifications",
        "the endpoint's path",
        "use a URL path starting with /, e.g. /fhir/notifications",
        group="FHIR notifications",
        pattern=r"^/[A-Za-z0-9/_\-.$]*$",
    )
    notifications_token: SecretStr | None = setting(
        None,
        "(required when enabled) the secret the server sends as Authorization: Bearer",
        "give a long random token; the Subscription sends it in channel.header",
        group="FHIR notifications",
    )
    # Its own listener, local by default: the data-changing endpoint is never exposed by accident
    # (the health port is usually reachable cluster-wide for probes).
    notifications_host: str = setting(
        "127.0.0.1",
        "the listener's address (0.0.0.0 only behind a TLS-terminating proxy)",
        "give an address",
        group="FHIR notifications",
    )
    notifications_port: int = setting(
        8081,
        "the listener's port (0: any free port)",
        "use a TCP port from 0 to 65535 (0 picks a free one), e.g. 8081",
        group="FHIR notifications",
        ge=0,
        le=65535,
    )
    # A notification bundle with one full Task is a few KB; 1 MiB leaves room for batches.
    notifications_max_body_bytes: int = setting(
        1024 * 1024,
        "largest notification accepted (413 above)",
        "use a number of bytes from 1024 up, e.g. 1048576 (1 MiB)",
        group="FHIR notifications",
        ge=1024,
    )
    notifications_max_resources: int = setting(
        100,
        "most resources one notification may name (each costs a FHIR read; 413 above)",
        "use a whole number from 1 up, e.g. 100",
        group="FHIR notifications",
        ge=1,
    )

    # Medplum signs criteria-based notifications: X-Signature = hex HMAC-SHA256 of the body
    # (https://www.medplum.com/docs/subscriptions/subscription-extensions).
    notifications_hmac_secret: SecretStr | None = setting(
        None,
        "when set, every notification must carry X-Signature: hex HMAC-SHA256 of the body "
        "(Medplum's subscription-secret); `subscriptions ensure` registers it",
        "give a long random secret, e.g. `openssl rand -hex 32`, or leave unset",
        group="FHIR notifications",
    )

    # carecoord's own Subscriptions (carecoord.service.subscriptions, `carecoord subscriptions`)
    notifications_public_url: str | None = setting(
        None,
        "the notification endpoint's URL as the FHIR server reaches it (the Subscriptions' "
        "channel.endpoint)",
        "give an http(s) URL ending in the notifications path, e.g. "
        "https://carecoord.example.org/fhir/notifications",
        group="FHIR subscriptions",
        pattern=r"^https?://\S+$",
    )
    subscriptions_kinds: NameList = setting(
        ["referral-tasks", "clinical-questions", "questionnaire-responses", "encounters"],
        "comma-separated kinds of Subscription carecoord registers",
        "list kinds from referral-tasks, clinical-questions, questionnaire-responses, encounters",
        group="FHIR subscriptions",
    )
    subscriptions_topics: dict[str, str] = setting(
        {},
        "kind -> SubscriptionTopic canonical: topic-based (R4 Backport) where the server offers "
        "it, criteria-based otherwise",
        "set CARECOORD_SUBSCRIPTIONS_TOPICS__<kind>=<topic canonical URL>",
        group="FHIR subscriptions",
    )
    subscriptions_heartbeat_period: int = setting(
        300,
        "seconds between the server's heartbeats (topic-based); none for 2x this: missed",
        "use a whole number of seconds from 0 (no heartbeat) up, e.g. 300",
        group="FHIR subscriptions",
        ge=0,
    )
    subscriptions_ensure_at_start: bool = setting(
        False,
        "run `subscriptions ensure` when the service starts (needs the public URL)",
        "use true or false",
        group="FHIR subscriptions",
    )

    # The reconciling poller (docs/reconcile.md) and the EHR events (docs/ehr-events.md)
    reconcile_enabled: bool = setting(
        True,
        "poll the FHIR server for the changes notifications may have missed (Tasks, "
        "QuestionnaireResponses, Encounters): the source of truth behind notifications",
        "use true or false",
        group="Reconciling poller",
    )
    reconcile_interval: float = setting(
        3600.0,
        "seconds between polls (the Gravity SDOHCC IG: SHOULD hourly, at least once per "
        "business day; SHOULD NOT more often than every 15 minutes)",
        "use 900 or more seconds (the Gravity SDOHCC IG: systems SHOULD NOT query more often "
        "than every 15 minutes), e.g. 3600",
        group="Reconciling poller",
        ge=900,
    )
    reconcile_overlap: float = setting(
        300.0,
        "seconds each `_lastUpdated` window reaches back before the last change seen (changes "
        "a server commits late are still found; what was handled is not handled twice)",
        "use a number of seconds of 0 or more, e.g. 300",
        group="Reconciling poller",
        ge=0,
    )
    reconcile_cursor_topic: str | None = setting(
        None,
        "compacted one-partition topic of the poller's cursors (key: query name; default "
        "`<group_id>.reconcile.cursor`); its consumer group `<group_id>.reconcile` picks the one "
        "instance that polls",
        "use a Kafka topic name, e.g. carecoord.reconcile.cursor",
        group="Reconciling poller",
        min_length=1,
    )
    discharge_mapping: dict[str, Any] = setting(
        {},
        "JSON object overriding how a finished Encounter becomes carecoord.patient.discharged: "
        "classes, snf_classes, snf_types, tcm_dispositions (system|code), complexity",
        'use a JSON object, e.g. {"complexity": "moderate"} (docs/ehr-events.md)',
        group="Reconciling poller",
    )

    # Handlers
    handlers_enabled: NameList = setting(
        [],
        "comma-separated handler names; empty: every discovered handler",
        "list handler names, e.g. enrolment,outreach",
        group="Handlers",
    )
    handlers_disabled: NameList = setting(
        [],
        "comma-separated handler names to switch off",
        "list handler names",
        group="Handlers",
    )
    handler_modules: NameList = setting(
        [],
        "comma-separated extra modules exposing HANDLERS",
        "list importable modules",
        group="Handlers",
    )
    handlers: dict[str, dict[str, Any]] = setting(
        {},
        "per-handler configuration: CARECOORD_HANDLERS__<name>__<key> or [handlers.<name>]",
        "set CARECOORD_HANDLERS__<handler>__<key>=value or a [handlers.<handler>] table",
        group="Handlers",
    )

    # The worklist's check-ins (docs/worklist.md, docs/talking-points.md)
    assessment_schedule: dict[str, dict[str, int]] = setting(
        {},
        "assessments due per program: program -> LOINC panel code -> days between (0: once); "
        "a program named replaces its default schedule",
        'give JSON like {"BHI": {"44249-1": 30, "69737-5": 30}} or an [assessment_schedule.BHI] '
        "table; {} for a program schedules nothing",
        group="Worklist",
    )
    assessment_grace_days: int = setting(
        DEFAULT_GRACE_DAYS,
        "days an assessment stays due before it is overdue",
        "use a whole number of days from 0 up, e.g. 7",
        group="Worklist",
        ge=0,
    )
    talking_points_file: Path | None = setting(
        None,
        "YAML or JSON file of check-in talking points added to (or replacing) the shipped ones",
        "give a readable YAML/JSON file in the docs/talking-points.md format",
        group="Worklist",
    )

    @field_validator(
        "handlers_enabled", "handlers_disabled", "handler_modules", "subscriptions_kinds",
        mode="before",
    )  # fmt: skip
    @classmethod
    def _names(cls, v: Any) -> Any:
        return _split_names(v)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", "log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("fhir_version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("fhir_auth", "log_format", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("fhir_base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
        return v.strip().rstrip("/")

    @field_validator("kafka_sasl_mechanism", "fhir_token_url", "fhir_client_id", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = getattr(init_settings, "init_kwargs", {}).get("config_file") or os.environ.get(
            CONFIG_FILE_ENV
        )
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if path:
            sources += (_ConfigFileSource(settings_cls, Path(path)),)
        return sources

    # Derived views ---------------------------------------------------------------------------

    def __repr_args__(self) -> Any:
        # repr()/str() must be as safe to log as redacted(): options and URLs may carry secrets.
        view = self.redacted()
        for key, _ in super().__repr_args__():
            if key is not None:
                yield key, view.get(key)

    def redacted(self) -> dict[str, Any]:
        """Every setting as JSON-ready data with secrets masked: the view to log.

        SecretStr fields are masked by pydantic; free-form options (kafka_options, handlers)
        are masked by name at any depth, and every URL loses its userinfo."""
        data: dict[str, Any] = _redact(self.model_dump(mode="json"))
        data["kafka_bootstrap"] = ",".join(
            _strip_userinfo(b) for b in self.kafka_bootstrap.split(",")
        )
        return data

    def bootstrap_servers(self) -> list[str]:
        return [b.strip() for b in self.kafka_bootstrap.split(",") if b.strip()]


def _extra(field: str, key: str) -> str:
    info = Settings.model_fields.get(field)
    extra = info.json_schema_extra if info is not None else None
    value = extra.get(key) if isinstance(extra, dict) else None
    return str(value) if value is not None else ""


# How to fix each setting (from its Field); error messages name it, never the value.
_HINTS: dict[str, str] = {f: _extra(f, "fix") for f in Settings.model_fields if _extra(f, "fix")}


def _shown_default(name: str) -> str:
    info = Settings.model_fields[name]
    if info.is_required():
        return "(required)"
    value = info.get_default(call_default_factory=True)
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return f"`{value}`"


def reference() -> str:
    """The settings as a Markdown table, grouped: docs/configuration.md holds this (a test keeps
    it current; regenerate with `python -m carecoord.settings`)."""
    rows = ["| variable | default | |", "|---|---|---|"]
    group = None
    for name, info in Settings.model_fields.items():
        if name == "config_file":
            continue
        if _extra(name, "group") != group:
            group = _extra(name, "group")
            rows.append(f"| **{group}** | | |")
        rows.append(f"| `{env_name(name)}` | {_shown_default(name)} | {info.description} |")
    return "\n".join(rows) + "\n"


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from a TOML (.toml) or JSON (.json) file."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.data = read_config_file(path)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a settings file; keys are setting names (case-insensitive, no prefix)."""
    fix = f"set --config / {CONFIG_FILE_ENV} to a readable .toml or .json file"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"config file cannot be read ({exc.strerror}): {fix}", path=str(path)
        ) from exc
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        data = json.loads(raw) if kind == "JSON" else tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file is not valid {kind} ({parse_position(exc, raw)}): fix the file there",
            path=str(path),
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file must hold an object/table: {fix}", path=str(path))
    return {str(k).lower(): v for k, v in data.items()}


_TOML_POSITION = re.compile(r"at line (\d+), column (\d+)")


def parse_position(exc: BaseException, source: bytes | str | None = None) -> str:
    """Where a JSON or TOML parse failed, as "line L column C: <what>" (the parser's own words,
    which describe the syntax, never quote the text). TOMLDecodeError has no attributes for it
    before Python 3.14; its message ends "(at line L, column C)" or "(at end of document)",
    whose position is the end of `source`."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start}: not UTF-8"
    text = str(exc)
    found = _TOML_POSITION.search(text)
    if found is not None:
        what = text[: found.start()].rstrip(" (")
        return f"line {found.group(1)} column {found.group(2)}: {what}"
    if text.endswith("(at end of document)"):
        what = text.removesuffix("(at end of document)").rstrip(" ")
        if source is None:
            return f"at the end of the file: {what}"
        body = source.decode(errors="replace") if isinstance(source, bytes) else source
        line, column = body.count("\n") + 1, len(body.rsplit("\n", 1)[-1]) + 1
        return f"line {line} column {column} (the end of the file): {what}"
    return type(exc).__name__


def load_settings(
    config_file: Path | str | None = None, *, need_fhir: bool = True, **overrides: Any
) -> Settings:
    """Read and validate settings; raise `ConfigError` listing every problem and its fix.

    `need_fhir=False` for commands that only talk to Kafka (the dlq commands)."""
    if config_file is not None:
        overrides["config_file"] = Path(config_file)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = _describe(exc)
        if need_fhir and not _fhir_url_given(overrides) and "fhir_base_url" not in str(exc):
            problems.append(_missing("fhir_base_url"))
        raise ConfigError(_one_line(problems)) from exc
    except SettingsError as exc:  # an environment variable holding JSON that does not parse
        raise ConfigError(_undecodable(exc)) from None
    problems = check_consistency(settings)
    if need_fhir and settings.fhir_base_url is None:
        problems.insert(0, _missing("fhir_base_url"))
    if problems:
        raise ConfigError(_one_line(problems))
    return settings


def _one_line(problems: list[str]) -> str:
    """Every problem on ONE line (a log line each; a reader of the terminal sees them all)."""
    return "invalid settings: " + "; ".join(problems)


_FIELD_OF = re.compile(r'field "([a-z_]+)"')


def _undecodable(exc: SettingsError) -> str:
    """pydantic-settings decodes dict/list variables (CARECOORD_KAFKA_OPTIONS, CARECOORD_HANDLERS)
    as JSON and raises SettingsError naming the field, the JSONDecodeError as its cause."""
    found = _FIELD_OF.search(str(exc))
    field = found.group(1) if found else ""
    where = parse_position(exc.__cause__) if exc.__cause__ is not None else "not JSON"
    hint = _HINTS.get(field, "give it a JSON value")
    return f"invalid settings: {env_name(field)} is not valid JSON ({where}): {hint}"


def bootstrap_problems(bootstrap: str) -> list[str]:
    """Each CARECOORD_KAFKA_BOOTSTRAP entry must be host:port with a port of 1 to 65535
    ([v6-address]:port for IPv6); kafka-python would otherwise guess a port for a bare host or
    fail on a bad one only when it first connects, naming no setting. A leading
    "PROTOCOL://" is ignored, as kafka-python ignores it (kafka.cluster.collect_hosts)."""
    name = env_name("kafka_bootstrap")
    entries = [b.strip() for b in bootstrap.split(",")]
    if not any(entries):
        return [f"{name} is empty: {_HINTS['kafka_bootstrap']}"]
    problems: list[str] = []
    for n, entry in enumerate(entries, 1):
        host, colon, port = host_port(entry)
        which = f"{name} entry {n}" if len(entries) > 1 else name
        if not entry:
            problems.append(f"{which} is empty: remove the stray comma")
        elif not colon or not host.strip("[]"):
            problems.append(f"{which} is not host:port: give the port too, e.g. kafka:9092")
        elif not port.isdigit() or not 1 <= int(port) <= 65535:
            problems.append(f"{which} has no valid port: use a port from 1 to 65535, e.g. 9092")
    return problems


def host_port(entry: str) -> tuple[str, str, str]:
    """(host, ":", port) of one bootstrap entry, any "PROTOCOL://" prefix dropped."""
    return re.sub(r"^.*://", "", entry.strip()).rpartition(":")


def check_bootstrap(settings: Settings) -> None:
    """ConfigError (one line) unless every bootstrap entry is host:port; called where a real
    Kafka client is built from settings (tests may name an in-memory broker instead)."""
    problems = bootstrap_problems(settings.kafka_bootstrap)
    if problems:
        raise ConfigError(_one_line(problems))


def _missing(field: str) -> str:
    return f"{env_name(field)} is not set: {_HINTS[field]}"


def _fhir_url_given(overrides: dict[str, Any]) -> bool:
    """Whether some source names the FHIR URL (used only to report it alongside other errors)."""
    if overrides.get("fhir_base_url") or os.environ.get(env_name("fhir_base_url")):
        return True
    path = overrides.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
    if not path:
        return False
    try:
        return bool(read_config_file(Path(path)).get("fhir_base_url"))
    except ConfigError:
        return False


def _describe(exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else ""
        name = env_name(field) + "".join(f"__{p}" for p in loc[1:])
        hint = _HINTS.get(field, "see `carecoord run --help` and the carecoord.settings docs")
        if err["type"] == "missing":
            out.append(_missing(field) if field in _HINTS else f"{name} is not set: {hint}")
        elif err["type"] == "extra_forbidden":
            out.append(
                f"{field!r} (config file or argument) is not a carecoord setting: "
                "remove it or fix its spelling"
            )
        else:
            # The message only, never the input: it may be a secret.
            out.append(f"{name} is invalid ({err['msg']}): {hint}")
    return out


def check_consistency(s: Settings) -> list[str]:
    """Cross-field rules (SASL needs credentials, each FHIR auth kind its settings, files exist)."""
    problems: list[str] = []
    sasl = s.kafka_security_protocol.startswith("SASL_")
    if sasl and not s.kafka_sasl_mechanism:
        problems.append(
            f"{env_name('kafka_sasl_mechanism')} is not set but "
            f"{env_name('kafka_security_protocol')}={s.kafka_security_protocol}: "
            "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
        )
    if s.kafka_sasl_mechanism and not sasl:
        problems.append(
            f"{env_name('kafka_sasl_mechanism')} is set but "
            f"{env_name('kafka_security_protocol')}={s.kafka_security_protocol}: "
            "set the protocol to SASL_SSL (or SASL_PLAINTEXT on a trusted network)"
        )
    if sasl:
        for field in ("kafka_sasl_username", "kafka_sasl_password"):
            if getattr(s, field) is None:
                problems.append(f"{env_name(field)} is not set: SASL needs a username and password")
    for field in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
        path = getattr(s, field)
        if path is not None and not Path(path).is_file():
            problems.append(f"{env_name(field)} names no readable file: give a PEM file's path")

    needs: dict[str, tuple[str, ...]] = {
        "none": (),
        "bearer": ("fhir_token",),
        "client-credentials": ("fhir_token_url", "fhir_client_id", "fhir_client_secret"),
        "smart-backend": (
            "fhir_token_url",
            "fhir_client_id",
            "fhir_private_key_file",
            "fhir_key_id",
        ),
    }
    for field in needs[s.fhir_auth]:
        if getattr(s, field) is None:
            problems.append(
                f"{env_name(field)} is not set: {env_name('fhir_auth')}={s.fhir_auth} needs it"
            )
    if s.fhir_private_key_file is not None and not Path(s.fhir_private_key_file).is_file():
        problems.append(
            f"{env_name('fhir_private_key_file')} names no readable file: "
            "give the path of the PEM private key registered with the authorization server"
        )
    if s.notifications_enabled and not (
        s.notifications_token and s.notifications_token.get_secret_value().strip()
    ):
        problems.append(
            f"{env_name('notifications_token')} is not set: "
            f"{env_name('notifications_enabled')}=true needs it (the endpoint changes referrals; "
            "it is never open): generate one, e.g. `openssl rand -hex 32`, and give it to the "
            "FHIR server's Subscription as channel.header 'Authorization: Bearer <token>'"
        )
    try:  # the worklist's schedule and talking points: checked at start, not on first use
        CheckinConfig.of(s.assessment_schedule, s.assessment_grace_days, s.talking_points_file)
    except ConfigError as exc:
        problems.append(str(exc))
    if s.subscriptions_ensure_at_start and not s.notifications_public_url:
        problems.append(
            f"{env_name('notifications_public_url')} is not set: "
            f"{env_name('subscriptions_ensure_at_start')}=true needs it (the URL the FHIR server "
            "posts notifications to)"
        )
    for name in s.handlers:
        if not isinstance(s.handlers[name], dict):
            problems.append(f"{env_name('handlers')}__{name} must be a table of settings")
    return problems


MASK = "**********"  # what pydantic shows for a SecretStr

# Option names (any nesting, any case) whose values are masked in redacted(). Broad on purpose:
# masking a harmless option costs a little readability, logging a secret costs a rotation.
_SECRET_NAME = re.compile(
    r"pass|secret|token|key|credential|auth|private|signature|cookie|jwt|bearer|sasl_oauth",
    re.IGNORECASE,
)
# Fields whose names match but hold no secret (paths and ids), or hold one already masked.
_NOT_SECRET_FIELDS = frozenset(
    {
        "fhir_auth",
        "fhir_jwt_algorithm",
        "fhir_key_id",
        "fhir_private_key_file",
        "fhir_token_url",
        "kafka_ssl_keyfile",
    }
)


def _redact(value: Any, *, top: bool = True) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            exempt = top and key in _NOT_SECRET_FIELDS
            if item is not None and not exempt and _SECRET_NAME.search(str(key)):
                out[key] = MASK
            else:
                out[key] = _redact(item, top=False)
        return out
    if isinstance(value, list):
        return [_redact(item, top=False) for item in value]
    if isinstance(value, str) and "@" in value and "://" in value:
        return _strip_userinfo(value)
    return value


def strip_userinfo(url: str) -> str:
    """`url` without user:password@ (what may be shown of a URL setting)."""
    return _strip_userinfo(url)


def _strip_userinfo(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # not a URL after all: mask rather than guess
        return MASK
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


if __name__ == "__main__":  # pragma: no cover - regenerates the docs table
    print(reference(), end="")
