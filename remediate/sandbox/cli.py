"""`remediate sandbox ...`: the built-in sandbox org from the command line."""

from __future__ import annotations

import typer

sandbox_app = typer.Typer(help="The built-in sandbox org: a wire-level Salesforce emulator.",
                          no_args_is_help=True)


@sandbox_app.command("scenarios")
def scenarios_command() -> None:
    """List the shipped scenarios, one line each."""
    from remediate.sandbox import scenario

    for name, description in scenario.available().items():
        typer.echo(f"{name:<14} {description}")
