"""CLI: `carecoord subscriptions ensure|list|remove` — carecoord's own FHIR Subscriptions
(carecoord.service.subscriptions says what is registered; docs/subscriptions.md).

Exit codes as the other commands: 0 done, 2 a configuration mistake (one line naming the setting),
3 the FHIR server unreachable or refusing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from carecoord.cli.care_commands import _fhir_only_overrides
from carecoord.cli.service_commands import (
    CLI_RETRY_BUDGET,
    ConfigOption,
    config_failure,
    fhir_failure,
    quiet_retries,
)

if TYPE_CHECKING:
    from carecoord.fhir.client import FhirClient
    from carecoord.settings import Settings

subscriptions_app = typer.Typer(
    no_args_is_help=True, help="Register, list and remove carecoord's FHIR Subscriptions."
)


def register(app: typer.Typer) -> None:
    app.add_typer(subscriptions_app, name="subscriptions")


@contextmanager
def _fhir(config: ConfigOption) -> Iterator[tuple[Settings, FhirClient]]:
    from carecoord.errors import ConfigError
    from carecoord.fhir.errors import FhirError
    from carecoord.service.app import build_fhir_client
    from carecoord.settings import load_settings

    with quiet_retries():
        settings = None
        try:
            settings = load_settings(config, need_fhir=True, **_fhir_only_overrides(config))
            fhir = build_fhir_client(settings, retry_budget=CLI_RETRY_BUDGET)
            try:
                yield settings, fhir
            finally:
                fhir.close()
        except ConfigError as exc:
            config_failure(exc)
        except FhirError as exc:
            fhir_failure(exc, settings)


@subscriptions_app.command("ensure")
def ensure_command(config: ConfigOption = None) -> None:
    """Create or update carecoord's Subscriptions (one per kind), idempotently; remove those of
    kinds no longer configured."""
    from carecoord.service.subscriptions import ensure

    with _fhir(config) as (settings, fhir):
        report = ensure(settings, fhir)
    for what, ids in (
        ("created", report.created),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("removed", report.removed),
    ):
        for sub_id in ids:
            typer.echo(f"{what}\tSubscription/{sub_id}")


@subscriptions_app.command("list")
def list_command(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """carecoord's Subscriptions: kind, id, status, type, events the server counts."""
    from carecoord.fhir.errors import FhirError
    from carecoord.service.subscriptions import manager

    with _fhir(config) as (_, fhir):
        subs = manager(fhir)
        rows: list[dict[str, object]] = []
        for reg in subs.registered():
            since: int | None = None
            if reg.shape == "topic":
                try:
                    info = subs.status(reg.id)
                except FhirError:  # $status is a SHALL of the IG, yet absent on some servers
                    info = None
                since = info.events_since_start if info else None
            rows.append(
                {
                    "kind": reg.key,
                    "id": reg.id,
                    "status": reg.status,
                    "type": reg.shape,
                    "events_since_start": since,
                    "error": reg.error,
                }
            )
    show: Callable[[dict[str, object]], str] = (
        json.dumps
        if as_json
        else lambda r: "\t".join(
            str(r[k] if r[k] is not None else "-")
            for k in ("kind", "id", "status", "type", "events_since_start")
        )
    )
    for row in rows:
        typer.echo(show(row))


@subscriptions_app.command("remove")
def remove_command(
    kinds: Annotated[
        list[str] | None, typer.Argument(help="Kinds to remove (default: all of carecoord's).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Delete carecoord's Subscriptions (those tagged as carecoord's only)."""
    from carecoord.service.subscriptions import remove

    with _fhir(config) as (_, fhir):
        gone = remove(fhir, kinds or ())
    for sub_id in gone:
        typer.echo(f"removed\tSubscription/{sub_id}")
