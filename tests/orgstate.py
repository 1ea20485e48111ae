"""Helpers for the reliability suites (tests/faults, tests/properties, tests/security).

* ``open_demo``: a built-in org's handle on a Sandbox the test holds, with zero-wait retries;
* ``state_keys``/``diff_keys``: what changed in an org between two snapshots, as change keys
  comparable with the writes of a plan or of the journal;
* ``run_apply``: what ``remediate apply --yes`` does (assess, apply, re-read), in process;
* ``fast_setup``: parse the Metadata WSDL and the playbooks once per process, so hundreds of
  handles stay fast.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediate import engine
from remediate import journal as journal_module
from remediate.builtin import open_on_sandbox
from remediate.errors import RemediateError
from remediate.journal import Journal
from remediate.orgs import OrgHandle
from remediate.plan import Change, MetadataWrite, RecordDelete, RecordWrite
from remediate.salesforce.retry import RetryPolicy
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org

#: Rows the platform writes by itself (a login leaves LoginHistory and counts on its OauthToken
#: row), and fields it stamps.
IGNORED_TABLES = frozenset({"LoginHistory", "OauthToken"})
IGNORED_FIELDS = frozenset({"LastModifiedDate", "SystemModstamp", "CreatedDate", "LastLoginDate",
                            "LastModifiedById", "CreatedById"})

Key = tuple[Any, ...]

_document: Any = None


def fast_setup(monkeypatch: Any) -> None:
    """Parse once per process what every handle would parse again: simple-salesforce's
    Metadata WSDL and the shipped playbooks."""
    import simple_salesforce.metadata as vendor
    from zeep import Client
    from zeep.transports import Transport
    from zeep.wsdl import Document

    from remediate import playbook as playbooks

    def client(wsdl: Any, settings: Any = None, **kwargs: Any) -> Any:
        global _document
        if _document is None:
            _document = Document(wsdl, Transport(), settings=settings)  # type: ignore[arg-type]  # zeep: an instance
        return Client(_document, settings=settings, **kwargs)

    monkeypatch.setattr(vendor, "Client", client)
    monkeypatch.setattr(playbooks, "load", _cached(playbooks.load))
    # the journal's fsync proves nothing here and costs a disk flush per line
    monkeypatch.setattr(journal_module.os, "fsync", lambda fd: None)


def _cached(fn: Any) -> Any:
    return functools.cache(fn)


@functools.cache
def scenario(name: str) -> scenarios.Scenario:
    return scenarios.load(name)


def demo_sandbox(spec: scenarios.Scenario | None = None) -> tuple[scenarios.Scenario, Sandbox]:
    """A fresh sandbox holding the demo org (or ``spec``'s)."""
    if spec is None:
        return scenario("demo"), Sandbox([copy.deepcopy(_built("demo"))])
    return spec, Sandbox([scenarios.build_org(spec)])


@functools.cache
def _built(name: str) -> Org:
    return scenarios.build_org(scenario(name))


@functools.cache
def baseline(name: str = "demo") -> dict[str, Any]:
    """The snapshot of a freshly built scenario org."""
    return snapshot(_built(name))


def open_demo(spec: scenarios.Scenario, sandbox: Sandbox) -> OrgHandle:
    return open_on_sandbox("demo", spec, sandbox, retry=RetryPolicy.no_wait())


# ---- org state as change keys ------------------------------------------------------------


def snapshot(org: Org) -> dict[str, Any]:
    return {"tables": copy.deepcopy({k: v for k, v in org.tables.items()
                                     if k not in IGNORED_TABLES}),
            "metadata": copy.deepcopy(org.metadata)}


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, value


def _row_fields(row: dict[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset((k, str(v)[:15] if isinstance(v, str) and len(v) == 18 else v)
                     for k, v in row.items() if k not in IGNORED_FIELDS and k != "Id")


def diff_keys(before: dict[str, Any], after: dict[str, Any]) -> list[Key]:
    """Every change between two snapshots: ("insert", sobject, fields), ("delete", sobject,
    id), ("update", sobject, id, field), ("metadata", type, fullName, path).

    Effects the org derives from a change are folded into it: a profile's LoginIpRange rows
    are its ``loginIpRanges`` metadata, a licence's UsedLicenses counts its assignments, a
    ConnectedApp's SetupEntityAccess rows are its ``profileName``/``permissionSetName``, and
    the assignment of a profile's own permission set follows ``User.ProfileId``.
    """
    out: set[Key] = set()
    tables = after["tables"]
    profiles = {rid[:15]: row.get("Name") for rid, row in tables.get("Profile", {}).items()}
    apps = {rid[:15]: row.get("Name") for rid, row in
            tables.get("ConnectedApplication", {}).items()}
    profile_owned = {rid[:15] for rid, row in tables.get("PermissionSet", {}).items()
                     if row.get("IsOwnedByProfile")}
    for sobject in sorted(set(before["tables"]) | set(after["tables"])):
        old, new = before["tables"].get(sobject, {}), after["tables"].get(sobject, {})
        touched: list[tuple[str, Key]] = []
        for rid in new.keys() - old.keys():
            touched.append((rid, ("insert", sobject, _row_fields(new[rid]))))
        for rid in old.keys() - new.keys():
            touched.append((rid, ("delete", sobject, rid[:15])))
        for rid in old.keys() & new.keys():
            for name in sorted(set(old[rid]) | set(new[rid])):
                if name not in IGNORED_FIELDS and old[rid].get(name) != new[rid].get(name):
                    touched.append((rid, ("update", sobject, rid[:15], name)))
        for rid, key in touched:
            if sobject == "LoginIpRange":
                row = new.get(rid) or old.get(rid) or {}
                key = ("metadata", "Profile", profiles.get(str(row.get("ProfileId"))[:15]),
                       "loginIpRanges")
            elif sobject == "PermissionSetLicense" and key[-1] == "UsedLicenses":
                continue
            elif sobject == "PermissionSetAssignment" and str(
                    (new.get(rid) or old.get(rid) or {}).get("PermissionSetId"))[:15] \
                    in profile_owned:
                # a profile's own permission set follows the user's ProfileId
                row = new.get(rid) or old.get(rid) or {}
                key = ("update", "User", str(row.get("AssigneeId"))[:15], "ProfileId")
            elif sobject == "SetupEntityAccess":
                row = new.get(rid) or old.get(rid) or {}
                app = apps.get(str(row.get("SetupEntityId"))[:15])
                if app is not None:  # a ConnectedApp's profileName / permissionSetName
                    owned = str(row.get("ParentId"))[:15] in profile_owned
                    key = ("metadata", "ConnectedApp", app,
                           "profileName" if owned else "permissionSetName")
            out.add(key)
    for type_ in sorted(set(before["metadata"]) | set(after["metadata"])):
        old_t, new_t = before["metadata"].get(type_, {}), after["metadata"].get(type_, {})
        for name in sorted(set(old_t) | set(new_t)):
            a, b = dict(_leaves(old_t.get(name, {}))), dict(_leaves(new_t.get(name, {})))
            for path in sorted(set(a) | set(b)):
                if a.get(path) != b.get(path):
                    out.add(("metadata", type_, name, path))
    return sorted(out, key=repr)


def _matches(want: Key, got: Key) -> bool:
    return got == want or (want[0] == got[0] == "insert" and want[1] == got[1]
                           and want[2] <= got[2])


def unexplained(observed: list[Key], certain: list[Key],
                possible: Sequence[Key] = ()) -> tuple[list[Key], list[Key]]:
    """Match observed changes one to one against ``certain`` ones, then against ``possible``
    ones. Returns (observed changes nothing explains, certain changes not observed)."""
    left = list(observed)
    missing = []
    for want in certain:
        i = next((i for i, got in enumerate(left) if _matches(want, got)), None)
        if i is None:
            missing.append(want)
        else:
            left.pop(i)
    for maybe in possible:
        i = next((i for i, got in enumerate(left) if _matches(maybe, got)), None)
        if i is not None:
            left.pop(i)
    return left, missing


def same_changes(observed: list[Key], expected: list[Key]) -> bool:
    """Whether the observed changes are exactly the expected ones: one to one, an inserted
    row matching a planned insert when it holds every planned field."""
    return unexplained(observed, expected) == ([], [])


def change_keys(changes: list[Change]) -> list[Key]:
    """The keys ``diff_keys`` reports when exactly these changes are made."""
    out: list[Key] = []
    for c in changes:
        w = c.write
        if isinstance(w, RecordWrite):
            if w.sobject == "SetupEntityAccess" and w.record_id is None \
                    and c.target.startswith("ConnectedApp "):
                # folded like diff_keys does: a grant row is the app's permissionSetName
                out.append(("metadata", "ConnectedApp", c.target.split(" ", 1)[1],
                            "permissionSetName"))
            elif w.record_id is None:
                out.append(("insert", w.sobject, _row_fields(dict(w.fields))))
            else:
                out.extend(("update", w.sobject, w.record_id[:15], f) for f in w.fields)
        elif isinstance(w, MetadataWrite):
            out.append(("metadata", w.type, w.full_name, w.path))
        elif isinstance(w, RecordDelete):
            out.append(("delete", w.sobject, w.record_id[:15]))
    return sorted(out, key=repr)


# ---- a run -------------------------------------------------------------------------------


@dataclass
class Run:
    error: RemediateError | None = None
    planned: list[Change] = field(default_factory=list)
    converged: bool = False  # the re-read after apply found no automatic change left


def run_apply(handle: OrgHandle, journal: Journal) -> Run:
    """``remediate apply --org demo --yes``: assess, apply, re-read."""
    run = Run()
    try:
        current = engine.assess(handle)
        run.planned = list(current.plan.automatic)
        if current.plan.automatic:
            done = engine.apply_and_verify(handle, current, engine.approval("flag"), journal,
                                           sign_in=False)
            run.converged = not done.after.plan.automatic
        else:
            run.converged = True
    except RemediateError as err:
        run.error = err
    return run


def journal_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def journal_batches(path: Path, result: str) -> list[dict[str, Any]]:
    """The change records of every batch the journal marks with ``result``."""
    return [c for r in journal_records(path) if r["event"] == "batch" and r["result"] == result
            for c in r["changes"]]


def record_keys(records: list[dict[str, Any]]) -> list[Key]:
    changes = []
    for rec in records:
        write = rec.get("write")
        if write is None:
            continue
        models: dict[str, Any] = {"metadata": MetadataWrite, "delete": RecordDelete}
        model = models.get(write.get("api"), RecordWrite)
        changes.append(Change(playbook=rec["playbook"], step=rec["step"], kind=rec["kind"],
                              target=rec["target"], field=rec["field"],
                              write=model.model_validate(write)))
    return change_keys(changes)
