"""The remediate command line. Parses, calls the engine, renders, maps errors to exit codes.

Results go to stdout, logs and errors to stderr. Exit codes (README, "Exit codes"):
0 clean / applied / verified, 2 drift found, 1 failure, 3 refused for safety,
4 verification failed, 64 bad input, 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from remediate.errors import (
    EXIT_DRIFT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    NotApproved,
    RemediateError,
    VerificationFailed,
)
from remediate.sandbox.cli import sandbox_app

if TYPE_CHECKING:
    from remediate.orgs import OrgHandle
    from remediate.settings import Settings


T = TypeVar("T")


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


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
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich costs more than the rest of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(sandbox_app, name="sandbox")
playbook_app = typer.Typer(help="Validate playbooks and export their JSON Schema.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(playbook_app, name="playbook")


class _State:
    config: Path | None = None
    settings: Settings | None = None


STATE = _State()

ORG = typer.Option(..., "--org", "-o", help="Org name from remediate.toml, 'demo', or "
                                            "'sandbox:<scenario>'.")
PLAYBOOKS = typer.Option(None, "--playbook", "-p",
                         help="Only these bound playbooks (repeatable).")
FORMAT = typer.Option(Format.text, "--format", "-f", help="Output format.")


@app.callback()
def _main(
    config: Path | None = typer.Option(None, "--config", "-c", envvar="REMEDIATE_CONFIG",
                                       help="Configuration file (default ./remediate.toml)."),
    log_format: str = typer.Option("auto", "--log-format",
                                   help="Logs on stderr: auto (console on a terminal, JSON "
                                        "otherwise), console or json."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
) -> None:
    from remediate.logging import configure

    level = {0: "warning", 1: "info"}.get(verbose, "debug")
    configure(log_format, level)
    STATE.config = config


def _settings() -> Settings:
    from remediate.logging import get_logger
    from remediate.settings import load_settings

    if STATE.settings is None:
        STATE.settings, warnings = load_settings(STATE.config)
        for w in warnings:
            get_logger().warning("config.readable_by_others", detail=w)
    return STATE.settings


def _open(org: str, playbooks: list[str] | None) -> OrgHandle:
    from remediate.orgs import open_org

    base = STATE.config.parent if STATE.config else None
    return open_org(org, _settings(), only=playbooks or None, config_dir=base)


def _on_org(org: str, playbooks: list[str] | None, action: Callable[[OrgHandle], T]) -> T:
    """Open the org, run one engine action on it, and always close it (built-in orgs save
    their state on close)."""
    handle = _open(org, playbooks)
    try:
        return action(handle)
    finally:
        handle.close()


def _journal() -> Any:
    from remediate.journal import Journal

    return Journal(_settings().journal_path)


def _echo(text: str) -> None:
    typer.echo(text)


# ---- commands ------------------------------------------------------------------------------


@app.command()
def audit(org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
          fmt: Format = FORMAT) -> None:
    """Detect drift: each playbook step, ok or not, with what differs. Exit 2 on drift."""
    import json

    from remediate import engine
    from remediate.render import assessment_data, markdown, text

    result = _on_org(org, playbook, engine.assess)
    if fmt is Format.json:
        _echo(json.dumps(assessment_data(result, org), indent=2, default=str))
    elif fmt is Format.markdown:
        _echo(markdown.audit(result, org))
    else:
        _echo(text.audit(result, org))
    raise typer.Exit(EXIT_DRIFT if result.drift else EXIT_OK)


@app.command()
def plan(org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
         out: Path | None = typer.Option(None, "--out", help="Save the plan for 'apply FILE'."),
         fmt: Format = FORMAT) -> None:
    """Dry run: the changes apply would make, before and after per field. Exit 2 if any."""
    import json

    from remediate import engine
    from remediate.render import markdown, plan_data, text

    result = _on_org(org, playbook, engine.assess)
    if out is not None:
        result.plan.save(out)
    if fmt is Format.json:
        _echo(json.dumps(plan_data(result.plan), indent=2, default=str))
    elif fmt is Format.markdown:
        _echo(markdown.plan(result.plan))
    else:
        _echo(text.plan(result.plan))
        if out is not None:
            _echo(f"\nSaved to {out}. Apply exactly this plan with: remediate apply {out} "
                  f"--org {org}")
    raise typer.Exit(EXIT_DRIFT if not result.plan.empty else EXIT_OK)


@app.command()
def apply(plan_file: Path | None = typer.Argument(None, help="A plan saved by 'plan --out'."),
          org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
          yes: bool = typer.Option(False, "--yes", "-y", help="Approve without asking."),
          allow_production: bool = typer.Option(False, "--allow-production",
                                                help="Apply to a production org not marked "
                                                     "'production = true'."),
          ) -> None:
    """Show the diff, ask for approval, make the changes, then re-read to confirm."""
    from remediate import engine
    from remediate.plan import Plan
    from remediate.render import text

    saved = Plan.load(plan_file) if plan_file is not None else None
    handle = _open(org, playbook)
    handle.gateway.full_metadata = True  # read whole components it may write back (ADR 0010)
    try:
        current = engine.assess(handle)
        if saved is not None:
            engine.check_plan(saved, current, handle)
        if not current.plan.automatic:
            _echo(text.plan(current.plan))
            _echo("\nNothing for remediate to apply.")
            raise typer.Exit(EXIT_DRIFT if current.plan.manual else EXIT_OK)
        engine.guard_production(handle, current.org, allow_production)
        _echo(text.plan(current.plan))
        approval = _approve(yes)
        result = engine.apply(handle, current, approval, _journal())
        _echo("")
        _echo(text.applied(result))
        handle.gateway.full_metadata = False
        after = engine.assess(handle)
        if after.plan.automatic:
            raise VerificationFailed(
                f"after apply, {len(after.plan.automatic)} change(s) are still pending: "
                + "; ".join(c.label() for c in after.plan.automatic))
    finally:
        handle.close()
    _echo("Re-read after apply: no automatic changes remain. Run 'remediate verify' to prove "
          "the integrations can sign in.")
    raise typer.Exit(EXIT_DRIFT if after.plan.manual else EXIT_OK)


def _approve(yes: bool) -> Any:
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


@app.command()
def verify(org: str = ORG, playbook: list[str] | None = PLAYBOOKS) -> None:
    """Re-read the org (no difference may remain) and sign in as each integration."""
    from remediate import engine
    from remediate.render import text

    result = _on_org(org, playbook, engine.verify)
    _echo(text.verified(result))
    if not result.ok:
        raise VerificationFailed("verification failed (see above)")


@app.command()
def diagnose(org: str = ORG, error: str | None = typer.Option(
        None, "--error", "-e", help="The error an integration or a user saw."),
        playbook: list[str] | None = PLAYBOOKS) -> None:
    """Name the cause of a failure, the evidence, and the step that fixes it."""
    from remediate import engine
    from remediate.render import text

    result = _on_org(org, playbook, lambda h: engine.diagnose(h, error))
    _echo(text.diagnosed(result))


@app.command()
def snapshot(org: str = ORG, out: Path = typer.Option(..., "--out", help="Playbook to write."),
             name: str = typer.Option("baseline", "--name", help="Name of the new playbook."),
             playbook: list[str] | None = PLAYBOOKS) -> None:
    """Capture a working org as a baseline playbook; later drift from it is cause C12."""
    import yaml

    from remediate import engine

    data = _on_org(org, playbook, lambda h: engine.snapshot(h, name))
    header = (f"# Baseline captured by 'remediate snapshot --org {org}'. Bind it to an org "
              "with no variables:\n#   [orgs.<name>.playbooks.\"" + str(out) + "\"]\n")
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                   encoding="utf-8")
    _echo(f"Wrote {out} ({len(data['steps'])} steps).")


@app.command()
def doctor(org: str | None = typer.Option(None, "--org", "-o",
                                          help="Org name from remediate.toml, 'demo', or "
                                               "'sandbox:<scenario>'."),
           fmt: Format = FORMAT,
           print_permission_set: bool = typer.Option(
               False, "--print-permission-set",
               help="Print the permission set remediate's own admin user needs "
                    "(a deployable .permissionset-meta.xml) and exit.")) -> None:
    """Read-only: can remediate work on this org? Sign-in, API version, the admin's
    permissions, objects, apps, API allowance, platform probes. Exit 2 if anything is missing,
    1 if it cannot sign in."""
    import json

    from remediate import doctor as doctors
    from remediate.errors import UsageError

    if print_permission_set:
        typer.echo(doctors.permission_set_xml(), nl=False)
        raise typer.Exit(EXIT_OK)
    if org is None:
        raise UsageError("doctor needs --org NAME (or --print-permission-set)")
    report = _on_org(org, None, doctors.run)
    if fmt is Format.json:
        _echo(json.dumps(report.data(), indent=2, default=str))
    else:
        _echo(doctors.render_text(report))
    raise typer.Exit(report.exit_code)


@app.command()
def kinds() -> None:
    """List the step kinds playbooks can use."""
    from remediate.steps.base import kinds as registry

    for name, kind in sorted(registry().items()):
        _echo(f"{name:<26} {'/'.join(kind.causes):<5} {kind.summary}")


@playbook_app.command("validate")
def playbook_validate(paths: list[Path]) -> None:
    """Check playbooks for structure, step kinds and variables."""
    from remediate import playbook as playbooks

    for path in paths:
        loaded = playbooks.load(path)
        _echo(f"{path}: ok ({len(loaded.model.steps)} steps)")


@playbook_app.command("schema")
def playbook_schema() -> None:
    """Print the playbook format's JSON Schema."""
    import json

    from remediate import playbook as playbooks

    _echo(json.dumps(playbooks.json_schema(), indent=2, sort_keys=True))


