"""Runs as the journal recorded them (``remediate history``) and undoing one
(``remediate rollback RUN_ID``).

A rollback is a plan like any other: built from what the journal says the run applied, checked
against the org as it is now, shown, approved, applied and journalled (as a run of its own, with
a ``rollback`` event naming the run it undid). Per applied change:

* a metadata field that was set: set it back to its before-value;
* items added to a metadata list: remove those items;
* a row field that was updated: set it back (a profile by name is looked up to its id);
* a row that was inserted: delete it, by the id the journal recorded for it;
* a package install: cannot be undone by remediate (a person uninstalls it).

A change whose field is already back at its before-value is left out, so a second rollback of
the same run changes nothing. A field that changed again since the run (neither the run's
after-value nor its before-value) is not overwritten: it is listed for a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from remediate import engine
from remediate.errors import StalePlan, UsageError
from remediate.journal import ApplyEnd, ApplyStart, BatchIntent, BatchOutcome, Interrupted, Journal
from remediate.journal import Rollback as RollbackRecord
from remediate.orgs import OrgHandle
from remediate.plan import Change, MetadataWrite, Plan, RecordDelete, RecordWrite
from remediate.salesforce import soql
from remediate.steps.base import Inventory, MetadataRead, OrgRead, get_path

# Reference fields whose journal before-value is a name: (sobject, field) -> (object, name field)
REFERENCE_NAMES = {("User", "ProfileId"): ("Profile", "Name")}


# ---- history -------------------------------------------------------------------------------


@dataclass
class RunSummary:
    run_id: str
    org: str = ""
    at: str = ""
    kind: str = "apply"  # apply | enforce | rollback
    status: str = ""
    changes: int = 0  # applied (counted from the run's batches)
    pending: int = 0
    approval: str = ""
    rollback_of: str | None = None
    unknown: int = 0  # changes in batches whose outcome is unknown (sent, never answered)


def runs(journal: Journal, org: str | None = None) -> list[RunSummary]:
    """Every run in the journal, oldest first (optionally one org's). Counts come from the
    batches: a run that died between sending a batch and journalling its outcome shows that
    batch's changes as ``unknown``, whatever its end record says (it may have none)."""
    found: dict[str, RunSummary] = {}
    intents: dict[str, dict[int, int]] = {}  # run -> batch number -> changes, not yet answered
    batched: set[str] = set()  # runs whose batches were journalled (their counts win)
    ended: dict[str, str] = {}
    interrupted: set[str] = set()
    for record in journal.records():
        run_id = record.run_id
        if not run_id:
            continue
        run = found.setdefault(run_id, RunSummary(run_id, at=record.at))
        if record.org:
            run.org = record.org
        if isinstance(record, ApplyStart):
            approved = record.approval
            run.approval = f"{approved.get('how', '?')} by {approved.get('by', '?')}"
        elif isinstance(record, BatchIntent):
            intents.setdefault(run_id, {})[record.batch] = len(record.changes)
        elif isinstance(record, BatchOutcome):
            batched.add(run_id)
            if record.batch is not None:
                intents.get(run_id, {}).pop(record.batch, None)
            if record.result == "applied":
                run.changes += len(record.changes)
            elif record.result == "unknown":
                run.unknown += len(record.changes)
        elif isinstance(record, Interrupted):
            interrupted.add(run_id)
        elif isinstance(record, ApplyEnd):
            ended[run_id] = record.status
            if run_id not in batched:
                run.changes = record.applied  # nothing to count from
        elif isinstance(record, RollbackRecord):
            run.kind = "rollback"
            run.rollback_of = record.rollback_of
        elif record.event == "enforce":
            extra = record.model_extra or {}
            run.kind = "enforce"
            run.status = str(extra.get("outcome", ""))
            run.changes = len(extra.get("applied") or [])
            run.pending = len(extra.get("pending") or [])
            if not run.approval:
                run.approval = "waiting" if run.pending else "-"
    for run_id, run in found.items():
        run.unknown += sum(intents.get(run_id, {}).values())
        if run.kind != "enforce":  # an enforce record's outcome is its status
            run.status = ended.get(run_id) or ("interrupted" if run_id in interrupted
                                               else "incomplete" if run.approval
                                               else run.status)
        if run.unknown:
            run.status = "unknown outcome"
    out = list(found.values())
    return [r for r in out if org is None or r.org == org]


# ---- rollback ------------------------------------------------------------------------------


@dataclass
class RecordedRun:
    run_id: str
    org: str
    org_id: str
    changes: list[dict[str, Any]] = field(default_factory=list)  # applied, with created ids


def recorded(journal: Journal, run_id: str) -> RecordedRun:
    """What the journal says run ``run_id`` applied, and the changes of its batches whose
    outcome is unknown (marked ``_unknown``: rollback re-reads the org for those)."""
    run: RecordedRun | None = None
    intents: dict[int, BatchIntent] = {}
    for record in journal.records():
        if record.run_id != run_id:
            continue
        if isinstance(record, ApplyStart):
            run = RecordedRun(run_id, str(record.org), record.org_id)
        elif isinstance(record, BatchIntent) and run:
            intents[record.batch] = record
        elif isinstance(record, BatchOutcome) and run:
            if record.batch is not None:
                intents.pop(record.batch, None)
            if record.result == "failed":
                continue
            created = record.created
            for i, change in enumerate(record.changes):
                run.changes.append({**change, "_created": created[i] if i < len(created)
                                    else None, "_unknown": record.result == "unknown"})
    if run is not None:
        for _, intent in sorted(intents.items()):
            run.changes.extend({**c, "_created": None, "_unknown": True}
                               for c in intent.changes)
    if run is None:
        known = [r.run_id for r in runs(journal) if r.changes]
        hint = f"recent runs that applied changes: {', '.join(known[-3:])}" if known else \
            "the journal records no run that applied changes"
        raise UsageError(f"run {run_id!r}: not in the journal ({journal.path}), or it applied "
                         "nothing", hint=hint)
    return run


@dataclass
class Rollback:
    run: RecordedRun
    current: engine.Assessment

    @property
    def plan(self) -> Plan:
        return self.current.plan


def build(handle: OrgHandle, journal: Journal, run_id: str) -> Rollback:
    """The plan that takes the run's changes back, against the org as it is now."""
    run = recorded(journal, run_id)
    if run.org != handle.name:
        raise UsageError(f"run {run_id} was on org {run.org!r}, not {handle.name!r}")
    undo = _Undo(handle, run)
    changes = undo.changes()
    org = undo.inv.org
    if run.org_id[:15] != org.org_id[:15]:
        raise StalePlan(f"run {run_id} was on org id {run.org_id}, but {handle.name!r} is now "
                        f"{org.org_id}; nothing was written")
    plan = Plan.build(org=handle.name, org_id=org.org_id, instance_url=org.my_domain_url,
                      playbooks_digest=handle.digest, changes=changes)
    return Rollback(run, engine.Assessment(org, [], plan, undo.inv))


class _Undo:
    def __init__(self, handle: OrgHandle, run: RecordedRun) -> None:
        self.handle = handle
        self.run = run
        reads: set[Any] = {OrgRead()}
        for c in run.changes:
            w = c.get("write") or {}
            if w.get("api") == "metadata":
                reads.add(MetadataRead(w["type"], w["full_name"]))
        self.inv: Inventory = handle.gateway.fetch(reads)
        self._rows: dict[tuple[str, str], dict[str, Any] | None] = {}

    def changes(self) -> list[Change]:
        if any("write" not in c for c in self.run.changes):
            raise UsageError(f"run {self.run.run_id} was journalled by an older remediate that "
                             "did not record its writes; it cannot be rolled back automatically")
        self._load_rows()
        out: list[Change] = []
        for c in self.run.changes:
            change = self._undo(c)
            if change is not None:
                out.append(change)
        return out

    def _undo(self, c: dict[str, Any]) -> Change | None:
        w = c["write"] or {}
        base = {"playbook": c["playbook"], "step": c["step"], "kind": c["kind"],
                "cause": c.get("cause"), "target": c["target"], "field": c["field"]}
        api = w.get("api")
        if api == "metadata":
            return self._undo_metadata(base, c, w)
        if api == "tooling":
            return Change(**base, before=c["after"], after=c["before"],
                          manual=f"remediate cannot undo '{c['target']}: {c['field']}' (run "
                                 f"{self.run.run_id}); a person must undo it in Setup")
        if api == "delete":
            return self._undo_delete(base, c, w)
        if w.get("record_id"):
            return self._undo_update(base, c, w)
        return self._undo_insert(base, c, w)

    def _undo_delete(self, base: dict[str, Any], c: dict[str, Any],
                     w: dict[str, Any]) -> Change | None:
        """A row a rollback deleted: insert it again with the fields it was inserted with."""
        fields = dict(w.get("fields") or {})
        if not fields:
            return Change(**base, before=c["after"], after=c["before"],
                          manual=f"the journal does not hold the fields of the {w['sobject']} "
                                 f"row run {self.run.run_id} deleted; recreate it in Setup")
        if self._rows.get((w["sobject"], w["record_id"])) is not None \
                or self._matching(w["sobject"], fields):
            return None  # not deleted after all, or already inserted again
        return Change(**base, before=c["after"], after=c["before"],
                      write=RecordWrite(sobject=w["sobject"], fields=fields))

    def _matching(self, sobject: str, fields: dict[str, Any]) -> str | None:
        """The id of a row whose fields are all ``fields`` (strings compared in SOQL), or None."""
        names = sorted(k for k, v in fields.items() if isinstance(v, str))
        if not names:
            return None
        where = " AND ".join(f"{n} = {soql.quote(str(fields[n]))}" for n in names)
        rows = self.handle.gateway.query(f"SELECT Id FROM {sobject} WHERE {where} LIMIT 1")
        return str(rows[0]["Id"]) if rows else None

    def _undo_metadata(self, base: dict[str, Any], c: dict[str, Any],
                       w: dict[str, Any]) -> Change | None:
        component = self.inv.metadata(w["type"], w["full_name"])
        now = get_path(component, w["path"])
        if w.get("mode", "set") == "set":
            if _same(now, c["before"]):
                return None
            if not _same(now, c["after"]):
                return self._changed_since(base, now, c["before"])
            return Change(**base, before=now, after=c["before"],
                          write=MetadataWrite(type=w["type"], full_name=w["full_name"],
                                              path=w["path"], value=c["before"]))
        items = _as_list(now)
        present = [item for item in w["value"] if item in items]
        if not present:
            return None
        return Change(**base, before=c["after"], after=c["before"],
                      write=MetadataWrite(type=w["type"], full_name=w["full_name"],
                                          path=w["path"], value=present, mode="remove"))

    def _undo_update(self, base: dict[str, Any], c: dict[str, Any],
                     w: dict[str, Any]) -> Change | None:
        sobject, record_id = w["sobject"], w["record_id"]
        row = self._rows.get((sobject, record_id))
        if row is None:
            return self._changed_since(base, "deleted", c["before"])
        fields: dict[str, Any] = {}
        for name, value in w["fields"].items():
            old = self._old_value(sobject, name, c["before"])
            now = row.get(name)
            if _same_id(now, old):
                continue
            if not _same_id(now, value):
                return self._changed_since(base, now, c["before"])
            fields[name] = old
        if not fields:
            return None
        return Change(**base, before=c["after"], after=c["before"],
                      write=RecordWrite(sobject=sobject, record_id=record_id, fields=fields))

    def _undo_insert(self, base: dict[str, Any], c: dict[str, Any],
                     w: dict[str, Any]) -> Change | None:
        record_id = c.get("_created")
        if not record_id and c.get("_unknown"):
            # sent, never answered: whether the row exists is the org's to say
            record_id = self._matching(w["sobject"], dict(w.get("fields") or {}))
            if record_id is None:
                return None  # never inserted
            self._rows[(w["sobject"], record_id)] = {"Id": record_id}  # just read: it exists
        if not record_id:
            return Change(**base, before=c["after"], after=c["before"],
                          manual=f"the journal has no id for the row run {self.run.run_id} "
                                 f"inserted ({c['target']}: {c['field']}); delete it in Setup")
        if self._rows.get((w["sobject"], record_id)) is None:
            return None  # already gone
        return Change(**base, before=c["after"], after=c["before"],
                      write=RecordDelete(sobject=w["sobject"], record_id=record_id,
                                         fields=dict(w.get("fields") or {})))

    def _changed_since(self, base: dict[str, Any], now: Any, before: Any) -> Change:
        return Change(**base, before=now, after=before,
                      manual=f"changed again since run {self.run.run_id} (now {now!r}); left as "
                             "it is. Set it back by hand if the run's before-value is wanted")

    def _old_value(self, sobject: str, name: str, before: Any) -> Any:
        ref = REFERENCE_NAMES.get((sobject, name))
        if ref is None:
            return before
        obj, name_field = ref
        rows = self.handle.gateway.query(
            f"SELECT Id FROM {obj} WHERE {name_field} = {soql.quote(str(before))} LIMIT 1")
        if not rows:
            raise UsageError(f"rollback of run {self.run.run_id}: no {obj} named {before!r} "
                             "to restore")
        return rows[0]["Id"]

    def _load_rows(self) -> None:
        """Read the rows the run updated or inserted, one query per object."""
        wanted: dict[str, dict[str, set[str]]] = {}
        for c in self.run.changes:
            w = c.get("write") or {}
            if w.get("api") not in ("rest", "delete"):
                continue
            record_id = w.get("record_id") or c.get("_created")
            if not record_id:
                continue
            entry = wanted.setdefault(w["sobject"], {"ids": set(), "fields": {"Id"}})
            entry["ids"].add(record_id)
            if w.get("record_id") and w.get("api") == "rest":
                entry["fields"].update(w["fields"])
        for sobject, entry in sorted(wanted.items()):
            ids = sorted(entry["ids"])
            for record_id in ids:
                self._rows[(sobject, record_id)] = None
            query = (f"SELECT {', '.join(sorted(entry['fields']))} FROM {sobject} WHERE Id IN "
                     f"({soql.in_list(str(i) for i in ids)})")
            for row in self.handle.gateway.query(query):
                for record_id in ids:
                    if str(row["Id"])[:15] == record_id[:15]:
                        self._rows[(sobject, record_id)] = row


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if a in (None, "", []) and b in (None, "", []):
        return True
    return bool(a == b)


def _same_id(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str) and len(a) in (15, 18) and len(b) in (15, 18):
        return a[:15] == b[:15]
    return _same(a, b)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def journal_rollback(journal: Journal, rollback_run: str, of: str, org: str) -> None:
    journal.append("rollback", run_id=rollback_run, rollback_of=of, org=org)
