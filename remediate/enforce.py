"""Unattended drift enforcement: one pass over one org or a fleet, for cron.

For each org, ``enforce_org``:

1. takes the org's lock (an OS file lock in the state dir, so two runs on one machine, in one
   process or several, never work on the same org at once; the second reports ``locked``);
2. audits (``engine.assess``);
3. refuses the whole org when its plan has more changes than the policy's ``max_changes``;
4. under the kill switch, stops there (plan only);
5. applies only the changes the policy approves automatically (by ``playbook/step`` id or by
   step kind; the default approves none, so enforce is then an audit that notifies);
6. verifies (a re-read, and the integrations' token requests), journals and notifies.

``run_fleet`` runs that over many orgs in a bounded thread pool (the work waits on the network);
one org's failure is reported and never stops the others. The outcome of each org is one of
``OUTCOMES``; the run's exit code is the worst one's.
"""

from __future__ import annotations

import contextvars
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from remediate import engine
from remediate.errors import (
    EXIT_DRIFT,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_REFUSED,
    ConfigError,
    RemediateError,
    SafetyRefusal,
    TooManyChanges,
    UsageError,
)
from remediate.journal import Journal, change_record, new_run_id
from remediate.logging import get_logger
from remediate.plan import Change
from remediate.settings import EnforcePolicy, Settings, Webhook, state_dir

if TYPE_CHECKING:
    from remediate.notify import Notifier
    from remediate.orgs import OrgHandle

Outcome = Literal["clean", "fixed", "locked", "pending approval", "refused", "failed"]
#: Best to worst. ``locked`` means another run holds the org: nothing was checked this time.
OUTCOMES: tuple[Outcome, ...] = ("clean", "fixed", "locked", "pending approval", "refused",
                                 "failed")
#: sysexits' EX_TEMPFAIL: the org was busy with another run; try again on the next schedule.
EXIT_LOCKED = 75
EXIT_CODES: dict[Outcome, int] = {"clean": EXIT_OK, "fixed": EXIT_OK, "locked": EXIT_LOCKED,
                                  "pending approval": EXIT_DRIFT, "refused": EXIT_REFUSED,
                                  "failed": EXIT_FAILURE}
KILL_ENV = "REMEDIATE_ENFORCE_KILL"
log = get_logger()


# ---- policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    auto_approve_steps: frozenset[str] = frozenset()
    auto_approve_kinds: frozenset[str] = frozenset()
    max_changes: int = 10
    webhooks: tuple[Webhook, ...] = ()

    def approves(self, change: Change) -> bool:
        return change.automatic and (f"{change.playbook}/{change.step}" in self.auto_approve_steps
                                     or change.kind in self.auto_approve_kinds)

    @classmethod
    def of(cls, config: EnforcePolicy | None, shared_webhooks: Sequence[Webhook] = ()) -> Policy:
        config = config or EnforcePolicy()
        return cls(frozenset(config.auto_approve_steps), frozenset(config.auto_approve_kinds),
                   config.max_changes, (*shared_webhooks, *config.webhooks))


def policy_for(name: str, settings: Settings) -> Policy:
    """The org's policy: ``[orgs.NAME.enforce]`` or ``[enforce.orgs."NAME"]`` (built-in orgs
    can only use the second), never both; plus ``[enforce]``'s webhooks."""
    by_name = settings.enforce.orgs.get(name)
    org = settings.orgs.get(name)
    in_org = org.enforce if org is not None else None
    if by_name is not None and in_org is not None:
        raise ConfigError(f"org {name!r}: the enforce policy is given twice, in [orgs.{name}."
                          f"enforce] and [enforce.orgs.\"{name}\"]; keep one")
    return Policy.of(by_name or in_org, settings.enforce.webhooks)


def check_policy(name: str, policy: Policy, bound: set[str]) -> None:
    """A policy may name only steps bound to its org (``playbook/step-id``) and known kinds:
    an unknown one would leave the admin believing auto-fix is on."""
    from remediate.steps.base import kinds

    for ref in sorted(policy.auto_approve_steps):
        if ref not in bound:
            raise ConfigError(f"org {name!r}: enforce policy auto_approve_steps names "
                              f"{ref!r}, which is not a step bound to this org (bound: "
                              f"{', '.join(sorted(bound)) or 'none'})")
    known = kinds()
    for kind in sorted(policy.auto_approve_kinds):
        if kind not in known:
            raise ConfigError(f"org {name!r}: enforce policy auto_approve_kinds names "
                              f"{kind!r}, which is not a step kind (known: "
                              f"{', '.join(sorted(known))})")


