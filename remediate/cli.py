"""The remediate command line. Parses, calls the engine, renders, maps errors to exit codes.

Results go to stdout, logs and errors to stderr. Exit codes (README, "Exit codes"):
0 clean / applied / verified, 2 drift found, 1 failure, 3 refused for safety,
4 verification failed, 64 bad input, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from remediate import cli_enforce
from remediate.cli_base import (
    FORMAT,
    ORG,
    PLAYBOOKS,
    STATE,
    Format,
    app,
    playbook_app,
    sandbox_app,
)
from remediate.cli_base import approve as _approve
from remediate.cli_base import echo as _echo
from remediate.cli_base import journal as _journal
from remediate.cli_base import on_org as _on_org
from remediate.cli_base import open_handle as _open
from remediate.errors import (
    EXIT_DRIFT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RemediateError,
    VerificationFailed,
)

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
    # 0 only when every step was checked and matches: drift, manual or unknown all exit 2
    raise typer.Exit(EXIT_OK if result.clean else EXIT_DRIFT)


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
        _echo(text.plan(result.plan, len(result.unknown)))
        if out is not None:
            _echo(f"\nSaved to {out}. Apply exactly this plan with: remediate apply {out} "
                  f"--org {org}")
        _echo_unknown(result)
    raise typer.Exit(EXIT_OK if result.clean else EXIT_DRIFT)


def _echo_unknown(result: Any) -> None:
    """Steps the plan could not include because they could not be checked."""
    if result.unknown:
        _echo(f"\n{len(result.unknown)} step(s) could not be checked (the plan may be "
              "incomplete):")
        for f in result.unknown:
            _echo(f"    ? {f.playbook}/{f.step}: {f.error}")


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
    try:
        current = engine.assess_to_apply(handle)
        if saved is not None:
            engine.check_plan(saved, current, handle)
        if not current.plan.automatic:
            _echo(text.plan(current.plan))
            _echo("\nNothing for remediate to apply.")
            raise typer.Exit(EXIT_DRIFT if current.plan.manual else EXIT_OK)
        engine.guard_production(handle, current.org, allow_production)
        _echo(text.plan(current.plan))
        approval = _approve(yes)
        done = engine.apply_and_verify(
            handle, current, approval, _journal(), sign_in=False,
            on_applied=lambda result: _echo("\n" + text.applied(result)))
        done.require_no_automatic_left("apply")
    finally:
        handle.close()
    _echo("Re-read after apply: no automatic changes remain. Run 'remediate verify' to prove "
          "the integrations can sign in.")
    _echo_unknown(done.after)
    raise typer.Exit(EXIT_DRIFT if done.after.plan.manual or done.after.unknown else EXIT_OK)


@app.command()
def verify(org: str = ORG, playbook: list[str] | None = PLAYBOOKS,
           reread_only: bool = typer.Option(
               False, "--reread-only",
               help="Only re-read the org; sign in as no integration.")) -> None:
    """Re-read the org (no difference may remain) and sign in as each integration.
    Exit 0 only when every bound integration signed in (or with --reread-only)."""
    from remediate import engine
    from remediate.render import text

    result = _on_org(org, playbook, lambda h: engine.verify(h, reread_only=reread_only))
    _echo(text.verified(result))
    if not result.ok:
        raise VerificationFailed("verification failed (see above)")


@app.command()
def diagnose(org: str = ORG, error: str | None = typer.Option(
        None, "--error", "-e", help="The error an integration or a user saw."),
        playbook: list[str] | None = PLAYBOOKS,
        since: str | None = typer.Option(
            None, "--since", help="Only Login History failures since then: an ISO date/time "
                                  "(UTC unless it says) or an age such as 90m, 12h, 7d.")) -> None:
    """Name the cause of a failure, the evidence, and the step that fixes it.
    Exit 0 only when it names a cause; 2 when it cannot."""
    from remediate import engine
    from remediate.render import text

    after = _parse_since(since) if since is not None else None
    result = _on_org(org, playbook, lambda h: engine.diagnose(h, error, after))
    _echo(text.diagnosed(result))
    raise typer.Exit(EXIT_OK if result.named else EXIT_DRIFT)


def _parse_since(text: str) -> Any:
    import re
    from datetime import UTC, datetime, timedelta

    from remediate.errors import UsageError

    age = re.fullmatch(r"(\d+)([mhd])", text.strip())
    if age:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r}: expected an ISO date/time (2026-01-31T09:00) or an "
                         "age such as 90m, 12h, 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@app.command()
def snapshot(org: str = ORG, out: Path = typer.Option(..., "--out", help="Playbook to write."),
             name: str = typer.Option("baseline", "--name", help="Name of the new playbook."),
             playbook: list[str] | None = PLAYBOOKS,
             force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
             capture_drift: bool = typer.Option(
                 False, "--capture-drift",
                 help="Capture an org that drifts from its bound playbooks anyway.")) -> None:
    """Capture a working org as a baseline playbook; later drift from it is cause C12.
    Refuses (exit 3) an org that drifts, unless --capture-drift, and an existing --out file,
    unless --force."""
    import yaml

    from remediate import engine
    from remediate.errors import SafetyRefusal

    if out.exists() and not force:
        raise SafetyRefusal(f"{out} already exists; nothing was written",
                            hint="pass --force to overwrite it, or choose another --out")
    data = _on_org(org, playbook,
                   lambda h: engine.snapshot(h, name, capture_drift=capture_drift))
    header = (f"# Baseline captured by 'remediate snapshot --org {org}'. Bind it to an org "
              "with no variables:\n#   [orgs.<name>.playbooks.\"" + str(out) + "\"]\n")
    out.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
                   encoding="utf-8")
    _echo(f"Wrote {out} ({len(data['steps'])} steps).")
    if "Not captured" in data["description"]:
        _echo("Not captured" + data["description"].split(" Not captured", 1)[1])


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
    from remediate import builtin, engine
    from remediate.render import text

    builtin.reset("demo")
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
        done = engine.apply_and_verify(
            handle, current, approval, _journal(), sign_in=True,
            on_applied=lambda result: _echo(text.applied(result) + "\n\n== 4. verify: re-read, "
                                            "and sign in as each integration ==\n"))
        assert done.verified is not None
        verified = done.verified
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
    from remediate import builtin

    scenario = builtin.reset(org)
    _echo(f"Reset {org}: the next command starts from scenario {scenario!r}.")


@sandbox_app.command("status")
def sandbox_status(org: str = typer.Option("demo", "--org", "-o")) -> None:
    """Counters of a built-in sandbox org (requests, writes), as JSON."""
    import json

    from remediate import builtin

    _echo(json.dumps(builtin.status(org)))


@sandbox_app.command("integration")
def sandbox_integration(name: str, org: str = typer.Option("demo", "--org", "-o"),
                        login_url: str = typer.Option(..., "--login-url")) -> None:
    """Act as the admin of the external system: change the URL an integration signs in to."""
    from remediate import builtin

    builtin.set_login_url(org, name, login_url)
    _echo(f"{name} in {org} now signs in at {login_url}.")


for _command in cli_enforce.COMMANDS:  # enforce, history, rollback
    app.command()(_command)


def main() -> None:
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

