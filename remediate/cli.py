"""The remediate command line. Parses, calls the engine, renders, maps errors to exit codes.

Results go to stdout, logs and errors to stderr. Exit codes (README, "Exit codes"):
0 clean / applied / verified, 2 drift found, 1 failure, 3 refused for safety,
4 verification failed, 64 bad input, 130 interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from remediate import cli_enforce, helpcache
from remediate.cli_base import (
    FORMAT,
    ORG,
    PLAYBOOKS,
    Format,
    app,
    config_app,
    playbook_app,
    run_context,
    sandbox_app,
)
from remediate.cli_base import approve as _approve
from remediate.cli_base import default_org as _default_org
from remediate.cli_base import echo as _echo
from remediate.cli_base import emit as _emit
from remediate.cli_base import journal as _journal
from remediate.cli_base import on_org as _on_org
from remediate.cli_base import open_handle as _open
from remediate.cli_base import refuse_format as _refuse_format
from remediate.cli_base import wants_json as _json

if TYPE_CHECKING:
    from remediate.orgs import OrgHandle

from remediate.errors import (
    EXIT_DRIFT,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RemediateError,
    VerificationFailed,
)


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

    result = _on_org(org, playbook, engine.audit)
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
    # 0 only when every step was checked and matches: drift, manual or unknown all exit 2
    raise typer.Exit(EXIT_OK if result.clean else EXIT_DRIFT)


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
        _report(text.plan(saved, len(result.unknown)), report)
        if saved.automatic:
            _echo(f"apply will cost about {cost} API request(s) of the org's daily allowance.")
        if out is not None:
            _echo(f"\nSaved to {out}. Apply exactly this plan with: remediate apply {out}")
        _echo_unknown(result)
    # 0: the plan was made; with --detailed-exitcode, 2 when any step is not ok (changes,
    # manual changes, or steps that could not be checked)
    raise typer.Exit(EXIT_DRIFT if detailed_exitcode and not result.clean else EXIT_OK)


def _echo_unknown(result: Any) -> None:
    """Steps the plan could not include because they could not be checked."""
    if result.unknown:
        _echo(f"\n{len(result.unknown)} step(s) could not be checked (the plan may be "
              "incomplete):")
        for f in result.unknown:
            _echo(f"    ? {f.playbook}/{f.step}: {f.error}")


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
    handle = _open(org, playbook, lock=True)
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
        safety.guard_lockout(handle, current.plan.automatic, allow_lockout,
                             inventory=current.inventory)
        allowance = safety.check_api_floor(handle, safety.api_cost(current.plan, reads))
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
    _emit({"org": org, "run_id": done.result.run_id, "plan": plan_data(current.plan),
           "applied": [change_data(c) for c in done.result.applied],
           "manual": [change_data(c) for c in done.after.plan.manual],
           "api_allowance": allowance})
    raise typer.Exit(EXIT_DRIFT if done.after.plan.manual or done.after.unknown else EXIT_OK)


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
    if _json():
        from remediate.render import verify_data

        _emit(verify_data(result, org))
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
    if _json():
        from remediate.render import diagnosis_data

        _emit(diagnosis_data(result, org))
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

    _emit({"org": org, "out": str(out), "name": name, "steps": len(data["steps"])})


@app.command()
def doctor(org: str | None = typer.Option(None, "--org", "-o",
                                          help="Org name from remediate.toml, 'demo', or "
                                               "'sandbox:<scenario>'."),
           fmt: Format = FORMAT,
           print_permission_set: bool = typer.Option(
               False, "--print-permission-set",
               help="Print the permission set remediate's own admin user needs "
                    "(a deployable .permissionset-meta.xml) and exit."),
           probe_writes: bool = typer.Option(
               False, "--probe-writes",
               help="Also run the probe that sends DML: a licence and permission set "
                    "assignments in one composite that a failing last subrequest always rolls "
                    "back (allOrNone), so nothing persists.")) -> None:
    """Read-only unless --probe-writes: can remediate work on this org? Sign-in, API version,
    the admin's permissions, objects, apps, API allowance, platform probes. Exit 2 if anything
    is missing, 1 if it cannot sign in."""
    from remediate import doctor as doctors
    from remediate.errors import UsageError

    if print_permission_set:
        typer.echo(doctors.permission_set_xml(), nl=False)
        raise typer.Exit(EXIT_OK)
    if org is None:
        raise UsageError("doctor needs --org NAME (or --print-permission-set)")
    report = _on_org(org, None, lambda h: doctors.run(h, probe_writes=probe_writes))
    if _json(fmt):
        _emit(report.data())
    else:
        _echo(doctors.render_text(report))
    raise typer.Exit(report.exit_code)


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


@sandbox_app.command("scenarios")
def sandbox_scenarios() -> None:
    """List the shipped scenarios, one line each."""
    from remediate import builtin

    found = builtin.scenarios()
    for name, description in found.items():
        _echo(f"{name:<14} {description}")
    _emit([{"name": n, "description": d} for n, d in found.items()])


@sandbox_app.command("reset")
def sandbox_reset(org: str = typer.Option("demo", "--org", "-o")) -> None:
    """Start a built-in sandbox org over from its scenario."""
    from remediate import builtin

    scenario = builtin.reset(org)
    _echo(f"Reset {org}: the next command starts from scenario {scenario!r}.")
    _emit({"org": org, "scenario": scenario})


@sandbox_app.command("status")
def sandbox_status(org: str = typer.Option("demo", "--org", "-o")) -> None:
    """Counters of a built-in sandbox org (requests, writes), as JSON."""
    import json

    from remediate import builtin

    data = builtin.status(org)
    if _json():
        _emit(data)
        return
    _echo(json.dumps(data))


@sandbox_app.command("integration")
def sandbox_integration(name: str, org: str = typer.Option("demo", "--org", "-o"),
                        login_url: str = typer.Option(..., "--login-url")) -> None:
    """Act as the admin of the external system: change the URL an integration signs in to."""
    from remediate import builtin

    builtin.set_login_url(org, name, login_url)
    _echo(f"{name} in {org} now signs in at {login_url}.")
    _emit({"org": org, "integration": name, "login_url": login_url})


@sandbox_app.command("setup-change")
def sandbox_setup_change(
        org: str = typer.Option("demo", "--org", "-o"),
        app_name: str = typer.Option(..., "--app", help="The connected app's API name "
                                     "(ns__Name for an installed one)."),
        settings: list[str] = typer.Option(..., "--set", help="POLICY=VALUE, e.g. "
                                           "permitted_users=admin_approved (repeatable)."),
) -> None:
    """Act as the org's admin in Setup: Edit Policies of a connected app (Manage Connected
    Apps), as a person does for an app installed from a package."""
    from remediate import builtin
    from remediate.errors import UsageError

    pairs: dict[str, str] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set {item!r}: expected POLICY=VALUE")
        pairs[name.strip()] = value.strip()
    changed = builtin.setup_change(org, app_name, pairs)
    for path, before, after in changed:
        _echo(f"{app_name}: {path}: {before!r} -> {after!r}")
    if not changed:
        _echo(f"{app_name}: nothing to change.")
    _emit({"org": org, "app": app_name,
           "changed": [{"field": p, "before": b, "after": a} for p, b, a in changed]})


for _command in cli_enforce.COMMANDS:  # enforce, rollback
    app.command()(_command)
app.add_typer(cli_enforce.history_app, name="history")


def main() -> None:
    """The ``remediate`` script: run the command, then exit without the interpreter's final
    garbage-collection pass over every object the run made (about 0.2 s after an audit,
    issue 17): output is flushed first, the exit code is kept, atexit handlers still run."""
    import contextlib
    import gc

    from remediate import envelope, runcontext, runguard

    argv = sys.argv[1:]
    with runcontext.started():  # this run's options, settings and envelope (issue 13)
        args = envelope.activate(argv)
        try:
            with runguard.guarded():
                code = _run_help(argv) if helpcache.help_request(argv) is not None \
                    else _run(args)
        finally:
            runguard.release_locks()
        envelope.finish(code)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    gc.freeze()  # the objects alive now are never scanned again, not even at exit
    sys.exit(code)


def _run_help(argv: list[str]) -> int:
    """A bare help request (``remediate audit --help``): rendered by typer as always, and what
    it printed kept in the help cache (remediate.helpcache, ADR 0038) when the words name a
    command, so the next identical request is answered without importing typer."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = _run(argv)
    output = buffer.getvalue()
    sys.stdout.write(output)
    words = helpcache.help_request(argv)
    if code == EXIT_OK and words is not None and _command_path(words):
        helpcache.store(argv, output)
    return code


