"""``remediate enforce``, ``history`` and ``rollback``: the commands for unattended runs.

remediate.cli registers ``COMMANDS`` and ``history_app`` after its own (so ``--help`` lists them
last).
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

import typer

from remediate.cli_base import FORMAT, Format
from remediate.cli_base import approve as _approve
from remediate.cli_base import echo as _echo
from remediate.cli_base import emit as _emit
from remediate.cli_base import journal as _journal
from remediate.cli_base import open_handle as _open
from remediate.cli_base import refuse_format as _refuse_format
from remediate.cli_base import settings as _settings
from remediate.cli_base import wants_json as _json
from remediate.errors import EXIT_DRIFT, EXIT_OK, UsageError

if TYPE_CHECKING:
    from remediate.enforce import FleetReport
    from remediate.history import RunSummary

ORGS = typer.Option(None, "--org", "-o", help="An org to enforce (repeatable).")
ALL = typer.Option(False, "--all", help="Every org in remediate.toml's [orgs] and [enforce.orgs].")
SHARD = typer.Option(None, "--shard", help="Only shard I of N (I/N, I from 0): orgs split by a "
                                           "hash of their name.")
WORKERS = typer.Option(None, "--workers", min=1, max=64,
                       help="Orgs worked on at once in each process (default [enforce] "
                            "workers, 16).")
PROCESSES = typer.Option(None, "--processes", min=1, max=64,
                         help="Processes across cores, each with --workers orgs at once "
                              "(default [enforce] processes, else the cores available).")
HISTORY_ORG = typer.Option(None, "--org", "-o", help="Only this org's runs.")
LIMIT = typer.Option(50, "--limit", min=1, help="The last N runs.")
RUN_ID = typer.Argument(..., help="A run id from 'remediate history'.")
YES = typer.Option(False, "--yes", "-y", help="Approve without asking.")
ALLOW_PRODUCTION = typer.Option(False, "--allow-production",
                                help="Roll back on a production org not marked "
                                     "'production = true'.")
ALLOW_LOCKOUT = typer.Option(False, "--allow-lockout",
                             help="Roll back a change that takes access from remediate's own "
                                  "sign-in or another integration's.")


def enforce(org: list[str] | None = ORGS, all_orgs: bool = ALL, shard: str | None = SHARD,
            workers: int | None = WORKERS, fmt: Format = FORMAT,
            processes: int | None = PROCESSES) -> None:
    """One unattended pass for cron: lock, audit, apply what the policy approves, verify,
    journal, notify. Exit code: the worst org's (0 clean/fixed, 2 pending approval,
    3 refused, 1 failed, 75 locked)."""
    from remediate import enforce as enforcement
    from remediate import fleet
    from remediate.notify import Notifier

    _refuse_format(fmt, (Format.text, Format.json), "enforce")
    settings = _settings()
    if bool(org) == all_orgs:
        raise UsageError("name the orgs to enforce with --org (repeatable), or pass --all")
    names = list(dict.fromkeys(org or [])) if org else \
        sorted(set(settings.orgs) | set(settings.enforce.orgs))
    if not names:
        raise UsageError(f"--all found no org to enforce: {_config_looked_at()} defines no "
                         "[orgs.<name>] and no [enforce.orgs.\"<name>\"]")
    if shard is not None:
        index, count = enforcement.parse_shard(shard)
        names = enforcement.select_shard(names, index, count)
    targets = [enforcement.Target(name, partial(_open, name, None),
                                  enforcement.policy_for(name, settings)) for name in names]
    for target in targets:  # every policy is checked before any org is touched
        enforcement.check_policy(target.name, target.policy, _bound_steps(target.name))
    result = fleet.run_fleet(targets, journal=_journal(),
                             processes=processes or settings.enforce.processes,
                             workers=workers or settings.enforce.workers,
                             kill=enforcement.kill_switch(settings), notifier=Notifier(),
                             on_done=_fleet_progress(len(targets)))
    if _json(fmt):
        _emit(fleet_data(result))
    else:
        _echo(fleet_text(result, shard))
    raise typer.Exit(result.exit_code)


def _config_looked_at() -> str:
    """The configuration file this run read, or where it looked for one."""
    import os
    from pathlib import Path

    from remediate import cli_base

    path = cli_base.run_context().config or (Path(os.environ["REMEDIATE_CONFIG"])
                                             if os.environ.get("REMEDIATE_CONFIG") else None)
    if path is not None:
        return str(path)
    local = Path("remediate.toml")
    return str(local) if local.exists() else \
        "no configuration file (looked for --config, $REMEDIATE_CONFIG and ./remediate.toml)"


def _bound_steps(name: str) -> set[str]:
    """``playbook/step-id`` of every step bound to the org, without signing in to it."""
    from remediate import cli_base
    from remediate import playbook as playbooks
    from remediate.builtin import BUILTIN_PLAYBOOKS, is_builtin
    from remediate.errors import ConfigError
    from remediate.orgs import bind_playbooks

    settings = _settings()
    if is_builtin(name):
        from remediate.builtin import check_scenario

        check_scenario(name)
        loaded = [playbooks.load(playbooks.resolve(p)) for p in BUILTIN_PLAYBOOKS]
        return {f"{pb.name}/{step.id}" for pb in loaded for step in pb.model.steps}
    config = settings.orgs.get(name)
    if config is None:
        raise ConfigError(f"org {name!r} is not configured: {_config_looked_at()} has no "
                          f"[orgs.{name}] (built in: demo, sandbox:<scenario>)")
    config_file = cli_base.run_context().config
    base = config_file.parent if config_file else None
    steps, _ = bind_playbooks(config.playbooks, None, base=base)
    return {f"{s.playbook}/{s.id}" for s in steps}


def _fleet_progress(total: int) -> Any:
    from remediate.progress import Progress

    return Progress(total, "enforce").step


def fleet_data(result: FleetReport) -> dict[str, Any]:
    from remediate.plan import Change
    from remediate.render import change_data as plain

    def change_data(c: Change) -> dict[str, Any]:  # with the step ids the text carries
        return {"playbook": c.playbook, "step": c.step, **plain(c)}

    return {
        "run_id": result.run_id, "worst": result.worst, "exit_code": result.exit_code,
        "kill_switch": result.kill,
        "notifications": {"sent": result.notified, "failed": result.notify_failed},
        "orgs": [{"org": r.org, "outcome": r.outcome, "run_id": r.run_id, "message": r.message,
                  "applied": [change_data(c) for c in r.applied],
                  "pending": [change_data(c) for c in r.pending]} for r in result.reports],
    }


def fleet_text(result: FleetReport, shard: str | None = None) -> str:
    from remediate.enforce import OUTCOMES

    lines = [f"enforce run {result.run_id}" + (f" (shard {shard})" if shard else "")]
    if result.kill:
        lines.append(f"{result.kill}: every org is plan-only")
    if not result.reports:
        lines.append("no orgs to enforce")
        return "\n".join(lines)
    width = max(len("ORG"), *(len(r.org) for r in result.reports))
    lines.append("")
    lines.append(f"{'ORG':<{width}}  {'OUTCOME':<16}  {'APPLIED':>7}  {'PENDING':>7}  "
                 f"{'RUN ID':<25}  NOTE")
    for r in result.reports:
        lines.append(f"{r.org:<{width}}  {r.outcome:<16}  {len(r.applied):>7}  "
                     f"{len(r.pending):>7}  {r.run_id:<25}  {r.message}".rstrip())
    for r in result.reports:
        if r.applied:
            lines.append(f"\n{r.org}: applied by policy (run {r.run_id}):")
            lines += [f"    + {c.label()}: {json.dumps(c.before, default=str)} -> "
                      f"{json.dumps(c.after, default=str)} ({c.playbook}/{c.step})"
                      for c in r.applied]
        if not r.pending:
            continue
        lines.append(f"\n{r.org}: pending approval or manual:")
        for c in r.pending:
            how = "pending approval" if c.automatic else "manual"
            lines.append(f"    ? {c.label()}: {json.dumps(c.before, default=str)} -> "
                         f"{json.dumps(c.after, default=str)} ({c.playbook}/{c.step}, {how})")
    counts = ", ".join(f"{result.count(o)} {o}" for o in OUTCOMES if result.count(o))
    lines.append(f"\n{len(result.reports)} org(s): {counts}")
    lines.append(f"notifications: {result.notified} sent, {result.notify_failed} failed")
    return "\n".join(lines)


history_app = typer.Typer(help="Runs from the journal: list them, or show one.",
                          invoke_without_command=True, rich_markup_mode=None)


@history_app.callback()
def history(ctx: typer.Context, org: str | None = HISTORY_ORG, limit: int = LIMIT,
            fmt: Format = FORMAT) -> None:
    """List runs from the journal: run id, org, when, kind, status, changes, approval.
    'history show RUN_ID' shows one run's changes."""
    from remediate import history as histories

    if ctx.invoked_subcommand is not None:
        return
    _refuse_format(fmt, (Format.text, Format.json), "history")
    found = histories.runs(_journal(), org)[-limit:]
    if _json(fmt):
        _emit([vars(r) for r in found])
        return
    if not found:
        _echo("No runs in the journal" + (f" for org {org}." if org else "."))
        return
    _echo(history_text(found))


