"""detect -> diff -> plan; approve -> apply -> re-read -> verify. The module that sequences a run.

Every command starts with ``assess``: gather the reads of every bound step, fetch them through
the gateway in one batch, let each step diff its slice, and build the plan. ``check_plan``
refuses a saved plan the org no longer matches. ``apply`` writes in dependency order, one batch
per API request (a wave where batches are independent), journalling each batch before the next.
``apply_and_verify`` is the one sequence every writing command runs: apply, re-read, and sign
in as the integrations when asked. The CLI parses, calls these and renders.
"""

from __future__ import annotations

import copy
import getpass
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from remediate import diagnose as diagnosis
from remediate.errors import (
    ApplyFailed,
    NotApproved,
    NotFound,
    OutcomeUnknown,
    ProductionGuard,
    RemediateError,
    SafetyRefusal,
    StalePlan,
    VerificationFailed,
)
from remediate.orgs import OrgHandle
from remediate.plan import Approval, Change, MetadataWrite, Plan, RecordDelete, RecordWrite
from remediate.salesforce.gateway import TokenResult
from remediate.steps.base import (
    AppUsage,
    Inventory,
    MetadataRead,
    OauthUsageRead,
    OrgInfo,
    OrgRead,
    Read,
    StepContext,
    UserInfo,
    UserRead,
    list_items,
    split_selector,
)

if TYPE_CHECKING:  # the journal's models are imported by apply, not by an audit (issue 17)
    from remediate.journal import Journal

Status = Literal["ok", "drift", "manual", "unknown"]
STATUSES: tuple[Status, ...] = ("ok", "drift", "manual", "unknown")


@dataclass(frozen=True)
class Finding:
    """One step's result. ``unknown`` (``error`` set) means the step could not be checked:
    something it reads is missing from the org, so it is neither ok nor drift."""

    playbook: str
    step: str
    kind: str
    cause: str | None
    description: str
    changes: tuple[Change, ...]
    error: str | None = None

    @property
    def status(self) -> Status:
        if self.error is not None:
            return "unknown"
        if not self.changes:
            return "ok"
        return "drift" if any(c.automatic for c in self.changes) else "manual"


@dataclass
class Assessment:
    org: OrgInfo
    findings: list[Finding]
    plan: Plan
    inventory: Inventory
    #: The apps the integration users signed in through (``audit``, ``diagnose``; C9, C13)
    usage: list[AppUsage] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return not self.plan.empty

    @property
    def unknown(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "unknown"]

    @property
    def clean(self) -> bool:
        """Every step was checked and none differs: the only state audit exits 0 on."""
        return self.plan.empty and not self.unknown


def assess(handle: OrgHandle, *, extra: Iterable[Read] = ()) -> Assessment:
    reads: set[Read] = {OrgRead(), *extra}
    for step in handle.steps:
        reads.update(step.kind.reads(step.params))
    inv = handle.gateway.fetch(reads)
    findings: list[Finding] = []
    seen: set[tuple[str, str, str]] = set()
    all_changes: list[Change] = []
    for step in handle.steps:
        ctx = StepContext(step.playbook, step.id, step.cause)
        description = step.description or step.kind.summary
        try:
            changes = step.kind.diff(step.params, inv, ctx)
        except NotFound as err:  # something the step needs is missing: it cannot be checked
            findings.append(Finding(step.playbook, step.id, step.kind.name, step.cause,
                                    description, (), error=err.message))
            continue
        for change in changes:
            key = (change.target, change.field,
                   change.write.model_dump_json() if change.write else change.manual or "")
            if key in seen:
                continue  # another step already asks for exactly this write: plan it once
            seen.add(key)
            all_changes.append(change)
        # every step reports its own status, even when its change is planned by another step
        findings.append(Finding(step.playbook, step.id, step.kind.name, step.cause,
                                description, tuple(changes)))
    org = inv.org
    plan = Plan.build(org=handle.name, org_id=org.org_id, instance_url=org.my_domain_url,
                      playbooks_digest=handle.digest, changes=all_changes)
    return Assessment(org, findings, plan, inv, oauth_usage(inv))


def bound_usernames(handle: OrgHandle) -> list[str]:
    return sorted({str(s.params.username) for s in handle.steps if hasattr(s.params, "username")})


def audit(handle: OrgHandle) -> Assessment:
    """``assess``, with the OAuth usage of the bound users read in the same composite."""
    return assess(handle, extra=[OauthUsageRead(u) for u in bound_usernames(handle)])