def _command_path(words: tuple[str, ...]) -> bool:
    """Whether ``words`` name a group or command of this CLI, level by level."""
    import typer.core
    import typer.main

    command: object = typer.main.get_command(app)
    for word in words:
        if not isinstance(command, typer.core.TyperGroup):
            return False
        command = command.commands.get(word)
    return command is not None


def _run(args: list[str]) -> int:
    """Run the command; every way it ends becomes an exit code (and, in JSON mode, an error in
    the envelope)."""
    from remediate import envelope
    from remediate.untrusted import for_terminal

    try:
        code = app(args=args, prog_name="remediate", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except typer.Exit as done:
        return done.exit_code
    except RemediateError as err:
        envelope.error(err, err.exit_code)
        typer.echo(for_terminal(f"error: {err.message}"), err=True)
        if err.hint:
            typer.echo(for_terminal(f"hint: {err.hint}"), err=True)
        applied = getattr(err, "applied", None)
        if applied is not None:
            typer.echo(for_terminal(f"applied: {', '.join(applied) or 'nothing'}"), err=True)
            typer.echo(for_terminal("not applied: "
                                    f"{', '.join(getattr(err, 'not_applied', [])) or 'nothing'}"),
                       err=True)
            unknown: list[str] = getattr(err, "unknown", None) or []
            if unknown:
                typer.echo(for_terminal(f"outcome unknown: {', '.join(unknown)}"), err=True)
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

        runguard_internal(exc)
        message = f"internal error ({type(exc).__name__}: {redact_text(str(exc))[:300]})"
        envelope.error(exc, EXIT_FAILURE, message)
        typer.echo(f"error: {message}; please report it", err=True)
        return EXIT_FAILURE


def runguard_internal(exc: BaseException) -> None:
    """A bug in remediate: its traceback goes to the log under -vv, and always to a JSON log."""
    from remediate import runguard

    run = run_context()
    runguard.log_internal(exc, traceback=run.verbose >= 2 or run.log_format == "json",
                          raw=run.verbose >= 2)
