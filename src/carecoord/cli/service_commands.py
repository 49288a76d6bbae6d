"""CLI: `carecoord run`, `carecoord dlq list|replay`.

Settings come from `CARECOORD_*` environment variables and an optional `--config FILE` (see
carecoord.settings). Exit codes (docs/configuration-errors.md): 0 done; 1 failed (a bug, a port in
use, records skipped); 2 a configuration mistake, ONE line naming the setting and the fix; 3 a
server the command needs (the FHIR server, the Kafka broker) is unreachable or failing.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from carecoord.errors import ConfigError
from carecoord.settings import Settings, load_settings

if TYPE_CHECKING:
    from carecoord.events.broker import Broker
    from carecoord.events.dlq import DeadLetter

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML or JSON settings file (also CARECOORD_CONFIG_FILE); env vars override it.",
        show_default=False,
    ),
]

dlq_app = typer.Typer(no_args_is_help=True, help="List and replay dead letters.")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3

# Seconds an interactive command retries an unreachable server before it gives up (the service
# itself uses CARECOORD_FHIR_RETRY_BUDGET, 30 s by default, and then waits out the outage).
CLI_RETRY_BUDGET = 5.0


def config_failure(exc: ConfigError) -> NoReturn:
    """ONE line naming the setting and the fix; exit 2."""
    typer.echo(f"carecoord: configuration error: {_one_line(str(exc))}", err=True)
    raise typer.Exit(EXIT_CONFIG)


def fhir_failure(exc: BaseException, settings: Settings | None = None) -> NoReturn:
    """ONE line saying the FHIR server (its URL without credentials) could not be used, the
    error's type and HTTP status, never its text (a request URL may carry search values); exit 3."""
    from carecoord.settings import strip_userinfo

    url = settings.fhir_base_url if settings is not None else None
    where = f" at {strip_userinfo(url)}" if url else ""
    status = getattr(exc, "status", None)
    what = f"{type(exc).__name__}" + (f", HTTP {status}" if status else "")
    if getattr(exc, "unavailable", False):
        problem = f"the FHIR server{where} is unreachable or unavailable ({what})"
        fix = "check CARECOORD_FHIR_BASE_URL and that the server is up, then try again"
    else:
        problem = f"the FHIR server{where} refused a request ({what})"
        fix = "check CARECOORD_FHIR_AUTH and the server's log"
    typer.echo(f"carecoord: {problem}: {fix}", err=True)
    raise typer.Exit(EXIT_UNAVAILABLE)


def broker_failure(exc: BaseException) -> NoReturn:
    """ONE line saying the Kafka broker could not be used; exit 3."""
    fix = next((f for n, f in _FIXES.items() if n in _class_names(exc)), _FIXES["BrokerError"])
    typer.echo(f"carecoord: {fix}", err=True)
    raise typer.Exit(EXIT_UNAVAILABLE)


@contextmanager
def quiet_retries() -> Iterator[None]:
    """While an interactive command runs, it prints one line when a server is unreachable, not
    one per retry: the FHIR client's "retrying ..." warnings are dropped (the service logs them).
    Removed afterwards: a command run in-process (a test, a notebook) leaves logging as it was."""
    import logging

    fhir_log = logging.getLogger("carecoord.fhir")
    quiet = _NoRetryLines()
    fhir_log.addFilter(quiet)
    try:
        yield
    finally:
        fhir_log.removeFilter(quiet)


class _NoRetryLines:
    def filter(self, record: object) -> bool:
        message = getattr(record, "msg", "")
        return not (isinstance(message, str) and message.startswith("retrying "))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _settings(config: Path | None, *, need_fhir: bool) -> Settings:
    try:
        return load_settings(config, need_fhir=need_fhir)
    except ConfigError as exc:
        config_failure(exc)


def run(config: ConfigOption = None) -> None:
    """Consume events, run the enabled handlers, write FHIR, until SIGTERM/SIGINT."""
    from carecoord.service.app import Service, plugin_periodic_jobs
    from carecoord.service.gc_tuning import tune_gc
    from carecoord.service.logging import configure_logging

    tune_gc()  # this process is the service's own (see carecoord.service.gc_tuning)

    # CARECOORD_LOG_FORMAT from the first line on: a bad setting is reported in that format too.
    configure_logging(fmt=early_log_format(config))
    try:
        settings = load_settings(config, need_fhir=True)
    except ConfigError as exc:
        _run_failed(exc)
    configure_logging(settings.log_level, settings.log_format)
    try:
        service = Service(settings)
        service.add_periodic_jobs(plugin_periodic_jobs(service))

        def stop(signum: int, frame: FrameType | None) -> None:
            service.request_stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        service.run()
    except (Exception, KeyboardInterrupt) as exc:
        _run_failed(exc)