def oauth_usage(inv: Inventory) -> list[AppUsage]:
    """The OAuth usage the fetch read. OauthToken.AppName is the app's label (object
    reference): an app is installed when a connected app or external client app of that name
    or label was read in the same fetch, not installed when a playbook names it and the org
    has no such app, and unknown (None) for apps no playbook names."""
    found: set[str] = set()
    missing: set[str] = set()
    for r, v in inv.results.items():
        if isinstance(r, MetadataRead) and r.type in ("ConnectedApp", "ExternalClientApplication"):
            if isinstance(v, dict) and v.get("fullName"):
                found |= {str(v.get("fullName")).lower(), str(v.get("label") or "").lower()}
            elif v is None:
                missing.add(r.full_name.lower())
    out = []
    for read, value in sorted(inv.results.items(), key=lambda kv: repr(kv[0])):
        if isinstance(read, OauthUsageRead) and isinstance(value, tuple):
            for u in value:
                name = u.app.lower()
                state = True if name in found else False if name in missing - found else None
                out.append(AppUsage(u.username, u.app, u.last_used, u.use_count, state))
    return out


# ---- apply -------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    run_id: str
    plan: Plan
    applied: list[Change] = field(default_factory=list)
    manual: list[Change] = field(default_factory=list)
    wrote: bool = False
    held: list[Change] = field(default_factory=list)  # automatic, but left out by ``only``


def approval(how: Literal["prompt", "flag", "policy"]) -> Approval:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Approval(by=user, how=how, at=datetime.now(UTC).isoformat(timespec="seconds"))


def check_plan(saved: Plan, current: Assessment, handle: OrgHandle) -> None:
    """Refuse a saved plan that no longer describes the org (Terraform's stale-plan rule)."""
    if saved.org != handle.name:
        raise StalePlan(f"the plan was made for org {saved.org!r}, not {handle.name!r}")
    if saved.org_id[:15] != current.org.org_id[:15]:
        raise StalePlan(f"the plan was made for org id {saved.org_id}, but {handle.name!r} is "
                        f"{current.org.org_id}")
    if saved.playbooks_digest != current.plan.playbooks_digest:
        raise StalePlan("the playbooks or their variables changed since the plan was made; "
                        "run 'remediate plan' again")
    if saved.checksum != current.plan.checksum:
        raise StalePlan("the org changed since the plan was made (checksum "
                        f"{saved.checksum[:12]} != {current.plan.checksum[:12]}); nothing was "
                        "written. Run 'remediate plan' again and review the new diff")


def guard_production(handle: OrgHandle, org: OrgInfo, allow_production: bool, *,
                     flag: str | None = "--allow-production") -> None:
    """Writing to an org whose Organization.IsSandbox is false needs its mark (``production =
    true``) or the caller's explicit flag. Built-in sandbox orgs carry the mark (builtin.py): they
    are emulators, whatever IsSandbox their scenario says. ``enforce`` passes no flag."""
    if org.is_sandbox or handle.config.production or allow_production:
        return
    how = f"pass {flag} to apply anyway" if flag else \
        "mark it 'production = true' there to allow it"
    raise ProductionGuard(f"org {handle.name!r} is a production org (Organization.IsSandbox is "
                          f"false) and is not marked 'production = true' in remediate.toml; {how}")