@app.command()
def demo() -> None:
    """The whole story on the built-in demo org: audit, plan, approve, apply, verify."""
    from remediate import engine
    from remediate.orgs import sandbox_state_path
    from remediate.render import text

    sandbox_state_path("demo").unlink(missing_ok=True)
    handle = _open("demo", None)
    try:
        _echo("== 0. the symptom: both integrations try to sign in to the demo org ==\n")
        before = engine.verify(handle)
        errors = []
        for name, token in before.tokens:
            if token.ok:
                _echo(f"  {name}: signed in")
                continue
            error = (f"{token.error}: {token.error_description}" if token.status != 200
                     else f"{token.api_error} (HTTP {token.api_status} on its first API call)")
            errors.append(error)
            _echo(f"  {name}: FAILED: {error}")
        for error in errors:
            _echo(f"\n$ remediate diagnose --org demo --error \"{error}\"")
            _echo(text.diagnosed(engine.diagnose(handle, error)))
        _echo("\n== 1. audit: everything that drifted from the playbooks ==\n")
        current = engine.assess(handle)
        _echo(text.audit(current, "demo"))
        _echo("\n== 2. plan: the exact changes ==\n")
        _echo(text.plan(current.plan))
        _echo("\n== 3. approve and apply ==")
        if sys.stdin.isatty():
            approval = _approve(False)
        else:
            _echo("(no terminal to ask on: approving automatically, as this is the sandbox)")
            approval = engine.approval("flag")
        result = engine.apply(handle, current, approval, _journal())
        _echo(text.applied(result))
        _echo("\n== 4. verify: re-read, and sign in as each integration ==\n")
        verified = engine.verify(handle)
        _echo(text.verified(verified))
    finally:
        handle.close()
    _echo("\nThe demo org keeps its state: try 'remediate audit --org demo', "
          "'remediate sandbox reset --org demo', or another scenario with "
          "'--org sandbox:c3-app-not-granted' ('remediate sandbox scenarios' lists them).")
    if not verified.ok:
        raise VerificationFailed("the demo did not verify")