@history_app.command("show")
def history_show(run_id: str = RUN_ID, fmt: Format = FORMAT) -> None:
    """One run: its summary and every change it applied, numbered for 'rollback --change N'."""
    from remediate import history as histories

    _refuse_format(fmt, (Format.text, Format.json), "history show")
    journal = _journal()
    summary = next((r for r in histories.runs(journal) if r.run_id == run_id), None)
    if summary is None:
        raise UsageError(f"run {run_id!r}: not in the journal ({journal.path})",
                         hint="'remediate history' lists the runs")
    changes = [{k: v for k, v in c.items() if not k.startswith("_")}
               for c in _applied_changes(journal, run_id)]
    if _json(fmt):
        _emit({**vars(summary), "applied": changes})
        return
    lines = [history_text([summary]), ""]
    if not changes:
        lines.append("The run applied no changes.")
    for i, c in enumerate(changes, 1):
        lines.append(f"  {i}. {c.get('target')}: {c.get('field')}: "
                     f"{json.dumps(c.get('before'), default=str)} -> "
                     f"{json.dumps(c.get('after'), default=str)} "
                     f"({c.get('playbook')}/{c.get('step')})")
    _echo("\n".join(lines))


def _applied_changes(journal: Any, run_id: str) -> list[dict[str, Any]]:
    from remediate import history as histories

    try:
        return histories.recorded(journal, run_id).changes
    except UsageError:
        return []