def apply(handle: OrgHandle, current: Assessment, approved: Approval | None,
          journal: Journal, *, only: Callable[[Change], bool] | None = None,
          run_id: str | None = None) -> ApplyResult:
    """Apply the plan's automatic changes; with ``only``, just those it selects (the rest are
    returned as ``held``)."""
    from remediate.journal import change_record, new_run_id

    plan = current.plan
    run_id = run_id or new_run_id()
    todo = [c for c in plan.automatic if only is None or only(c)]
    result = ApplyResult(run_id, plan, manual=plan.manual,
                         held=[c for c in plan.automatic if c not in todo])
    if not todo:
        return result
    if approved is None:
        raise NotApproved("the changes were not approved; nothing was written")
    journal.append("apply.start", run_id=run_id, org=handle.name, org_id=current.org.org_id,
                   checksum=plan.checksum, approval=approved.model_dump(),
                   changes=[change_record(c) for c in todo])
    pending = list(todo)
    unknown: list[Change] = []
    number = 0
    combine = _combine_allowed(current.org.org_id)
    try:
        for group in _together(batches(todo), combine=combine):
            pair = _pair_in(group)
            calls = [partial(_write, handle, current.inventory, batch) for batch in group
                     if pair is None or batch is not pair[1]]
            if pair is not None:  # one composite for both (ADR 0044), in the licence's place
                calls[group.index(pair[0])] = partial(_write_pair, handle, *pair)
            numbers = list(range(number, number + len(group)))
            number += len(group)
            for n, batch in zip(numbers, group, strict=True):  # intent first: a crash after
                journal.append("batch.intent", run_id=run_id, batch=n,  # it leaves it unknown
                               changes=[change_record(c) for c in batch])
            outcomes = handle.gateway.together(calls)
            if pair is not None:
                outcomes = _pair_outcomes(handle, current.org.org_id, journal, run_id,
                                          group, numbers, pair, outcomes)
            first_error: RemediateError | None = None
            for n, batch, (ok, value) in zip(numbers, group, outcomes, strict=True):
                if ok:
                    created = value if isinstance(value, list) else []
                    result.wrote = True
                    journal.append("batch", run_id=run_id, batch=n, result="applied",
                                   changes=[change_record(c) for c in batch],
                                   **({"created": created} if created else {}))
                    result.applied.extend(batch)
                    pending = [c for c in pending if c not in batch]
                    continue
                if not isinstance(value, RemediateError):
                    raise value
                # "unknown": the write may have been committed (ADR 0009); "failed": it was not
                outcome = "unknown" if isinstance(value, OutcomeUnknown) else "failed"
                journal.append("batch", run_id=run_id, batch=n, result=outcome,
                               error=value.message, changes=[change_record(c) for c in batch])
                if outcome == "unknown":
                    unknown.extend(batch)
                first_error = first_error or value
            if first_error is not None:
                raise first_error
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (runguard.Terminated)
        journal.append("interrupted", run_id=run_id, org=handle.name,
                       signal="SIGTERM" if type(stop).__name__ == "Terminated" else "SIGINT")
        raise
    except RemediateError as err:
        pending = [c for c in pending if c not in unknown]
        journal.append("apply.end", run_id=run_id, status="failed",
                       applied=len(result.applied), not_applied=len(pending),
                       **({"unknown": len(unknown)} if unknown else {}))
        raise ApplyFailed(
            f"apply stopped: {err.message}",
            applied=[c.label() for c in result.applied],
            not_applied=[c.label() for c in pending],
            unknown=[c.label() for c in unknown],
            hint=f"the journal ({journal.path}) records run {run_id}; run 'remediate plan' to "
                 "see what is left") from None
    journal.append("apply.end", run_id=run_id, status="applied", applied=len(result.applied))
    return result


def _together(ordered: list[list[Change]], *,
              combine: bool = True) -> list[list[list[Change]]]:
    """The batches as waves, scheduled by dependency, not by phase: each batch goes in the wave
    after the last earlier batch it depends on (``_depends``), so independent batches are sent
    together and a dependent one still waits for what it needs. The order within a wave is the
    phase order, and so is the journal's.

    With ``combine``, permission set assignment inserts that wait only for a licence assignment
    insert go in the licence's wave: the two are sent as one composite whose subrequests run in
    order (ADR 0044; ``_pair_in`` finds them, ``_write_pair`` sends them)."""
    wave_of: list[int] = []
    for i, batch in enumerate(ordered):
        needs = [j for j in range(i) if _depends(batch, ordered[j])]
        wave = max((wave_of[j] + 1 for j in needs), default=0)
        licence = next((j for j in needs if _is_insert_of(ordered[j], _LICENCE)), None)
        if combine and licence is not None and _is_insert_of(batch, _ASSIGNMENT) \
                and len(batch) <= _PAIR_MAX and len(ordered[licence]) <= _PAIR_MAX \
                and all(wave_of[j] < wave_of[licence] for j in needs if j != licence):
            wave = wave_of[licence]
        wave_of.append(wave)
    groups: list[list[list[Change]]] = [[] for _ in range(max(wave_of, default=-1) + 1)]
    for wave, batch in zip(wave_of, ordered, strict=True):
        groups[wave].append(batch)
    return groups


#: Row inserts a metadata write of ``_ROW_FREE`` never waits for: a user's permission set
#: licence and permission set assignments (platform-truth U9; reference 4.4, 4.5).
_ASSIGNMENTS = frozenset({"PermissionSetLicenseAssign", "PermissionSetAssignment"})
#: Metadata fields that name a user (a Run As user, platform-truth A14, A7): a write of one
#: waits for every earlier row write, as before (whether Salesforce checks that user's
#: permissions when the app is saved is not documented).
_NAMES_A_USER = frozenset({"oauthConfig.oauthClientCredentialUser", "pluginExecutionUser",
                           "clientCredentialsFlowUser"})
