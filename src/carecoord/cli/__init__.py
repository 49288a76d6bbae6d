"""The `carecoord` command. Subcommands live beside the code they drive."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Care coordination on FHIR and Kafka.")


@app.callback()
def _root() -> None:
    """Care coordination on FHIR and Kafka."""


@app.command()
def version() -> None:
    """Print the carecoord version."""
    from carecoord import __version__

    typer.echo(__version__)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def demo(ctx: typer.Context) -> None:
    """A month of a care-management practice through the real service (--help for options)."""
    from carecoord.demo.main import main as demo_main

    demo_main(ctx.args)


def _register() -> None:
    from carecoord.cli import (
        assessment_commands,
        catalog_commands,
        local_command,
        subscription_commands,
    )
    from carecoord.cli import care_commands as handler_commands
    from carecoord.cli import service_commands as event_commands

    event_commands.register(app)
    handler_commands.register(app)
    catalog_commands.register(app)
    local_command.register(app)
    assessment_commands.register(app)
    subscription_commands.register(app)


_register()


def main() -> None:  # pragma: no cover - console entry point
    app()
