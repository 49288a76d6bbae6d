"""Service settings: `CARECOORD_*` environment variables, optionally a TOML or JSON file.

Precedence (highest first): keyword arguments, environment variables, the config file, defaults.
The file is named by `--config FILE` (the `config_file` argument) or `CARECOORD_CONFIG_FILE`; its
keys are the setting names below in lower case without the prefix, e.g. ``kafka_bootstrap =
"broker:9092"``, with per-handler configuration in ``[handlers.<name>]`` tables.

Environment variables (all optional unless marked required):

A mistake is a ConfigError of ONE line naming the variable and the fix, never the value; a file
or JSON variable that does not parse gives the line and column. docs/configuration-errors.md lists
every check `carecoord run` makes at start-up and the commands' exit codes (2: configuration).

Kafka
    CARECOORD_KAFKA_BOOTSTRAP (required)  host:port[,host:port...], each entry with its port
    CARECOORD_TOPIC_IN / CARECOORD_TOPIC_OUT / CARECOORD_TOPIC_DLQ
                                          carecoord.events / carecoord.outbound / carecoord.dlq
    CARECOORD_GROUP_ID                    consumer group, default carecoord
    CARECOORD_CONCURRENCY                 events in flight at once (across patient keys), default 16
    CARECOORD_RETRY_BUDGET                seconds spent retrying one transient failure, default 30
    CARECOORD_DRAIN_TIMEOUT               seconds to finish in-flight work on SIGTERM, default 30
    CARECOORD_KAFKA_SECURITY_PROTOCOL     PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    CARECOORD_KAFKA_SASL_MECHANISM        PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    CARECOORD_KAFKA_SASL_USERNAME / CARECOORD_KAFKA_SASL_PASSWORD (secret)
    CARECOORD_KAFKA_SSL_CAFILE / _CERTFILE / _KEYFILE (PEM paths), CARECOORD_KAFKA_SSL_PASSWORD
    CARECOORD_KAFKA_OPTIONS               JSON object, e.g. {"session_timeout_ms": 6000}. Keys
                                          naming a KafkaConnection field set it: session_timeout_ms
                                          (45000), heartbeat_interval_ms (3000),
                                          max_poll_interval_ms (300000), request_timeout_ms
                                          (30000), max_request_size (8 MiB), fetch_max_bytes
                                          (64 MiB), max_partition_fetch_bytes (8 MiB), client_id;
                                          keys naming a RuntimeOptions field set it
                                          (max_poll_records, create_topics_partitions, ...); any
                                          other key is passed to the kafka-python clients that
                                          take it (a name none takes is a ConfigError)
FHIR
    CARECOORD_FHIR_BASE_URL (required)    e.g. http://127.0.0.1:8080/fhir
    CARECOORD_FHIR_VERSION                R4 (default) | R5
    CARECOORD_FHIR_TIMEOUT / CARECOORD_FHIR_RETRY_BUDGET   seconds, defaults 10 / 30
    CARECOORD_FHIR_AUTH                   none | bearer | client-credentials | smart-backend
    CARECOORD_FHIR_TOKEN (secret)         bearer
    CARECOORD_FHIR_TOKEN_URL, CARECOORD_FHIR_CLIENT_ID, CARECOORD_FHIR_SCOPE
                                          client-credentials and smart-backend
    CARECOORD_FHIR_CLIENT_SECRET (secret) client-credentials
    CARECOORD_FHIR_PRIVATE_KEY_FILE, CARECOORD_FHIR_KEY_ID, CARECOORD_FHIR_JWT_ALGORITHM
                                          smart-backend (PEM key, its kid, RS384 | ES384)
Service
    CARECOORD_HEALTH_HOST / CARECOORD_HEALTH_PORT   /healthz /readyz /metrics, 0.0.0.0:8000
                                          (port 0: any free port)
    CARECOORD_LOG_LEVEL                   DEBUG | INFO | WARNING | ERROR
    CARECOORD_LOG_FORMAT                  json (default) | text
    CARECOORD_SWEEPER_INTERVAL            seconds between sweeps of time-based triggers, default
                                          300; 0 = off
    CARECOORD_HEALTH_CHECK_INTERVAL       seconds between probes of the FHIR server and the broker
                                          while they answer (readiness, outages), default 15
FHIR change notifications (rest-hook, on a listener of their own, never the health port)
    CARECOORD_NOTIFICATIONS_ENABLED       true: accept POST <path> from a FHIR Subscription; false
    CARECOORD_NOTIFICATIONS_TOKEN (secret, required when enabled)
                                          requests need "Authorization: Bearer <token>"
    CARECOORD_NOTIFICATIONS_HOST / CARECOORD_NOTIFICATIONS_PORT   127.0.0.1:8081 (port 0: any
                                          free port); 0.0.0.0 only behind a TLS-terminating proxy
    CARECOORD_NOTIFICATIONS_PATH          default /fhir/notifications
    CARECOORD_NOTIFICATIONS_MAX_BODY_BYTES  largest notification accepted (413 above), 1048576
Handlers
    CARECOORD_HANDLERS_ENABLED            comma-separated names; empty = every discovered handler
    CARECOORD_HANDLERS_DISABLED           comma-separated names to switch off
    CARECOORD_HANDLER_MODULES             comma-separated extra modules exposing HANDLERS
    CARECOORD_HANDLERS__<name>__<key>     per-handler configuration, e.g.
                                          CARECOORD_HANDLERS__outreach__max_unanswered=3; while
                                          the referrals handler is on, `carecoord run` needs
                                          CARECOORD_HANDLERS__referrals__organization (the
                                          practice) or a PractitionerRole/Organization
                                          CARECOORD_HANDLERS__referrals__requester
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

ENV_PREFIX = "CARECOORD_"
CONFIG_FILE_ENV = "CARECOORD_CONFIG_FILE"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
FhirAuthKind = Literal["none", "bearer", "client-credentials", "smart-backend"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

NameList = Annotated[list[str], NoDecode]

# How to fix each setting; used in error messages (which never echo the value: it may be secret).
_HINTS: dict[str, str] = {
    "kafka_bootstrap": "point it at your Kafka brokers, e.g. 127.0.0.1:9092",
    "fhir_base_url": "point it at your FHIR server's base URL, e.g. http://127.0.0.1:8080/fhir",
    "concurrency": "use a whole number from 1 to 1024, e.g. 16",
    "retry_budget": "use a number of seconds above 0, e.g. 30",
    "drain_timeout": "use a number of seconds of 0 or more, e.g. 30",
    "kafka_security_protocol": "use one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
    "kafka_sasl_mechanism": "use one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
    "kafka_options": 'use a JSON object of kafka-python options, e.g. {"session_timeout_ms": 6000}',
    "fhir_version": "use R4 or R5",
    "fhir_auth": "use one of none, bearer, client-credentials, smart-backend",
    "fhir_timeout": "use a number of seconds above 0, e.g. 10",
    "fhir_retry_budget": "use a number of seconds of 0 or more, e.g. 30",
    "fhir_jwt_algorithm": "use RS384 or ES384",
    "health_port": "use a TCP port from 0 to 65535 (0 picks a free one), e.g. 8000",
    "log_level": "use one of DEBUG, INFO, WARNING, ERROR",
    "log_format": "use json or text",
    "sweeper_interval": "use a number of seconds of 0 (off) or more, e.g. 300",
    "health_check_interval": "use a number of seconds above 0, e.g. 15",
    "notifications_path": "use a URL path starting with /, e.g. /fhir/notifications",
    "notifications_enabled": "use true or false",
    "notifications_port": "use a TCP port from 0 to 65535 (0 picks a free one), e.g. 8081",
    "notifications_max_body_bytes": "use a number of bytes from 1024 up, e.g. 1048576 (1 MiB)",
    "handlers": "set CARECOORD_HANDLERS__<handler>__<key>=value or a [handlers.<handler>] table",
}


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

    config_file: Path | None = None

    # Kafka
    kafka_bootstrap: str = Field(min_length=1)
    topic_in: str = Field("carecoord.events", min_length=1)
    topic_out: str = Field("carecoord.outbound", min_length=1)
    topic_dlq: str = Field("carecoord.dlq", min_length=1)
    group_id: str = Field("carecoord", min_length=1)
    concurrency: int = Field(16, ge=1, le=1024)
    retry_budget: float = Field(30.0, gt=0)
    drain_timeout: float = Field(30.0, ge=0)
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_options: dict[str, Any] = Field(default_factory=dict)

    # FHIR
    # Required by `carecoord run` (load_settings(need_fhir=True)); the dlq commands do without.
    fhir_base_url: str | None = None
    fhir_version: Literal["R4", "R5"] = "R4"
    fhir_timeout: float = Field(10.0, gt=0)
    fhir_retry_budget: float = Field(30.0, ge=0)
    fhir_auth: FhirAuthKind = "none"
    fhir_token: SecretStr | None = None
    fhir_token_url: str | None = None
    fhir_client_id: str | None = None
    fhir_client_secret: SecretStr | None = None
    fhir_scope: str | None = None
    fhir_private_key_file: Path | None = None
    fhir_key_id: str | None = None
    fhir_jwt_algorithm: Literal["RS384", "ES384"] = "RS384"

    # Service
    health_host: str = "0.0.0.0"
    health_port: int = Field(8000, ge=0, le=65535)
    log_level: LogLevel = "INFO"
    log_format: Literal["json", "text"] = "json"
    sweeper_interval: float = Field(300.0, ge=0)  # 0: no sweeper in `carecoord run`
    # Seconds between probes of the FHIR server and the broker while they answer (readiness).
    health_check_interval: float = Field(15.0, gt=0)

    # FHIR change notifications (carecoord.service.notification_endpoint)
    notifications_enabled: bool = False
    notifications_path: str = Field("/fhir/notifications", pattern=r"^/[A-Za-z0-9/_\-.$]*$")
    notifications_token: SecretStr | None = None
    # Its own listener, local by default: the data-changing endpoint is never exposed by accident
    # (the health port is usually reachable cluster-wide for probes).
    notifications_host: str = "127.0.0.1"
    notifications_port: int = Field(8081, ge=0, le=65535)
    # A notification bundle with one full Task is a few KB; 1 MiB leaves room for batches.
    notifications_max_body_bytes: int = Field(1024 * 1024, ge=1024)

    # Handlers
    handlers_enabled: NameList = Field(default_factory=list)
    handlers_disabled: NameList = Field(default_factory=list)
    handler_modules: NameList = Field(default_factory=list)
    handlers: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("handlers_enabled", "handlers_disabled", "handler_modules", mode="before")
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
