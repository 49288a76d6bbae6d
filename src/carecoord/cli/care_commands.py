"""CLI: `carecoord sweep`, `carecoord directory import` / `sync`, `carecoord worklist`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from carecoord.cli.service_commands import (
    CLI_RETRY_BUDGET,
    EXIT_CONFIG,
    EXIT_UNAVAILABLE,
    ConfigOption,
    broker_failure,
    config_failure,
    fhir_failure,
    quiet_retries,
    wait_for_broker,
)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    register_sweep(app)
    register_directory(app)
    register_worklist(app)


def register_sweep(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)


def sweep_command(
    config: ConfigOption = None,
    now: Annotated[
        datetime | None,
        typer.Option(
            "--now", help="Sweep as of this time (ISO 8601, UTC if no offset); default: now."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the event ids; produce nothing.")
    ] = False,
) -> None:
    """Produce the time-based triggers due now (outreach due / nearly overdue, tasks overdue) to
    the input topic. Idempotent: safe to run from cron every few minutes."""
    from carecoord.errors import ConfigError
    from carecoord.events.broker import BrokerError, KafkaBroker
    from carecoord.events.producer import EventProducer
    from carecoord.fhir.errors import FhirError
    from carecoord.handlers.jobs.sweeper import sweep, sweep_config
    from carecoord.service.app import (
        build_fhir_client,
        check_kafka_options,
        handlers_from_settings,
        kafka_connection,
    )
    from carecoord.settings import check_bootstrap, load_settings

    with quiet_retries():
        try:
            settings = load_settings(config, need_fhir=True)
            handler_config = sweep_config(handlers_from_settings(settings).configs)
            if not dry_run:
                check_bootstrap(settings)
                check_kafka_options(settings)
        except ConfigError as exc:
            config_failure(exc)
        when = now or datetime.now(UTC)
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
        try:
            events = sweep(fhir, when, handler_config)
        except FhirError as exc:
            fhir_failure(exc, settings)
        finally:
            fhir.close()
        for event in events:
            typer.echo(event.id)
        if dry_run or not events:
            typer.echo(f"{len(events)} event(s) due", err=True)
            return
        wait_for_broker(settings)
        try:
            producer = KafkaBroker(kafka_connection(settings)).producer()
            try:
                EventProducer(producer, settings.topic_in).publish(events)
            finally:
                producer.close()
        except BrokerError as exc:
            broker_failure(exc)
        typer.echo(f"{len(events)} event(s) produced to {settings.topic_in}", err=True)


def register_directory(app: typer.Typer) -> None:
    directory = typer.Typer(no_args_is_help=True, help="The community resource directory.")
    directory.command("import")(directory_import_command)
    directory.command("sync")(directory_sync_command)
    app.add_typer(directory, name="directory")


def directory_import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="Open Referral HSDS 3.0 JSON (a service, an organization with its services, a "
            "list or an API page) or a tabular export folder (CSV datapackage)."
        ),
    ],
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Map and report problems; write nothing.")
    ] = False,
    taxonomy_map: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy-map",
            help="JSON/TOML object of taxonomy term -> Gravity SDOH domain added to the built-in "
            "211/AIRS map (also CARECOORD_DIRECTORY_TAXONOMY_MAP).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load an HSDS export into HealthcareService, Organization and Location. Idempotent: a
    re-import updates what changed and never duplicates. Records that cannot be imported are
    listed with the reason and skipped; the exit status is 1 when any was skipped."""
    import json

    from carecoord.directory.hsds import HsdsRecordError, ImportReport, import_directory, map_export
    from carecoord.directory.tabular import HsdsTabularError, is_datapackage, read_datapackage
    from carecoord.errors import ConfigError
    from carecoord.fhir.errors import FhirError
    from carecoord.service.app import build_fhir_client
    from carecoord.settings import load_settings, parse_position

    with quiet_retries():
        try:
            mapping = _taxonomy_map(taxonomy_map)
            if is_datapackage(file):
                data = read_datapackage(file)
            else:
                data = json.loads(file.read_text(encoding="utf-8"))
        except ConfigError as exc:
            config_failure(exc)
        except HsdsTabularError as exc:
            typer.echo(f"carecoord: {file}: {exc.message}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            typer.echo(f"carecoord: {file} is not valid JSON ({parse_position(exc)})", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        except OSError as exc:
            typer.echo(
                f"carecoord: cannot read {file}: {exc.strerror or type(exc).__name__}", err=True
            )
            raise typer.Exit(EXIT_CONFIG) from exc
        settings = None
        try:
            if dry_run:
                records, problems = map_export(data, mapping)
                report = ImportReport(problems=problems)
                report.count_unmapped(records)
                report.unchanged.extend(f"HealthcareService/{r.hsds_id}" for r in records)
            else:
                # Only FHIR is used here: a Kafka bootstrap is not required for this command.
                settings = load_settings(config, need_fhir=True, **_fhir_only_overrides(config))
                fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
                try:
                    report = import_directory(fhir, data, mapping)
                finally:
                    fhir.close()
        except ConfigError as exc:
            config_failure(exc)
        except HsdsRecordError as exc:
            typer.echo(f"carecoord: {file}: {exc.message}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        except FhirError as exc:
            fhir_failure(exc, settings)
        _print_report(report, dry_run=dry_run)


def _print_report(report: Any, *, dry_run: bool = False) -> None:
    for problem in report.problems:
        typer.echo(f"skipped service {problem.record}: {problem.reason}", err=True)
    for label, count in sorted(report.unmapped_terms.items()):
        typer.echo(
            f"unmapped taxonomy term {label} ({count} service(s)): no Gravity SDOH domain; "
            "add it with --taxonomy-map",
            err=True,
        )
    if dry_run:
        typer.echo(f"{report.imported} service(s) valid; {len(report.problems)} skipped")
    else:
        typer.echo(
            f"{report.imported} service(s) imported: {len(report.created)} resource(s) created, "
            f"{len(report.updated)} updated, {len(report.unchanged)} unchanged; "
            f"{len(report.problems)} skipped"
        )
    if report.problems:
        raise typer.Exit(1)


def _taxonomy_map(path: Path | None) -> dict[str, str] | None:
    import os

    from carecoord.directory.taxonomy import load_taxonomy_map

    chosen = path or (
        Path(os.environ["CARECOORD_DIRECTORY_TAXONOMY_MAP"])
        if os.environ.get("CARECOORD_DIRECTORY_TAXONOMY_MAP")
        else None
    )
    if chosen is None:
        return None
    from carecoord.errors import ConfigError
    from carecoord.settings import parse_position

    try:
        return load_taxonomy_map(chosen)
    except ConfigError as exc:
        cause = exc.__cause__
        if cause is None or isinstance(cause, OSError):
            raise
        raise ConfigError(
            f"the taxonomy map {chosen} does not parse ({parse_position(cause)}): fix the file "
            "there (--taxonomy-map / CARECOORD_DIRECTORY_TAXONOMY_MAP)"
        ) from cause


def directory_sync_command(
    url: Annotated[str, typer.Argument(help="Base URL of an HSDS 3.0 API (serves /services).")],
    config: ConfigOption = None,
    taxonomy_map: Annotated[
        Path | None,
        typer.Option(
            "--taxonomy-map",
            help="JSON/TOML object of taxonomy term -> Gravity SDOH domain (also "
            "CARECOORD_DIRECTORY_TAXONOMY_MAP).",
            show_default=False,
        ),
    ] = None,
    per_page: Annotated[int, typer.Option("--per-page", min=1, max=1000)] = 50,
) -> None:
    """Read every service of a live HSDS 3.0 API (paged) into the directory, as `directory
    import` does. Idempotent: run it as often as the API changes."""
    from carecoord.directory.hsds import HsdsRecordError
    from carecoord.directory.sync import HsdsApiError, sync_directory
    from carecoord.errors import ConfigError
    from carecoord.fhir.errors import FhirError
    from carecoord.service.app import build_fhir_client
    from carecoord.settings import load_settings

    if not url.startswith(("http://", "https://")):
        typer.echo("carecoord: the HSDS API URL must be http:// or https://", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with quiet_retries():
        settings = None
        try:
            mapping = _taxonomy_map(taxonomy_map)
            settings = load_settings(config, need_fhir=True, **_fhir_only_overrides(config))
            fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
            try:
                report = sync_directory(fhir, url, taxonomy=mapping, per_page=per_page)
            finally:
                fhir.close()
        except ConfigError as exc:
            config_failure(exc)
        except HsdsApiError as exc:  # the API cannot be read: a server the command needs
            typer.echo(f"carecoord: sync stopped: {exc.message}", err=True)
            raise typer.Exit(EXIT_UNAVAILABLE) from exc
        except HsdsRecordError as exc:
            typer.echo(f"carecoord: sync stopped: {exc.message}", err=True)
            raise typer.Exit(EXIT_CONFIG) from exc
        except FhirError as exc:
            fhir_failure(exc, settings)
        _print_report(report)


def _fhir_only_overrides(config: Path | None) -> dict[str, str]:
    """`directory import` talks to FHIR only: without any Kafka setting, fill in a placeholder
    so the settings validate (it is never connected to)."""
    import os

    if config is not None or os.environ.get("CARECOORD_KAFKA_BOOTSTRAP"):
        return {}
    return {"kafka_bootstrap": "unused.invalid:9092"}


def register_worklist(app: typer.Typer) -> None:
    app.command("worklist")(worklist_command)


def worklist_command(
    care_manager: Annotated[
        str,
        typer.Option(
            "--care-manager", help="The care manager, e.g. Practitioner/cm-1.", show_default=False
        ),
    ],
    day: Annotated[
        datetime | None,
        typer.Option(
            "--date",
            formats=["%Y-%m-%d"],
            help="The day of the list (YYYY-MM-DD); default: today (UTC).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    config: ConfigOption = None,
) -> None:
    """The care manager's call list for the day, most urgent first: overdue TCM deadlines,
    overdue clinical questions, escalations, answers to relay, outreach not yet reached, due
    assessments, and the minutes still needed for the next billing code; with check-in talking
    points per patient. Reads FHIR only; writes nothing."""
    import json
    import re

    from carecoord.errors import ConfigError
    from carecoord.fhir.errors import FhirError
    from carecoord.handlers.jobs.worklist import table, worklist
    from carecoord.handlers.jobs.worklist_checkins import CheckinConfig
    from carecoord.service.app import build_fhir_client, handlers_from_settings
    from carecoord.settings import load_settings

    if not re.fullmatch(r"(Practitioner|PractitionerRole)/[A-Za-z0-9\-.]{1,64}", care_manager):
        typer.echo("carecoord: --care-manager must be Practitioner/<id>", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with quiet_retries():
        try:
            settings = load_settings(config, need_fhir=True, **_fhir_only_overrides(config))
            billing = handlers_from_settings(settings).configs.get("billing", {})
            checkins = CheckinConfig.of(
                settings.assessment_schedule,
                settings.assessment_grace_days,
                settings.talking_points_file,
            )
        except ConfigError as exc:
            config_failure(exc)
        on: date | None = day.date() if day is not None else None
        fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
        try:
            result = worklist(fhir, care_manager, on, config=billing, checkins=checkins)
        except FhirError as exc:
            fhir_failure(exc, settings)
        finally:
            fhir.close()
        typer.echo(json.dumps(result.to_json(), indent=2) if as_json else table(result))
