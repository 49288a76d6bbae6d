"""CLI: `carecoord sweep`, `carecoord directory import`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    register_sweep(app)


def register_sweep(app: typer.Typer) -> None:
    app.command("sweep")(sweep_command)


def sweep_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML or JSON settings file (also CARECOORD_CONFIG_FILE); env vars override it.",
            show_default=False,
        ),
    ] = None,
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
    from carecoord.events.broker import KafkaBroker
    from carecoord.events.producer import EventProducer
    from carecoord.handlers.loader import handlers_from_settings
    from carecoord.handlers.sweeper import sweep, sweep_config
    from carecoord.service.app import build_fhir_client, runtime_options
    from carecoord.settings import load_settings

    try:
        settings = load_settings(config, need_fhir=True)
        handler_config = sweep_config(handlers_from_settings(settings).configs)
    except ConfigError as exc:
        typer.echo(f"carecoord: configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc
    when = now or datetime.now(UTC)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    fhir = build_fhir_client(settings)
    try:
        events = sweep(fhir, when, handler_config)
    finally:
        fhir.close()
    for event in events:
        typer.echo(event.id)
    if dry_run or not events:
        typer.echo(f"{len(events)} event(s) due", err=True)
        return
    producer = KafkaBroker(runtime_options(settings).connection).producer()
    try:
        EventProducer(producer, settings.topic_in).publish(events)
    finally:
        producer.close()
    typer.echo(f"{len(events)} event(s) produced to {settings.topic_in}", err=True)
