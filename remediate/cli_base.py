"""What every remediate command shares: the Typer app, its options, the settings, opening an org,
the journal, output and approval. remediate.cli and remediate.cli_enforce register their
commands on ``app``; this module imports neither (ADR 0074).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from remediate.builtin import sandbox_cli
from remediate.errors import NotApproved

if TYPE_CHECKING:
    from remediate.orgs import OrgHandle
    from remediate.runcontext import RunContext
    from remediate.settings import Settings


T = TypeVar("T")


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"
    sarif = "sarif"
    junit = "junit"


class _Group(typer.core.TyperGroup):
    """The top-level group, with a fast path for ``remediate COMMAND --help``: click would first
    process the group's own options (and typer imports pydantic to coerce them) and run the
    group callback (which configures logging); help needs neither (issue 17, start-up)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        head = args[:args.index("--")] if "--" in args else args
        if len(head) >= 2 and not head[0].startswith("-") and {"-h", "--help"} & set(head[1:]):
            parent, group, depth = ctx, self, 0
            cmd = group.get_command(ctx, head[0])
            # A group (sandbox, playbook): walk down to the subcommand named after it, with a
            # context per level (for the usage line) and no parsing of the levels between.
            while isinstance(cmd, typer.core.TyperGroup) and len(head) > depth + 1 \
                    and not head[depth + 1].startswith("-"):
                inner = cmd.get_command(parent, head[depth + 1])
                if inner is None:
                    break
                parent = cmd.context_class(cmd, info_name=head[depth], parent=parent)
                cmd, depth = inner, depth + 1
            if cmd is not None:
                # Parsing prints the help and exits; if it does not (``--help`` was an
                # option's value), the normal path below runs.
                cmd.make_context(head[depth], list(args[depth + 1:]), parent=parent)
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="remediate",
    cls=_Group,
    help="Keep Salesforce server-to-server integrations working: audit, plan, apply, verify.",
    no_args_is_help=True,
    add_completion=True,  # typer's --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich costs more than the rest of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
)
sandbox_app = sandbox_cli()
app.add_typer(sandbox_app, name="sandbox")
playbook_app = typer.Typer(help="Validate playbooks and export their JSON Schema.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(playbook_app, name="playbook")
config_app = typer.Typer(help="The configuration file's reference.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(config_app, name="config")


def default_org(value: str | None) -> str:
    """--org, else REMEDIATE_ORG, else remediate.toml's ``default_org``; else bad input."""
    import os

    from remediate.errors import UsageError

    if value:
        return value
    found = os.environ.get("REMEDIATE_ORG") or settings().default_org
    if not found:
        raise UsageError("no org given: pass --org NAME, set REMEDIATE_ORG, or set default_org "
                         "in remediate.toml")
    return found


ORG = typer.Option(None, "--org", "-o", callback=default_org,
                   help="Org name from remediate.toml, 'demo', or 'sandbox:<scenario>' "
                        "(default: REMEDIATE_ORG, or default_org in remediate.toml).")
PLAYBOOKS = typer.Option(None, "--playbook", "-p",
                         help="Only these bound playbooks (repeatable).")
FORMAT = typer.Option(Format.text, "--format", "-f", help="Output format.")


def _show_version(value: bool) -> None:
    if value:
        from remediate import __version__, envelope

        envelope.set_result({"version": __version__})
        echo(f"remediate {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", "-c", envvar="REMEDIATE_CONFIG",
                                       help="Configuration file (default ./remediate.toml)."),
    log_format: str = typer.Option("auto", "--log-format",
                                   help="Logs on stderr: auto (console on a terminal, JSON "
                                        "otherwise), console or json."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print remediate's version and exit."),
    as_json: bool = typer.Option(False, "--json", help="Every command: print one JSON envelope "
                                                       "(docs/json.md); same as --format json."),
    in_flight: int | None = typer.Option(None, "--in-flight", min=1, max=25,
                                         help="Requests one org may have in flight at once "
                                              "(default: the in_flight setting, 25)."),
) -> None:
    from remediate import runcontext
    from remediate.logging import configure

    level = {0: "warning", 1: "info"}.get(verbose, "debug")
    configure(log_format, level)
    # main() started this run; app() called on its own (typer's CliRunner) gets a run of its
    # own, ended when the command's context closes
    run = runcontext.active() or ctx.with_resource(runcontext.started())
    run.config = config
    run.verbose = verbose
    run.log_format = log_format
    run.in_flight = in_flight


def run_context() -> RunContext:
    """This invocation's context (remediate.runcontext)."""
    from remediate import runcontext

    return runcontext.current()


def settings() -> Settings:
    from remediate.logging import get_logger
    from remediate.settings import load_settings

    run = run_context()
    if run.settings is None:
        run.settings, warnings = load_settings(run.config)
        for w in warnings:
            get_logger().warning("config.readable_by_others", detail=w)
            envelope_module().warn(w)
    return run.settings


def open_handle(org: str, playbooks: list[str] | None, *, lock: bool = False) -> OrgHandle:
    """Open the org; ``lock`` first takes the org's lock (the one ``enforce`` takes) for the
    rest of the command, or refuses with exit 75 when another run holds it."""
    from remediate.orgs import open_org

    if lock:
        from remediate import runguard

        runguard.lock_org(org)

    run = run_context()
    base = run.config.parent if run.config else None
    return open_org(org, settings(), only=playbooks or None, config_dir=base,
                    in_flight=run.in_flight)


def on_org(org: str, playbooks: list[str] | None, action: Callable[[OrgHandle], T]) -> T:
    """Open the org, run one engine action on it, and always close it (built-in orgs save
    their state on close)."""
    handle = open_handle(org, playbooks)
    try:
        return action(handle)
    finally:
        handle.close()


def journal() -> Any:
    from remediate.journal import Journal

    return Journal(settings().journal_path)


def echo(text: str) -> None:
    from remediate.untrusted import for_terminal

    text = for_terminal(text)  # text from an org or a server may carry escape sequences
    if not envelope_module().active() and sys.stdout.isatty():
        from remediate.colour import paint

        text = paint(text)
    typer.echo(text)


def envelope_module() -> Any:
    from remediate import envelope

    return envelope


def emit(data: Any) -> None:
    """A command's data, for the JSON envelope: kept as its result in JSON mode (``--json`` or
    ``--format json``, which main() turns into the envelope); in text mode the command has
    already printed its text, and nothing more is printed."""
    if envelope_module().active():
        envelope_module().set_result(data)


def wants_json(fmt: Format | None = None) -> bool:
    return bool(envelope_module().active() or fmt is Format.json)


def refuse_format(fmt: Format, allowed: tuple[Format, ...], command: str) -> None:
    from remediate.errors import UsageError

    if fmt not in allowed and not envelope_module().active():
        raise UsageError(f"--format {fmt.value}: not supported by '{command}' (it supports "
                         + ", ".join(f.value for f in allowed) + ")")


def approve(yes: bool) -> Any:
    from remediate import engine

    if yes:
        return engine.approval("flag")
    try:
        ok = typer.confirm("\nApply these changes?", default=False, err=True)
    except typer.Abort:
        ok = False
    if not ok:
        raise NotApproved("not approved; nothing was written")
    return engine.approval("prompt")