#: Metadata types whose writes name no user, permission set or licence (Metadata API reference:
#: RemoteSiteSetting, NamedCredential; a Profile's login IP ranges and hours only, platform-truth
#: U3; the app types' OAuth settings and policies, but for ``_NAMES_A_USER``).
_PROFILE_ROW_FREE = frozenset({"loginIpRanges", "loginHours"})
_ROW_FREE = frozenset({"RemoteSiteSetting", "NamedCredential", "Profile", "ConnectedApp",
                       "ExternalClientApplication", "ExtlClntAppOauthSettings",
                       "ExtlClntAppGlobalOauthSettings", "ExtlClntAppOauthConfigurablePolicies",
                       "ExtlClntAppConfigurablePolicies"})


_LICENCE, _ASSIGNMENT = "PermissionSetLicenseAssign", "PermissionSetAssignment"
_PAIR_MAX = 200  # rows of each type in the one composite (one collections subrequest each)


def _is_insert_of(batch: list[Change], sobject: str) -> bool:
    w = batch[0].write
    return isinstance(w, RecordWrite) and w.api == "rest" and w.record_id is None \
        and w.sobject == sobject


def _pair_in(group: list[list[Change]]) -> tuple[list[Change], list[Change]] | None:
    """The licence and assignment insert batches ``_together`` put in one wave, if any (a
    permission set assignment never shares a wave with a licence otherwise)."""
    lic = next((b for b in group if _is_insert_of(b, _LICENCE)), None)
    psa = next((b for b in group if _is_insert_of(b, _ASSIGNMENT)), None)
    return (lic, psa) if lic is not None and psa is not None else None


def _combine_allowed(org_id: str) -> bool:
    """One composite for a licence and its assignments, unless this org refused it before
    (compositecache.py) or ``REMEDIATE_APPLY_COMBINE_LICENCE=0`` turns it off."""
    import os

    from remediate.salesforce import compositecache

    if os.environ.get("REMEDIATE_APPLY_COMBINE_LICENCE", "1").strip().lower() in (
            "0", "false", "no", "off"):
        return False
    return not compositecache.apart(org_id)


def _write_pair(handle: OrgHandle, lic: list[Change], psa: list[Change]) -> Any:
    def rows(batch: list[Change]) -> list[dict[str, Any]]:
        return [dict(c.write.fields) for c in batch if isinstance(c.write, RecordWrite)]
    return handle.gateway.insert_together(rows(lic), rows(psa))


def _pair_outcomes(handle: OrgHandle, org_id: str, journal: Journal, run_id: str,
                   group: list[list[Change]], numbers: list[int],
                   pair: tuple[list[Change], list[Change]],
                   outcomes: list[tuple[bool, Any]]) -> list[tuple[bool, Any]]:
    """The wave's outcomes, one per batch: the pair's one answer split in two. When the org
    rolled the composite back because the assignments needed the licence first, the journal
    says so (``batch.combined``), the org is remembered, and the two outcomes are those of
    the licence and the assignments sent apart afterwards."""
    from remediate.salesforce import compositecache

    lic, psa = pair
    at = group.index(lic)
    rest = [o for i, o in enumerate(outcomes) if i != at]
    ok, value = outcomes[at]
    if not ok:  # the call itself failed before anything was known: both share its error
        split: tuple[tuple[bool, Any], tuple[bool, Any]] = ((False, value), (False, value))
    else:
        if value.how == "apart":
            compositecache.remember_apart(org_id)
            journal.append("batch.combined", run_id=run_id, batches=[
                numbers[group.index(lic)], numbers[group.index(psa)]], result="rolled_back",
                error=value.rolled_back, then="sent apart: the licence, then the assignments")
        from remediate.errors import SalesforceError

        not_sent = SalesforceError(
            "not committed: rolled back with the licence assignment (one composite, allOrNone)"
            if value.how == "together" else
            "not sent: the licence assignment they need failed first", code="NOT_SENT")

        def one(v: Any) -> tuple[bool, Any]:
            if v is None:
                return False, not_sent
            return (False, v) if isinstance(v, BaseException) else (True, v)
        split = (one(value.licence), one(value.assignments))
    out: list[tuple[bool, Any]] = []
    for batch in group:
        if batch is lic:
            out.append(split[0])
        elif batch is psa:
            out.append(split[1])
        else:
            out.append(rest.pop(0))
    return out


