"""CLI: `carecoord questionnaires publish`: the instruments' Questionnaires onto the FHIR server."""

from __future__ import annotations

import typer

from carecoord.cli.service_commands import (
    CLI_RETRY_BUDGET,
    ConfigOption,
    config_failure,
    fhir_failure,
    quiet_retries,
)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    questionnaires = typer.Typer(
        no_args_is_help=True, help="The assessment instruments' FHIR Questionnaires."
    )
    questionnaires.command("publish")(publish_command)
    app.add_typer(questionnaires, name="questionnaires")


def publish_command(config: ConfigOption = None) -> None:
    """Put PHQ-9, GAD-7, the Hunger Vital Sign, the AHC HRSN core questions and the carecoord
    check-in on the FHIR server, conditional on each one's url and version: idempotent, a second
    run changes nothing (docs/assessments.md)."""
    from carecoord.caremodel.instruments import publish_questionnaires
    from carecoord.errors import ConfigError
    from carecoord.fhir.errors import FhirError
    from carecoord.service.app import build_fhir_client
    from carecoord.settings import load_settings

    with quiet_retries():
        try:
            settings = load_settings(config, need_fhir=True)
            fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
        except ConfigError as exc:
            config_failure(exc)
        try:
            published = publish_questionnaires(fhir)
        except FhirError as exc:
            fhir_failure(exc, settings)
        finally:
            fhir.close()
    for url, version, outcome in published:
        typer.echo(f"{outcome}\t{url}|{version}")