def history_text(found: list[RunSummary]) -> str:
    width = max(len("ORG"), *(len(r.org) for r in found))
    lines = [f"{'RUN ID':<25}  {'ORG':<{width}}  {'WHEN':<24}  {'KIND':<8}  {'STATUS':<16}  "
             f"{'CHANGES':>7}  {'UNKNOWN':>7}  {'PENDING':>7}  APPROVAL"]
    for r in found:
        approval = r.approval + (f" (undoes {r.rollback_of})" if r.rollback_of else "")
        lines.append(f"{r.run_id:<25}  {r.org:<{width}}  {r.at[:24]:<24}  {r.kind:<8}  "
                     f"{r.status:<16}  {r.changes:>7}  {r.unknown:>7}  {r.pending:>7}  "
                     f"{approval}".rstrip())
    return "\n".join(lines)


CHANGE = typer.Option(None, "--change", min=1,
                      help="Only change N of the run (numbered by 'history show RUN_ID').")


def rollback(run_id: str = RUN_ID, yes: bool = YES,
             allow_production: bool = ALLOW_PRODUCTION, change: int | None = CHANGE,
             allow_lockout: bool = ALLOW_LOCKOUT) -> None:
    """Restore the before-values of a run's changes: shows the diff, applies after approval."""
    from remediate import engine, safety
    from remediate import history as histories
    from remediate.render import change_data, plan_data, text

    journal = _journal()
    recorded = histories.recorded(journal, run_id)
    pick = _pick_change(recorded, change)
    handle = _open(recorded.org, None, lock=True)
    try:
        undo = _only(histories.build(handle, journal, run_id), pick)
        plan = undo.plan
        _echo(f"Rollback of run {run_id} on org {recorded.org}"
              + (f", change {change}" if change else "") + ":\n")
        if not plan.automatic:
            if plan.manual:
                _echo(text.plan(plan))
            _echo("Nothing for remediate to roll back: the run's changes are already undone."
                  if not plan.manual else "\nNothing for remediate to roll back automatically.")
            _emit({"run_id": None, "rollback_of": run_id, "org": recorded.org,
                   "plan": plan_data(plan), "applied": []})
            raise typer.Exit(EXIT_DRIFT if plan.manual else EXIT_OK)
        engine.guard_production(handle, undo.current.org, allow_production)
        safety.guard_lockout(handle, plan.automatic, allow_lockout,
                             inventory=undo.current.inventory)
        _echo(text.rollback(plan, undo.current.inventory))
        approval = _approve(yes)

        def applied(result: engine.ApplyResult) -> None:
            histories.journal_rollback(journal, result.run_id, run_id, recorded.org)
            _echo("\n" + text.applied(result))

        done = engine.apply_and_verify(
            handle, undo.current, approval, journal, sign_in=False, on_applied=applied,
            reread=lambda h: _only(histories.build(h, journal, run_id), pick).current)
        done.require_no_automatic_left("rollback")
    finally:
        handle.close()
    _echo(f"Rolled back run {run_id} as run {done.result.run_id}.")
    _emit({"run_id": done.result.run_id, "rollback_of": run_id, "org": recorded.org,
           "plan": plan_data(plan), "applied": [change_data(c) for c in done.result.applied]})
    raise typer.Exit(EXIT_DRIFT if plan.manual else EXIT_OK)


def _pick_change(recorded: Any, n: int | None) -> tuple[str, ...] | None:
    if n is None:
        return None
    if n > len(recorded.changes):
        raise UsageError(f"--change {n}: run {recorded.run_id} applied "
                         f"{len(recorded.changes)} change(s) (see 'remediate history show "
                         f"{recorded.run_id}')")
    c = recorded.changes[n - 1]
    return (c["playbook"], c["step"], c["target"], c["field"])


def _only(undo: Any, pick: tuple[str, ...] | None) -> Any:
    """The rollback narrowed to the one change picked with --change."""
    import dataclasses

    from remediate.plan import Plan

    if pick is None:
        return undo
    p = undo.plan
    changes = [c for c in p.changes if (c.playbook, c.step, c.target, c.field) == pick]
    narrowed = Plan.build(org=p.org, org_id=p.org_id, instance_url=p.instance_url,
                          playbooks_digest=p.playbooks_digest, changes=changes)
    return dataclasses.replace(undo, current=dataclasses.replace(undo.current, plan=narrowed))


COMMANDS = (enforce, rollback)