def _depends(later: list[Change], earlier: list[Change]) -> bool:
    """Must batch ``later`` (after ``earlier`` in phase order) wait until ``earlier`` is
    written? Yes unless provably not (ADR 0039):

    * metadata of two different types: separate components, one upsert each (as before);
    * a user's licence or permission set assignments (rows) and metadata of ``_ROW_FREE``
      types that names no user: neither reads what the other writes. A permission set
      assignment still waits for the licence assignment (its set's licence must be held
      first: reference 4.5, failure catalogue C6) and for any other metadata (a
      PermissionSet written whole, ADR 0033), which keep the phase order.
    """
    a, b = earlier[0].write, later[0].write
    if isinstance(a, MetadataWrite) and isinstance(b, MetadataWrite):
        return a.type == b.type or earlier[0].phase != later[0].phase
    rows, meta = (earlier, later) if isinstance(b, MetadataWrite) else (later, earlier)
    if not isinstance(meta[0].write, MetadataWrite):
        return True
    row = rows[0].write
    if not (isinstance(row, RecordWrite) and row.api == "rest" and row.record_id is None
            and row.sobject in _ASSIGNMENTS):
        return True
    return not all(_row_free(c.write) for c in meta)


def _row_free(w: object) -> bool:
    if not isinstance(w, MetadataWrite) or w.type not in _ROW_FREE or w.path in _NAMES_A_USER:
        return False
    return w.type != "Profile" or w.path in _PROFILE_ROW_FREE


def batches(changes: list[Change]) -> list[list[Change]]:
    """One batch per write request, in dependency order (changes are already phase-sorted)."""
    out: list[list[Change]] = []
    groups: dict[tuple[int, str, str], list[Change]] = {}
    for c in changes:
        w = c.write
        key: tuple[int, str, str]
        if isinstance(w, RecordWrite):
            key = (c.phase, str(w.api), f"{w.sobject}:{'update' if w.record_id else 'insert'}")
        elif isinstance(w, RecordDelete):
            key = (c.phase, "rest", f"{w.sobject}:delete")
        else:
            assert isinstance(w, MetadataWrite)
            key = (c.phase, "metadata", w.type)
        groups.setdefault(key, []).append(c)
    for key in sorted(groups):
        out.append(groups[key])
    return out


def _write(handle: OrgHandle, inv: Inventory, batch: list[Change]) -> list[str]:
    """Write one batch; returns the ids of rows it created, in the batch's order."""
    gw = handle.gateway
    first = batch[0].write
    if isinstance(first, RecordDelete):
        gw.delete_rows(first.sobject, [c.write.record_id for c in batch
                                       if isinstance(c.write, RecordDelete)])
        return []
    if isinstance(first, RecordWrite):
        if first.api == "tooling":
            created = []
            for c in batch:
                assert isinstance(c.write, RecordWrite)
                fields = dict(c.write.fields)
                if c.write.sobject == "PackageInstallRequest":  # polled to its end (P2)
                    key_env = fields.pop("_installation_key_env", None)
                    created.append(gw.install_package(fields, key_env=key_env))
                    continue
                created.append(gw.tooling_insert(c.write.sobject, fields))
            return created
        if first.record_id is None:
            return gw.insert_rows(first.sobject, [dict(c.write.fields) for c in batch
                                                  if isinstance(c.write, RecordWrite)])
        else:
            merged: dict[str, dict[str, Any]] = {}
            for c in batch:
                assert isinstance(c.write, RecordWrite) and c.write.record_id
                merged.setdefault(c.write.record_id, {"Id": c.write.record_id}).update(
                    c.write.fields)
            gw.update_rows(first.sobject, list(merged.values()))
        return []
    assert isinstance(first, MetadataWrite)
    components: dict[str, dict[str, Any]] = {}
    written: dict[str, set[str]] = {}
    for c in batch:
        w = c.write
        assert isinstance(w, MetadataWrite)
        if w.full_name not in components:
            current = inv.metadata(w.type, w.full_name)
            components[w.full_name] = copy.deepcopy(current) if current else \
                {"fullName": w.full_name}
        _apply_path(components[w.full_name], w)
        written.setdefault(w.full_name, set()).add(split_selector(w.path.split(".")[0])[0])
    if first.type in OVERLAY_TYPES:
        # a deploy of these overlays the component: send only what changes (platform-truth U3)
        components = {name: {"fullName": comp["fullName"],
                             **{k: comp[k] for k in sorted(written[name]) if k in comp}}
                      for name, comp in components.items()}
    gw.upsert_metadata(first.type, list(components.values()))
    return []


#: Metadata types whose deploy overlays the existing component: a write carries fullName and
#: the fields it changes, nothing else (Profile: platform-truth U3, ADR 0021).
OVERLAY_TYPES = frozenset({"Profile"})


