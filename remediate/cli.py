"""The remediate command line. Parses, calls the engine, renders, maps errors to exit codes."""

from __future__ import annotations

import typer

from remediate.sandbox.cli import sandbox_app

app = typer.Typer(
    name="remediate",
    help="Keep Salesforce server-to-server integrations working: audit, plan, apply, verify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox")


def main() -> None:
    app()