# ---- sandbox commands that act on the built-in orgs ---------------------------------------


@sandbox_app.command("reset")
def sandbox_reset(org: str = typer.Option("demo", "--org", "-o")) -> None:
    """Start a built-in sandbox org over from its scenario."""
    from remediate.errors import UsageError
    from remediate.orgs import builtin_scenario, is_builtin, sandbox_state_path

    if not is_builtin(org):
        raise UsageError(f"{org!r} is not a built-in sandbox org (demo or sandbox:<scenario>)")
    sandbox_state_path(builtin_scenario(org)).unlink(missing_ok=True)
    _echo(f"Reset {org}: the next command starts from scenario {builtin_scenario(org)!r}.")


@sandbox_app.command("status")
def sandbox_status(org: str = typer.Option("demo", "--org", "-o")) -> None:
    """Counters of a built-in sandbox org (requests, writes), as JSON."""
    import json

    from remediate.errors import UsageError
    from remediate.orgs import builtin_scenario, is_builtin, sandbox_state_path
    from remediate.sandbox import persist

    if not is_builtin(org):
        raise UsageError(f"{org!r} is not a built-in sandbox org (demo or sandbox:<scenario>)")
    path = sandbox_state_path(builtin_scenario(org))
    extra = persist.load(path)[1] if path.exists() else {}
    _echo(json.dumps({"org": org, "state": str(path), "saved": path.exists(),
                      "writes": extra.get("writes", 0), "requests": extra.get("requests", 0)}))