def _apply_path(component: dict[str, Any], w: MetadataWrite) -> None:
    parts = w.path.split(".")
    cur = component
    for part in parts[:-1]:
        name, selector = split_selector(part)
        if selector is not None:  # the list item whose key is value (steps.base.get_path)
            items = list_items(cur.get(name))
            cur[name] = items
            nxt = next((i for i in items if i.get(selector[0]) == selector[1]), None)
            if nxt is None:
                nxt = {selector[0]: selector[1]}
                items.append(nxt)
            cur = nxt
            continue
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    leaf = parts[-1]
    if w.mode == "set":
        cur[leaf] = w.value
        return
    existing = cur.get(leaf)
    items = [] if existing is None else (list(existing) if isinstance(existing, list)
                                         else [existing])
    if w.mode == "remove":
        cur[leaf] = [item for item in items if item not in w.value]
        return
    for item in w.value:
        if item not in items:
            items.append(item)
    cur[leaf] = items


# ---- verify ------------------------------------------------------------------------------


@dataclass
class VerifyResult:
    """The re-read, and every bound integration: signed in or failed (``tokens``), or not
    tried because its credentials are not configured (``not_tried``, with why)."""

    assessment: Assessment
    tokens: list[tuple[str, TokenResult]]
    not_tried: dict[str, str] = field(default_factory=dict)
    reread_only: bool = False  # the user asked for the re-read only: no sign-in is claimed

    @property
    def signed_in(self) -> bool:
        """Every bound integration signed in (and there was at least one)."""
        return bool(self.tokens) and not self.not_tried and all(t.ok for _, t in self.tokens)

    @property
    def ok(self) -> bool:
        if not self.assessment.clean:
            return False
        return True if self.reread_only else self.signed_in


def verify(handle: OrgHandle, *, reread_only: bool = False) -> VerifyResult:
    """Re-read the org, and sign in as each integration (a token request, then one API call).

    When signing in already told the org's My Domain, the re-read and the integrations'
    sign-ins go out together; otherwise the sign-ins wait for the re-read to learn it.
    """
    logins = [] if reread_only else handle.logins
    gw = handle.gateway
    my_domain = gw.known_my_domain() if logins else None
    if my_domain is not None:
        outcomes = gw.together([partial(assess, handle),
                                *(partial(gw.request_token, login, my_domain)
                                  for login in logins)], hops=2)
        current_outcome, token_outcomes = outcomes[0], outcomes[1:]
        if not current_outcome[0]:
            raise current_outcome[1]
        current = current_outcome[1]
    else:
        current = assess(handle)
        token_outcomes = gw.together([partial(gw.request_token, login,
                                              current.org.my_domain_url) for login in logins],
                                     hops=2)
    tokens = []
    for login, (ok, value) in zip(logins, token_outcomes, strict=True):
        if not ok:
            if not isinstance(value, RemediateError):
                raise value
            # the token endpoint could not be reached: a failed sign-in, not a crash
            value = TokenResult(False, 0, "request_failed", value.message)
        assert isinstance(value, TokenResult)
        tokens.append((login.name, value))
    not_tried = {} if reread_only else dict(handle.not_tried)
    return VerifyResult(current, tokens, not_tried, reread_only)


# ---- the one apply sequence: apply -> re-read -> verify -----------------------------------


@dataclass
class Converged:
    """What ``apply_and_verify`` did: the apply, the org re-read after it, and (when asked) the
    integrations' sign-ins."""

    result: ApplyResult
    after: Assessment
    verified: VerifyResult | None = None

    @property
    def stuck(self) -> list[Change]:
        """Applied changes the re-read still asks for: the write did not take."""
        left = {(c.target, c.field) for c in self.after.plan.changes}
        return [c for c in self.result.applied if (c.target, c.field) in left]

    def require_no_automatic_left(self, what: str) -> None:
        """Fail (exit 4) when the re-read still finds changes remediate would make."""
        pending = self.after.plan.automatic
        if pending:
            raise VerificationFailed(f"after {what}, {len(pending)} change(s) are still pending: "
                                     + "; ".join(c.label() for c in pending))


def apply_and_verify(handle: OrgHandle, current: Assessment, approved: Approval | None,
                     journal: Journal, *, sign_in: bool,
                     only: Callable[[Change], bool] | None = None, run_id: str | None = None,
                     reread: Callable[[OrgHandle], Assessment] | None = None,
                     on_applied: Callable[[ApplyResult], None] | None = None) -> Converged:
    """The sequence every writing command runs (apply, demo, rollback, enforce): apply the
    approved changes, re-read the org, and with ``sign_in`` sign in as each integration.

    ``reread`` replaces the plain re-read (a rollback re-builds its undo plan); ``on_applied``
    is called between the writes and the re-read (to render or journal what was written).
    """
    result = apply(handle, current, approved, journal, only=only, run_id=run_id)
    if on_applied is not None:
        on_applied(result)
    if sign_in:
        verified = verify(handle)
        return Converged(result, verified.assessment, verified)
    return Converged(result, (reread or assess)(handle))