def kill_switch(settings: Settings) -> str | None:
    """Why every run is plan-only right now, or None."""
    if os.environ.get(KILL_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return f"kill switch: {KILL_ENV} is set"
    path = kill_switch_path(settings)
    if path.exists():
        return f"kill switch: {path} exists"
    return None


def kill_switch_path(settings: Settings) -> Path:
    configured = settings.enforce.kill_switch_file
    return Path(os.path.expanduser(str(configured))) if configured else \
        state_dir() / "enforce.disabled"


# ---- sharding ------------------------------------------------------------------------------


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise UsageError(f"--shard {text!r}: I must be at least 0 and less than N")
    return index, count


def shard_of(name: str, count: int) -> int:
    """The shard an org belongs to: stable across machines, runs and Python versions."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select_shard(names: Sequence[str], index: int, count: int) -> list[str]:
    return [n for n in names if shard_of(n, count) == index]


# ---- locking -------------------------------------------------------------------------------


def lock_path(name: str, lock_dir: Path | None = None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return (lock_dir or state_dir() / "locks") / f"{safe}-{digest}.lock"


@contextmanager
def org_lock(name: str, lock_dir: Path | None = None) -> Iterator[bool]:
    """Hold the org's lock for the block; yields False (at once) when another run holds it.

    ``flock`` locks belong to an open file description, so two runs conflict whether they are
    two processes or two threads of one; the OS drops the lock when its holder dies.
    """
    import fcntl

    path = lock_path(name, lock_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n"
                     .encode())
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ---- one org -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """An org to enforce: its name, how to open it, and its policy."""

    name: str
    open: Callable[[], OrgHandle]
    policy: Policy = field(default_factory=Policy)


@dataclass
class OrgReport:
    org: str
    outcome: Outcome
    run_id: str
    applied: list[Change] = field(default_factory=list)
    pending: list[Change] = field(default_factory=list)  # drift a person must approve or do
    message: str = ""
    notified: int = 0
    notify_failed: int = 0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def enforce_org(target: Target, *, journal: Journal, kill: str | None = None,
                lock_dir: Path | None = None, fleet_run: str | None = None,
                notifier: Notifier | None = None) -> OrgReport:
    """One org's pass. Never raises: every failure becomes the report's outcome."""
    run_id = new_run_id()
    with org_lock(target.name, lock_dir) as held:
        if not held:
            report = OrgReport(target.name, "locked", run_id,
                               message="another run is working on this org; skipped")
        else:
            report = _guarded(target, run_id, journal, kill)
            if notifier is not None and report.outcome in ("fixed", "pending approval",
                                                           "refused", "failed"):
                report.notified, report.notify_failed = notifier.notify(
                    report, target.policy.webhooks, fleet_run=fleet_run)
    journal.append("enforce", run_id=run_id, fleet_run=fleet_run, org=target.name,
                   outcome=report.outcome, message=report.message,
                   applied=[change_record(c) for c in report.applied],
                   pending=[change_record(c) for c in report.pending],
                   notified=report.notified, notify_failed=report.notify_failed)
    log.info("enforce.org", org=target.name, outcome=report.outcome, run_id=run_id)
    return report


def _guarded(target: Target, run_id: str, journal: Journal, kill: str | None) -> OrgReport:
    try:
        return _enforce(target, run_id, journal, kill)
    except SafetyRefusal as err:
        return OrgReport(target.name, "refused", run_id, message=err.message)
    except RemediateError as err:
        return OrgReport(target.name, "failed", run_id, message=err.message)
    except Exception as exc:  # one org's bug must not stop the fleet; say what, not a traceback
        log.error("enforce.internal_error", org=target.name, error=type(exc).__name__)
        return OrgReport(target.name, "failed", run_id,
                         message=f"internal error ({type(exc).__name__}); run 'remediate -vv "
                                 f"audit --org {target.name}' to see it")


def _enforce(target: Target, run_id: str, journal: Journal, kill: str | None) -> OrgReport:
    policy = target.policy
    handle = target.open()
    try:
        current = engine.assess(handle)
        plan = current.plan
        if plan.empty and current.unknown:  # not clean: some steps could not be checked
            return OrgReport(target.name, "pending approval", run_id,
                             message="could not check: " + "; ".join(
                                 f"{f.playbook}/{f.step}: {f.error}" for f in current.unknown))
        if plan.empty:
            return OrgReport(target.name, "clean", run_id)
        if len(plan.changes) > policy.max_changes:
            raise TooManyChanges(f"the plan has {len(plan.changes)} changes, more than this "
                                 f"org's max_changes ({policy.max_changes}); nothing was written")
        approved = [c for c in plan.automatic if policy.approves(c)]
        if kill is not None or not approved:
            return OrgReport(target.name, "pending approval", run_id, pending=list(plan.changes),
                             message=f"{kill}; plan only" if kill else "")
        engine.guard_production(handle, current.org, allow_production=False, flag=None)
        from remediate import safety

        # no person approves an enforce run, so nothing may lock a sign-in out (ADR 0034)
        safety.guard_lockout(handle, approved, allow=False, inventory=current.inventory)
        done = engine.apply_and_verify(handle, current, engine.approval("policy"), journal,
                                       sign_in=True, only=policy.approves, run_id=run_id)
        result, verified, stuck = done.result, done.verified, done.stuck
        assert verified is not None
        remaining = list(done.after.plan.changes)
        report = OrgReport(target.name, "fixed" if not remaining else "pending approval",
                           run_id, applied=result.applied, pending=remaining)
        failed_tokens = [f"{name}: {t.error or t.api_error or t.status}"
                         for name, t in verified.tokens if not t.ok]
        failed_tokens += [f"{name}: not tried (no credentials)"
                          for name in verified.not_tried]
        if stuck:
            report.outcome = "failed"
            report.message = ("verification failed: still pending after apply: "
                              + "; ".join(c.label() for c in stuck))
        elif failed_tokens and not remaining:
            report.outcome = "failed"
            report.message = "verification failed: token request " + "; ".join(failed_tokens)
        elif failed_tokens:
            report.message = "token requests still fail until the pending changes are made: " \
                + "; ".join(failed_tokens)
        return report
    finally:
        handle.close()


# ---- a fleet -------------------------------------------------------------------------------


@dataclass
class FleetReport:
    run_id: str
    reports: list[OrgReport]
    kill: str | None = None

    @property
    def worst(self) -> Outcome:
        return max((r.outcome for r in self.reports), key=OUTCOMES.index, default="clean")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.worst]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.reports if r.outcome == outcome)

    @property
    def notified(self) -> int:
        return sum(r.notified for r in self.reports)

    @property
    def notify_failed(self) -> int:
        return sum(r.notify_failed for r in self.reports)


def run_fleet(targets: Sequence[Target], *, journal: Journal, workers: int = 16,
              kill: str | None = None, lock_dir: Path | None = None,
              notifier: Notifier | None = None,
              on_done: Callable[[OrgReport], None] | None = None,
              fleet_run: str | None = None) -> FleetReport:
    """Enforce every target, ``workers`` at a time; reports come back in the targets' order.
    ``on_done`` hears of each org as it finishes (progress on a terminal). On Ctrl-C or
    SIGTERM no further org is started, the orgs in flight finish (and are journalled and heard
    of), then the interrupt goes on. Several processes: ``remediate.fleet``."""
    fleet_run = fleet_run or new_run_id()
    if not targets:
        return FleetReport(fleet_run, [], kill)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))),
                            thread_name_prefix="enforce") as pool:
        # each worker runs in a copy of the caller's context: the CLI's run (its --config,
        # settings, envelope: remediate.runcontext) is a context variable
        futures = [pool.submit(contextvars.copy_context().run, enforce_org, t, journal=journal,
                               kill=kill, lock_dir=lock_dir, fleet_run=fleet_run,
                               notifier=notifier) for t in targets]
        if on_done is not None:
            for f in futures:
                f.add_done_callback(lambda done: done.cancelled() or done.exception()
                                    or on_done(done.result()))
        try:
            reports = [f.result() for f in futures]
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return FleetReport(fleet_run, reports, kill)
