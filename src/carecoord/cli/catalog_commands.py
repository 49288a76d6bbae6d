"""`carecoord catalog asyncapi`: the event contract as an AsyncAPI 3.0 document."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
import yaml

from carecoord.events.asyncapi import asyncapi_document

catalog_app = typer.Typer(no_args_is_help=True, help="The v1 event catalog.")


class Format(StrEnum):
    yaml = "yaml"
    json = "json"


def render(document: dict[str, object], fmt: Format) -> str:
    if fmt is Format.json:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


@catalog_app.command("asyncapi")
def asyncapi(
    fmt: Annotated[Format, typer.Option("--format", help="yaml or json")] = Format.yaml,
    topic_in: Annotated[str, typer.Option(help="the input topic")] = "carecoord.events",
    topic_out: Annotated[str, typer.Option(help="the outbound topic")] = "carecoord.outbound",
    topic_dlq: Annotated[str, typer.Option(help="the dead-letter topic")] = "carecoord.dlq",
) -> None:
    """Print the AsyncAPI 3.0 document of carecoord's topics and event types."""
    document = asyncapi_document(topic_in=topic_in, topic_out=topic_out, topic_dlq=topic_dlq)
    typer.echo(render(document, fmt), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
