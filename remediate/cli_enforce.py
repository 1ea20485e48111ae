"""``remediate enforce``, ``history`` and ``rollback``: the commands for unattended runs.

Registered on ``remediate.cli.app`` (imported from the bottom of cli.py).
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any

import typer

from remediate.cli import FORMAT, Format, _approve, _echo, _journal, _open, _settings, app
from remediate.errors import EXIT_DRIFT, EXIT_OK, UsageError, VerificationFailed

if TYPE_CHECKING:
    from remediate.enforce import FleetReport
    from remediate.history import RunSummary

ORGS = typer.Option(None, "--org", "-o", help="An org to enforce (repeatable).")
ALL = typer.Option(False, "--all", help="Every org in remediate.toml's [orgs] and [enforce.orgs].")
SHARD = typer.Option(None, "--shard", help="Only shard I of N (I/N, I from 0): orgs split by a "
                                           "hash of their name.")
WORKERS = typer.Option(None, "--workers", min=1, max=64,
                       help="Orgs worked on at once (default [enforce] workers, 32).")
HISTORY_ORG = typer.Option(None, "--org", "-o", help="Only this org's runs.")
LIMIT = typer.Option(50, "--limit", min=1, help="The last N runs.")
RUN_ID = typer.Argument(..., help="A run id from 'remediate history'.")
YES = typer.Option(False, "--yes", "-y", help="Approve without asking.")
ALLOW_PRODUCTION = typer.Option(False, "--allow-production",
                                help="Roll back on a production org not marked "
                                     "'production = true'.")


@app.command()
def enforce(org: list[str] | None = ORGS, all_orgs: bool = ALL, shard: str | None = SHARD,
            workers: int | None = WORKERS, fmt: Format = FORMAT) -> None:
    """One unattended pass for cron: lock, audit, apply what the policy approves, verify,
    journal, notify. Exit code: the worst org's (0 clean/fixed, 2 pending approval,
    3 refused, 1 failed, 75 locked)."""
    from remediate import enforce as enforcement
    from remediate.notify import Notifier

    settings = _settings()
    if bool(org) == all_orgs:
        raise UsageError("name the orgs to enforce with --org (repeatable), or pass --all")
    names = list(dict.fromkeys(org or [])) if org else \
        sorted(set(settings.orgs) | set(settings.enforce.orgs))
    if shard is not None:
        index, count = enforcement.parse_shard(shard)
        names = enforcement.select_shard(names, index, count)
    targets = [enforcement.Target(name, partial(_open, name, None),
                                  enforcement.policy_for(name, settings)) for name in names]
    result = enforcement.run_fleet(targets, journal=_journal(),
                                   workers=workers or settings.enforce.workers,
                                   kill=enforcement.kill_switch(settings), notifier=Notifier())
    if fmt is Format.json:
        _echo(json.dumps(fleet_data(result), indent=2, default=str))
    else:
        _echo(fleet_text(result, shard))
    raise typer.Exit(result.exit_code)


def fleet_data(result: FleetReport) -> dict[str, Any]:
    from remediate.render import change_data

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


@app.command()
def history(org: str | None = HISTORY_ORG, limit: int = LIMIT, fmt: Format = FORMAT) -> None:
    """List runs from the journal: run id, org, when, kind, status, changes, approval."""
    from remediate import history as histories

    found = histories.runs(_journal(), org)[-limit:]
    if fmt is Format.json:
        _echo(json.dumps([vars(r) for r in found], indent=2, default=str))
        return
    if not found:
        _echo("No runs in the journal" + (f" for org {org}." if org else "."))
        return
    _echo(history_text(found))


def history_text(found: list[RunSummary]) -> str:
    width = max(len("ORG"), *(len(r.org) for r in found))
    lines = [f"{'RUN ID':<25}  {'ORG':<{width}}  {'WHEN':<24}  {'KIND':<8}  {'STATUS':<16}  "
             f"{'CHANGES':>7}  {'PENDING':>7}  APPROVAL"]
    for r in found:
        approval = r.approval + (f" (undoes {r.rollback_of})" if r.rollback_of else "")
        lines.append(f"{r.run_id:<25}  {r.org:<{width}}  {r.at[:24]:<24}  {r.kind:<8}  "
                     f"{r.status:<16}  {r.changes:>7}  {r.pending:>7}  {approval}".rstrip())
    return "\n".join(lines)


@app.command()
def rollback(run_id: str = RUN_ID, yes: bool = YES,
             allow_production: bool = ALLOW_PRODUCTION) -> None:
    """Restore the before-values of a run's changes: shows the diff, applies after approval."""
    from remediate import engine
    from remediate import history as histories
    from remediate.render import text

    journal = _journal()
    recorded = histories.recorded(journal, run_id)
    handle = _open(recorded.org, None)
    try:
        undo = histories.build(handle, journal, run_id)
        plan = undo.plan
        _echo(f"Rollback of run {run_id} on org {recorded.org}:\n")
        if not plan.automatic:
            if plan.manual:
                _echo(text.plan(plan))
            _echo("Nothing for remediate to roll back: the run's changes are already undone."
                  if not plan.manual else "\nNothing for remediate to roll back automatically.")
            raise typer.Exit(EXIT_DRIFT if plan.manual else EXIT_OK)
        engine.guard_production(handle, undo.current.org, allow_production)
        _echo(text.plan(plan))
        approval = _approve(yes)
        result = engine.apply(handle, undo.current, approval, journal)
        histories.journal_rollback(journal, result.run_id, run_id, recorded.org)
        _echo("")
        _echo(text.applied(result))
        again = histories.build(handle, journal, run_id).plan
        if again.automatic:
            raise VerificationFailed(f"after rollback, {len(again.automatic)} change(s) are "
                                     "still not undone: "
                                     + "; ".join(c.label() for c in again.automatic))
    finally:
        handle.close()
    _echo(f"Rolled back run {run_id} as run {result.run_id}.")
    raise typer.Exit(EXIT_DRIFT if plan.manual else EXIT_OK)