def early_log_format(config: Path | None) -> str:
    """CARECOORD_LOG_FORMAT (or the config file's log_format) before the settings are validated,
    so the error that stops them is a plain line under `text`; JSON unless it says text."""
    import os

    from carecoord.settings import CONFIG_FILE_ENV, env_name, read_config_file

    chosen = os.environ.get(env_name("log_format"))
    path = config or os.environ.get(CONFIG_FILE_ENV)
    if chosen is None and path:
        try:
            chosen = str(read_config_file(Path(path)).get("log_format", ""))
        except ConfigError:  # reported, in JSON, once the settings are loaded
            chosen = None
    return "text" if (chosen or "").strip().lower() == "text" else "json"


# Failures whose cause is outside carecoord, by exception type name (kafka-python is imported
# lazily), with what the operator can do about it.
_FIXES = {
    "NoBrokersAvailable": "the Kafka broker cannot be reached: check CARECOORD_KAFKA_BOOTSTRAP, "
    "that the broker is up, and CARECOORD_KAFKA_SECURITY_PROTOCOL / SASL / SSL settings",
    "KafkaTimeoutError": "the Kafka broker did not answer in time: check "
    "CARECOORD_KAFKA_BOOTSTRAP, that the broker is up, and CARECOORD_KAFKA_SECURITY_PROTOCOL / "
    "SASL / SSL settings",
    "KafkaConnectionError": "the Kafka broker closed the connection: check "
    "CARECOORD_KAFKA_BOOTSTRAP and CARECOORD_KAFKA_SECURITY_PROTOCOL / SASL / SSL settings",
    "BrokerError": "the Kafka broker refused or failed a request: check CARECOORD_KAFKA_BOOTSTRAP, "
    "the broker's health, and CARECOORD_KAFKA_SECURITY_PROTOCOL / SASL / SSL settings",
}


def _run_failed(exc: BaseException) -> NoReturn:
    """One log line (CARECOORD_LOG_FORMAT) naming the problem and the fix, no traceback; exit 2
    for a configuration error, 3 for a broker that cannot be reached, 130 for Ctrl-C, 1
    otherwise."""
    import logging

    from carecoord.errors import CarecoordError

    if isinstance(exc, KeyboardInterrupt):
        code, problem = 130, "interrupted"
    elif isinstance(exc, ConfigError):
        code, problem = EXIT_CONFIG, f"configuration error: {_one_line(str(exc))}"
    else:
        code = EXIT_FAILED
        name = type(exc).__name__
        fix = next((f for n, f in _FIXES.items() if n in _class_names(exc)), None)
        if fix is not None:
            code, problem = EXIT_UNAVAILABLE, fix
        elif isinstance(exc, CarecoordError):  # our messages name ids and the fix, no values
            problem = str(exc)
        else:
            problem = f"unexpected {name} (at {_where(exc)}): please report it"
    logging.getLogger("carecoord.run").error(
        f"carecoord run failed: {problem}",
        extra={"error": type(exc).__name__, "exit_code": code},
    )
    raise typer.Exit(code)