# ---- diagnose ----------------------------------------------------------------------------


@dataclass
class Diagnosis:
    evidence: list[str]
    causes: list[str]
    explanation: str
    confirmed: list[Finding]
    advice: str | None = None
    unrecognised: list[str] = field(default_factory=list)  # error texts no pattern matches
    past: int = 0  # failures older than the user's last successful sign-in (already fixed)
    #: Those older failures (after the current ones), and the OAuth usage of the users
    earlier: list[str] = field(default_factory=list)
    usage: list[str] = field(default_factory=list)

    @property
    def named(self) -> bool:
        """A cause (or a named non-configuration cause) was found: the only exit-0 case."""
        return bool(self.causes or self.advice)


def diagnose(handle: OrgHandle, error_text: str | None,
             since: datetime | None = None) -> Diagnosis:
    current = audit(handle)
    evidence: list[str] = []
    earlier: list[str] = []
    texts: list[str] = []
    causes: list[str] = []
    past = 0
    if error_text:
        evidence.append(f"error: {error_text}")
        texts.append(error_text)
    else:
        older: list[dict[str, Any]] = []
        rows, past = _failed_logins(handle, current, since, older)
        for row in rows:
            line = (f"Login History {row.get('LoginTime')}: {row.get('Status')} "
                    f"(user {row.get('_username')}, {row.get('LoginUrl')}, "
                    f"{row.get('Application')}, from {row.get('SourceIp')})")
            evidence.append(line)
            texts.append(str(row.get("Status") or ""))
            outside = _outside_ranges(row, current)
            if outside:
                evidence.append(outside)
                if "C11" not in causes:
                    causes.append("C11")
        # the rows newer than each user's last success come first; older ones follow, marked,
        # and name no cause (a later success means they were fixed)
        for row in older[:5]:
            earlier.append(f"Login History {row.get('LoginTime')}: {row.get('Status')} "
                           "(before the last successful sign-in: already fixed)")
    explanation = ""
    advice = None
    unrecognised: list[str] = []
    for text in texts:
        m = diagnosis.match(text)
        if m is None:
            if text not in unrecognised:
                unrecognised.append(text)
            continue
        advice = advice or m.not_a_cause
        explanation = explanation or m.explanation
        for cause in m.causes:
            if cause not in causes:
                causes.append(cause)
    drifting = [f for f in current.findings if f.status in ("drift", "manual")]
    causes, secret = diagnosis.settle_invalid_client(texts, causes,
                                                     {f.cause for f in drifting if f.cause})
    advice = advice or secret
    confirmed = [f for f in drifting if f.cause in causes] if causes else drifting
    if not causes and confirmed:
        causes = sorted({f.cause for f in confirmed if f.cause}, key=_cause_order)
    return Diagnosis(evidence, causes, explanation, confirmed, advice, unrecognised, past,
                     earlier, usage_evidence(current.usage))


def usage_evidence(usage: list[AppUsage]) -> list[str]:
    """One line per app an integration user signed in through (Connected Apps OAuth Usage),
    saying whether the org has the app: an app used but not installed points at C13 (or C9),
    an installed one rules both out."""
    lines = []
    for u in usage:
        state = "installed in the org" if u.installed else \
            "NOT installed in the org (C13 if the org blocks uninstalled apps, else C9)" \
            if u.installed is False else "not one the playbooks name (not checked)"
        lines.append(f"OAuth usage: {u.username} signed in through {u.app!r} "
                     f"(last used {u.last_used or 'unknown'}, {u.use_count or 0} use(s)); "
                     f"the app is {state}")
    return lines


def _cause_order(cause: str) -> int:
    return int(cause[1:]) if cause[1:].isdigit() else 99


def _outside_ranges(row: dict[str, Any], current: Assessment) -> str | None:
    """Evidence when the failed attempt came from outside its user's profile login IP ranges
    (read only when a profile.login_ip_ranges step is bound). A profile with no ranges admits
    every address (Salesforce Help, "Restrict Login IP Addresses in Profiles")."""
    import ipaddress

    from remediate.steps.org import _ranges

    ip_text = row.get("SourceIp")
    profile = row.get("_profile")
    if not ip_text or not profile:
        return None
    meta = current.inventory.results.get(MetadataRead("Profile", str(profile)))
    if not isinstance(meta, dict):  # not read: no profile.login_ip_ranges step is bound
        return None
    ranges = _ranges(meta.get("loginIpRanges"))
    if not ranges:
        return None
    try:
        ip = ipaddress.ip_address(str(ip_text))
        spans = [(ipaddress.ip_address(str(r.get("startAddress"))),
                  ipaddress.ip_address(str(r.get("endAddress")))) for r in ranges]
    except ValueError:
        return None
    if any(lo.version == ip.version == hi.version
           and int(lo) <= int(ip) <= int(hi) for lo, hi in spans):
        return None
    shown = ", ".join(f"{r.get('startAddress')}-{r.get('endAddress')}" for r in ranges)
    return (f"source IP {ip} is outside profile {profile}'s login IP ranges ({shown})")