@sandbox_app.command("integration")
def sandbox_integration(name: str, org: str = typer.Option("demo", "--org", "-o"),
                        login_url: str = typer.Option(..., "--login-url")) -> None:
    """Act as the admin of the external system: change the URL an integration signs in to."""
    from remediate.errors import UsageError
    from remediate.orgs import is_builtin

    if not is_builtin(org):
        raise UsageError(f"{org!r} is not a built-in sandbox org (demo or sandbox:<scenario>)")
    handle = _open(org, None)
    handle.extra.setdefault("integrations", {}).setdefault(name, {})["login_url"] = login_url
    handle.close()
    _echo(f"{name} in {org} now signs in at {login_url}.")


def main() -> None:
    """The ``remediate`` script: run the command, then exit without the interpreter's final
    garbage-collection pass over every object the run made (about 0.2 s after an audit,
    issue 17): output is flushed first, the exit code is kept, atexit handlers still run."""
    try:
        _run()
    except SystemExit:
        import contextlib
        import gc

        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()

        gc.freeze()  # the objects alive now are never scanned again, not even at exit
        raise


def _run() -> None:
    STATE.settings = None
    STATE.config = None
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else EXIT_OK)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except RemediateError as err:
        typer.echo(f"error: {err.message}", err=True)
        if err.hint:
            typer.echo(f"hint: {err.hint}", err=True)
        applied = getattr(err, "applied", None)
        if applied is not None:
            typer.echo(f"applied: {', '.join(applied) or 'nothing'}", err=True)
            typer.echo(f"not applied: {', '.join(getattr(err, 'not_applied', [])) or 'nothing'}",
                       err=True)
            unknown: list[str] = getattr(err, "unknown", None) or []
            if unknown:
                typer.echo(f"outcome unknown: {', '.join(unknown)}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if isinstance(exc, typer.Abort):
            sys.exit(EXIT_INTERRUPTED)
        if isinstance(exc, typer.TyperException):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                typer.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)
        from remediate.logging import redact_text

        typer.echo(f"error: internal error ({type(exc).__name__}: {redact_text(str(exc))[:300]})"
                   "; please report it", err=True)
        sys.exit(EXIT_FAILURE)


from remediate import cli_enforce as _cli_enforce  # noqa: E402, F401  (registers enforce, history, rollback)