def _where(exc: BaseException) -> str:
    """file:line where `exc` was raised (no message: it may carry payload values)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "unknown"


def _class_names(exc: BaseException) -> set[str]:
    """The exception's class names and its cause's (BrokerError wraps kafka-python's)."""
    causes = [e for e in (exc, exc.__cause__) if e is not None]
    return {cls.__name__ for e in causes for cls in type(e).__mro__}


def _broker(settings: Settings) -> Broker:
    """The Kafka broker of the settings, its bootstrap checked (exit 2) and reachable (exit 3,
    after CLI_RETRY_BUDGET seconds, not kafka-python's 30 s bootstrap timeout)."""
    from carecoord.events.broker import KafkaBroker
    from carecoord.service.app import check_kafka_options, kafka_connection
    from carecoord.settings import check_bootstrap

    try:
        check_bootstrap(settings)
        check_kafka_options(settings)
        broker = KafkaBroker(kafka_connection(settings))
    except ConfigError as exc:
        config_failure(exc)
    wait_for_broker(settings)
    return broker


def wait_for_broker(settings: Settings) -> None:
    """Return once a bootstrap server accepts a TCP connection; else ONE line and exit 3."""
    import socket
    import time

    from carecoord.settings import host_port

    deadline = time.monotonic() + CLI_RETRY_BUDGET
    while True:
        for server in settings.bootstrap_servers():
            host, _, port = host_port(server)
            try:
                with socket.create_connection((host.strip("[]"), int(port)), 2.0):
                    return
            except OSError:
                continue
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    shown = settings.redacted()["kafka_bootstrap"]
    typer.echo(
        f"carecoord: no Kafka broker of CARECOORD_KAFKA_BOOTSTRAP ({shown}) accepts a "
        "connection: check that the broker is up and the host:port",
        err=True,
    )
    raise typer.Exit(EXIT_UNAVAILABLE)


def _kafka_failure(exc: Exception) -> NoReturn:
    """A kafka-python error (by class name: it is imported lazily) or a BrokerError: one line,
    exit 3; anything else is re-raised."""
    if _FIXES.keys() & _class_names(exc) or "KafkaError" in _class_names(exc):
        broker_failure(exc)
    raise exc


@dlq_app.command("list")
def dlq_list(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (oldest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to read the topic.")] = 10.0,
) -> None:
    """List dead letters: where they came from, why, how many attempts (ids only, no payload)."""
    from carecoord.events.dlq import list_dead_letters

    settings = _settings(config, need_fhir=False)
    broker = _broker(settings)
    letters: list[DeadLetter] = []
    total = 0
    try:
        for dl in list_dead_letters(broker, settings.topic_dlq, timeout=timeout):
            total += 1
            if len(letters) < limit:
                letters.append(dl)
    except Exception as exc:
        _kafka_failure(exc)
    if as_json:
        for dl in letters:
            typer.echo(json.dumps(dl.as_dict()))
        return
    if not letters:
        typer.echo(f"no dead letters in {settings.topic_dlq}")
        return
    header = ("PART", "OFFSET", "EVENT TYPE", "EVENT ID", "ERROR", "TRIES", "SOURCE", "MESSAGE")
    rows = [
        (
            str(dl.partition),
            str(dl.offset),
            dl.event_type or "-",
            dl.event_id or "-",
            dl.error_type or "-",
            str(dl.attempts or "-"),
            _source(dl),
            _short(dl.error_message or "", 60) + (" [truncated]" if dl.truncated else ""),
        )
        for dl in letters
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]).rstrip())
    if total > len(letters):
        typer.echo(f"({total - len(letters)} more not shown; use --limit)")


@dlq_app.command("replay")
def dlq_replay(
    config: ConfigOption = None,
    from_offset: Annotated[int | None, typer.Option(help="First dead-letter offset.")] = None,
    to_offset: Annotated[int | None, typer.Option(help="Last dead-letter offset.")] = None,
    error_type: Annotated[str | None, typer.Option(help="Only this error type.")] = None,
    partition: Annotated[int | None, typer.Option(help="Only this dead-letter partition.")] = None,
    to_topic: Annotated[
        str | None, typer.Option(help="Replay here instead of each event's source topic.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be replayed.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to read and produce.")] = 30.0,
) -> None:
    """Re-produce dead letters (original key, bytes, headers) to their source topic."""
    from carecoord.events.dlq import replay

    settings = _settings(config, need_fhir=False)
    broker = _broker(settings)
    try:
        result = replay(
            broker,
            dlq_topic=settings.topic_dlq,
            target_topic=to_topic,
            start_offset=from_offset,
            end_offset=to_offset,
            error_type=error_type,
            partition=partition,
            dry_run=dry_run,
            timeout=timeout,
        )
    except Exception as exc:
        _kafka_failure(exc)
    verb = "would replay" if dry_run else "replayed"
    typer.echo(f"{verb} {len(result.replayed)} dead letter(s)")
    for dl in result.replayed:
        typer.echo(f"  {dl.partition}@{dl.offset} {dl.event_type or '-'} {dl.event_id or '-'}")
    _list_skipped(
        result.skipped_truncated,
        "truncated dead letter(s) (original bytes gone; re-send them from the source system)",
    )
    _list_skipped(
        result.skipped_no_source,
        "dead letter(s) without a source topic (not written by carecoord); replay them with "
        "--to-topic",
    )


def _list_skipped(skipped: Sequence[DeadLetter], what: str) -> None:
    if skipped:
        typer.echo(f"skipped {len(skipped)} {what}:", err=True)
        for dl in skipped:
            typer.echo(f"  {dl.partition}@{dl.offset} {dl.event_id or '-'}", err=True)


def _source(dl: DeadLetter) -> str:
    if dl.source_topic is None:
        return "-"
    return f"{dl.source_topic}/{dl.source_partition}@{dl.source_offset}"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("run")(run)
    app.add_typer(dlq_app, name="dlq")