def _login_time(row: dict[str, Any]) -> datetime | None:
    text = str(row.get("LoginTime") or "")
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            return None


def _failed_logins(handle: OrgHandle, current: Assessment,
                   since: datetime | None = None,
                   older: list[dict[str, Any]] | None = None
                   ) -> tuple[list[dict[str, Any]], int]:
    """The current failed sign-ins of the bound users (newest first) and how many older
    failures were left out. A failure is current when it is newer than ``since`` and than
    its user's last successful sign-in (a later success means it was fixed)."""
    usernames = bound_usernames(handle)
    users: dict[str, UserInfo] = {}  # 15-character user id -> user
    for name in usernames:
        info = current.inventory.results.get(UserRead(name))
        if info is not None:
            users[info.id[:15]] = info
    if not users:
        return [], 0
    ids = ", ".join(f"'{i}'" for i in sorted(users))
    rows = handle.gateway.query(
        "SELECT UserId, LoginTime, Status, LoginUrl, Application, LoginType, SourceIp "
        f"FROM LoginHistory WHERE UserId IN ({ids}) ORDER BY LoginTime DESC LIMIT 50")
    last_success: dict[str, datetime] = {}
    failed = []
    past = 0
    for row in rows:
        uid = str(row["UserId"])[:15]
        when = _login_time(row)
        if str(row.get("Status")) == "Success":
            if when is not None and (uid not in last_success or when > last_success[uid]):
                last_success[uid] = when
            continue
        failed.append((uid, when, row))
    current_rows = []
    for uid, when, row in failed:
        fixed = when is not None and uid in last_success and when <= last_success[uid]
        old = since is not None and (when is None or when < since)
        if fixed or old:
            past += 1
            if fixed and older is not None:
                older.append(row)
            continue
        info = users.get(uid)
        row["_username"] = info.username if info else row.get("UserId")
        row["_profile"] = info.profile_name if info else None
        current_rows.append(row)
    return current_rows[:10], past


# ---- snapshot ----------------------------------------------------------------------------


def snapshot(handle: OrgHandle, name: str, *, capture_drift: bool = False) -> dict[str, Any]:
    """A playbook that pins what the org is now, for every step bound to it (cause C12).

    An org that drifts from its bound playbooks is refused unless ``capture_drift``: a
    baseline taken from it would pin the drift. Steps that could not be checked are never
    captured (there is nothing to pin)."""
    current = assess(handle)
    if not current.clean and not capture_drift:
        differing = [f"{f.playbook}/{f.step} ({f.status})" for f in current.findings
                     if f.status != "ok"]
        raise SafetyRefusal(
            f"org {handle.name!r} does not match its bound playbooks ({len(differing)} step(s): "
            + ", ".join(differing) + "); a baseline taken now would pin that drift. Nothing "
            "was written", hint="fix it first ('remediate plan', 'remediate apply'), or pass "
                                "--capture-drift to capture the org as it is")
    unchecked = {(f.playbook, f.step) for f in current.unknown}
    steps = []
    for step in handle.steps:
        if (step.playbook, step.id) in unchecked:
            continue
        ctx = StepContext(step.playbook, step.id, "C12")
        params = step.kind.capture(step.params, current.inventory, ctx)
        steps.append({"id": f"{step.playbook}-{step.id}", "kind": step.kind.name, "cause": "C12",
                      "description": f"As captured from {handle.name} "
                                     f"({current.org.org_id}); was {step.playbook}/{step.id}",
                      "with": params})
    return {
        "apiVersion": "remediate/v1", "kind": "Playbook", "name": name,
        "description": (f"Baseline captured from org {handle.name} ({current.org.org_id}) at "
                        f"{datetime.now(UTC).isoformat(timespec='seconds')}. Drift from it is an "
                        "unintended change (C12)."
                        + ("" if not unchecked else " Not captured (could not be checked): "
                           + ", ".join(f"{p}/{s}" for p, s in sorted(unchecked)) + ".")),
        "variables": {}, "steps": steps,
    }

