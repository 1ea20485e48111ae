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
    html = "html"
    sarif = "sarif"
    junit = "junit"


app = typer.Typer(
    name="remediate",
    help="Keep Salesforce server-to-server integrations working: audit, plan, apply, verify.",
    no_args_is_help=True,
    add_completion=True,  # typer's --install-completion / --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: importing rich costs more than the rest of start-up
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(sandbox_app, name="sandbox")
playbook_app = typer.Typer(help="Validate playbooks and export their JSON Schema.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(playbook_app, name="playbook")
config_app = typer.Typer(help="The configuration file's reference.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(config_app, name="config")


class _State:
    config: Path | None = None
    settings: Settings | None = None


STATE = _State()

def _default_org(value: str | None) -> str:
    """--org, else REMEDIATE_ORG, else remediate.toml's ``default_org``; else bad input."""
    import os

    from remediate.errors import UsageError

    if value:
        return value
    found = os.environ.get("REMEDIATE_ORG") or _settings().default_org
    if not found:
        raise UsageError("no org given: pass --org NAME, set REMEDIATE_ORG, or set default_org "
                         "in remediate.toml")
    return found


ORG = typer.Option(None, "--org", "-o", callback=_default_org,
                   help="Org name from remediate.toml, 'demo', or 'sandbox:<scenario>' "
                        "(default: REMEDIATE_ORG, or default_org in remediate.toml).")
PLAYBOOKS = typer.Option(None, "--playbook", "-p",
                         help="Only these bound playbooks (repeatable).")
FORMAT = typer.Option(Format.text, "--format", "-f", help="Output format.")


def _show_version(value: bool) -> None:
    if value:
        from remediate import __version__, envelope

        envelope.set_result({"version": __version__})
        _echo(f"remediate {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _main(
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
            _envelope().warn(w)
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
    if not _envelope().active() and sys.stdout.isatty():
        from remediate.colour import paint

        text = paint(text)
    typer.echo(text)


def _envelope() -> Any:
    from remediate import envelope

    return envelope


def _emit(data: Any) -> None:
    """A command's data: into the JSON envelope, or (called outside main()) printed as JSON."""
    import json

    if _envelope().active():
        _envelope().set_result(data)
    else:
        _echo(json.dumps(data, indent=2, default=str))


def _json(fmt: Format | None = None) -> bool:
    return bool(_envelope().active() or fmt is Format.json)


def _refuse_format(fmt: Format, allowed: tuple[Format, ...], command: str) -> None:
    from remediate.errors import UsageError

    if fmt not in allowed and not _envelope().active():
        raise UsageError(f"--format {fmt.value}: not supported by '{command}' (it supports "
                         + ", ".join(f.value for f in allowed) + ")")


def _report(text: str, out: Path | None) -> None:
    """A report on stdout, or written to ``out``."""
    if out is None:
        typer.echo(text)
        return
    try:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        from remediate.errors import UsageError

        raise UsageError(f"{out}: cannot write the report ({exc.strerror})") from None
    _echo(f"Wrote {out}.")


# ---- commands ------------------------------------------------------------------------------


@app.command()
def audit(org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
          fmt: Format = FORMAT,
          out: Path | None = typer.Option(None, "--out", help="Write the report (markdown, "
                                          "html, sarif, junit) to FILE instead of stdout.")
          ) -> None:
    """Detect drift: each playbook step, ok or not, with what differs. Exit 2 on drift."""
    from remediate import engine
    from remediate.render import assessment_data, markdown, reports, text

    result = _on_org(org, playbook, engine.assess)
    if _json(fmt):
        _emit(assessment_data(result, org))
    elif fmt is Format.markdown:
        _report(markdown.audit(result, org), out)
    elif fmt is Format.html:
        _report(reports.audit_html(result, org), out)
    elif fmt is Format.sarif:
        _report(reports.sarif(result, org), out)
    elif fmt is Format.junit:
        _report(reports.junit(result, org), out)
    else:
        _report(text.audit(result, org), out)
    raise typer.Exit(EXIT_DRIFT if result.drift else EXIT_OK)


@app.command()
def plan(org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
         out: Path | None = typer.Option(None, "--out", help="Save the plan for 'apply FILE'."),
         fmt: Format = FORMAT,
         report: Path | None = typer.Option(None, "--report", help="Write the markdown or html "
                                            "report to FILE instead of stdout."),
         detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                                help="Exit 2 when there are changes (as "
                                                     "terraform plan -detailed-exitcode).")
         ) -> None:
    """Dry run: the changes apply would make, before and after per field. Exit 0 (2 for
    changes with --detailed-exitcode)."""
    from remediate.render import markdown, plan_data, reports, text

    _refuse_format(fmt, (Format.text, Format.json, Format.markdown, Format.html), "plan")
    result, cost = _on_org(org, playbook, _assess_costed)
    saved = result.plan.model_copy(update={"playbooks": tuple(playbook) if playbook else None,
                                           "api_requests": cost})
    if out is not None:
        saved.save(out)
    if _json(fmt):
        _emit(plan_data(saved))
    elif fmt is Format.markdown:
        _report(markdown.plan(saved), report)
    elif fmt is Format.html:
        _report(reports.plan_html(saved), report)
    else:
        _report(text.plan(saved), report)
        if saved.automatic:
            _echo(f"apply will cost about {cost} API request(s) of the org's daily allowance.")
        if out is not None:
            _echo(f"\nSaved to {out}. Apply exactly this plan with: remediate apply {out}")
    raise typer.Exit(EXIT_DRIFT if detailed_exitcode and not result.plan.empty else EXIT_OK)


def _assess_costed(handle: OrgHandle) -> Any:
    from remediate import engine, safety

    current = engine.assess(handle)
    return current, safety.api_cost(current.plan, handle.gateway.round_trips)


@app.command()
def apply(plan_file: Path | None = typer.Argument(None, help="A plan saved by 'plan --out' "
                                                  "(it names its org and playbooks)."),
          org: str | None = typer.Option(None, "--org", "-o",
                                         help="Org name (default: the plan file's, else "
                                              "REMEDIATE_ORG or default_org)."),
          playbook: list[str] | None = PLAYBOOKS,
          yes: bool = typer.Option(False, "--yes", "-y", help="Approve without asking."),
          allow_production: bool = typer.Option(False, "--allow-production",
                                                help="Apply to a production org not marked "
                                                     "'production = true'."),
          allow_lockout: bool = typer.Option(False, "--allow-lockout",
                                             help="Apply a change that takes access from "
                                                  "remediate's own sign-in or another "
                                                  "integration's."),
          ) -> None:
    """Show the diff, ask for approval, make the changes, then re-read to confirm."""
    from remediate import engine, safety
    from remediate.plan import Plan
    from remediate.render import change_data, plan_data, text

    saved = Plan.load(plan_file) if plan_file is not None else None
    if saved is not None:
        org, playbook = _plan_selection(saved, plan_file, org, playbook)
    org = _default_org(org)
    handle = _open(org, playbook)
    handle.gateway.full_metadata = True  # read whole components it may write back (ADR 0010)
    try:
        current = engine.assess(handle)
        reads = handle.gateway.round_trips
        if saved is not None:
            engine.check_plan(saved, current, handle)
        if not current.plan.automatic:
            _echo(text.plan(current.plan))
            _echo("\nNothing for remediate to apply.")
            _emit({"org": org, "plan": plan_data(current.plan), "applied": [], "run_id": None})
            raise typer.Exit(EXIT_DRIFT if current.plan.manual else EXIT_OK)
        engine.guard_production(handle, current.org, allow_production)
        safety.guard_lockout(handle, current.plan.automatic, allow_lockout)
        allowance = safety.check_api_floor(handle, safety.api_cost(current.plan, reads))
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
    _emit({"org": org, "run_id": result.run_id, "plan": plan_data(current.plan),
           "applied": [change_data(c) for c in result.applied],
           "manual": [change_data(c) for c in after.plan.manual], "api_allowance": allowance})
    raise typer.Exit(EXIT_DRIFT if after.plan.manual else EXIT_OK)


def _plan_selection(saved: Any, path: Path | None, org: str | None,
                    playbook: list[str] | None) -> tuple[str, list[str] | None]:
    """A plan file names its org and playbook selection; refuse flags that say otherwise."""
    from remediate.errors import UsageError

    if org is not None and org != saved.org:
        raise UsageError(f"{path}: the plan is for org {saved.org!r}, not {org!r} (--org); "
                         "drop --org, or make a plan for that org")
    chosen = list(saved.playbooks) if saved.playbooks else None
    if playbook and sorted(playbook) != sorted(chosen or []):
        raise UsageError(f"{path}: the plan covers playbooks "
                         f"{', '.join(chosen) if chosen else '(all bound)'}, not "
                         f"{', '.join(playbook)} (-p); drop -p, or make a new plan")
    return saved.org, chosen


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
    if _json():
        from remediate.render import verify_data

        _emit(verify_data(result, org))
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
    if _json():
        from remediate.render import diagnosis_data

        _emit(diagnosis_data(result, org))


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
    _emit({"org": org, "out": str(out), "name": name, "steps": len(data["steps"])})


@app.command()
def kinds() -> None:
    """List the step kinds playbooks can use."""
    from remediate.steps.base import kinds as registry

    found = sorted(registry().items())
    for name, kind in found:
        _echo(f"{name:<26} {'/'.join(kind.causes):<5} {kind.summary}")
    _emit([{"kind": name, "causes": list(kind.causes), "summary": kind.summary}
           for name, kind in found])


@playbook_app.command("validate")
def playbook_validate(paths: list[Path]) -> None:
    """Check playbooks for structure, step kinds and variables."""
    from remediate import playbook as playbooks

    checked = []
    for path in paths:
        loaded = playbooks.load(path)
        _echo(f"{path}: ok ({len(loaded.model.steps)} steps)")
        checked.append({"path": str(path), "ok": True, "steps": len(loaded.model.steps)})
    _emit(checked)


@playbook_app.command("schema")
def playbook_schema() -> None:
    """Print the playbook format's JSON Schema."""
    import json

    from remediate import playbook as playbooks

    if _json():
        _emit(playbooks.json_schema())
        return
    _echo(json.dumps(playbooks.json_schema(), indent=2, sort_keys=True))


@config_app.command("reference")
def config_reference() -> None:
    """Print docs/configuration.md: every remediate.toml key, its type and default."""
    from remediate.config_reference import render

    reference = render()
    _emit({"markdown": reference}) if _json() else typer.echo(reference)


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
    _emit({"org": org, "scenario": builtin_scenario(org)})


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
    data = {"org": org, "state": str(path), "saved": path.exists(),
            "writes": extra.get("writes", 0), "requests": extra.get("requests", 0)}
    if _json():
        _emit(data)
        return
    _echo(json.dumps(data))


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
    _emit({"org": org, "integration": name, "login_url": login_url})


def main() -> None:
    from remediate import envelope

    STATE.settings = None
    STATE.config = None
    envelope.reset()
    args = envelope.activate(sys.argv[1:])
    code = _run(args)
    envelope.finish(code)
    sys.exit(code)


def _run(args: list[str]) -> int:
    """Run the command; every way it ends becomes an exit code (and, in JSON mode, an error in
    the envelope)."""
    from remediate import envelope

    try:
        code = app(args=args, prog_name="remediate", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except typer.Exit as done:
        return done.exit_code
    except RemediateError as err:
        envelope.error(err, err.exit_code)
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
        return err.exit_code
    except KeyboardInterrupt as exc:
        envelope.error(exc, EXIT_INTERRUPTED, "interrupted")
        typer.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if isinstance(exc, typer.Abort):
            envelope.error(exc, EXIT_INTERRUPTED, "aborted")
            return EXIT_INTERRUPTED
        if isinstance(exc, typer.TyperException):
            fmt = getattr(exc, "format_message", None)
            envelope.error(exc, EXIT_USAGE, fmt() if callable(fmt) else str(exc))
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                typer.echo(f"error: {exc}", err=True)
            return EXIT_USAGE
        from remediate.logging import redact_text

        message = f"internal error ({type(exc).__name__}: {redact_text(str(exc))[:300]})"
        envelope.error(exc, EXIT_FAILURE, message)
        typer.echo(f"error: {message}; please report it", err=True)
        return EXIT_FAILURE


from remediate import cli_enforce as _cli_enforce  # noqa: E402, F401  (registers enforce, history, rollback)
