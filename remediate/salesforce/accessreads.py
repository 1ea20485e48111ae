"""Reads for object, field and record type access (C15), the ConnectedApplication rows of apps
(C16) and the OAuth usage of the integration users (evidence for C9 and C13).

``plan`` is called by ``reads.fetch`` beside the read planner (planner.py): it adds SOQL queries to
the fetch's composite and returns the other calls (one describe per object) for the same wave,
so these reads cost no round trip of their own.

Sources (object reference): ObjectPermissions and FieldPermissions (rows of a permission set:
``ParentId``, ``SobjectType``, ``Field`` = ``Object.Field``, the ``Permissions*`` flags; View Setup
and Configuration reads them), RecordType (``SobjectType``, ``DeveloperName``), OauthToken
(``AppName`` is the app's label, ``UserId``, ``LastUsedDate``, ``UseCount``; users with Customize
Application see every user's tokens), ConnectedApplication (``OptionsHasSessionLevelPolicy``).
An object's fields come from its REST describe (``GET .../sobjects/{object}/describe``; an
unknown object answers 404 NOT_FOUND).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from remediate.errors import SalesforceError
from remediate.steps.base import (
    AppRow,
    AppRowRead,
    AppUsage,
    Inventory,
    OauthUsageRead,
    ObjectAccessInfo,
    ObjectAccessRead,
    Read,
)

if TYPE_CHECKING:
    from remediate.salesforce.session import Connection

Query = tuple[str, Callable[[list[dict[str, Any]]], None]]

OBJECT_FLAGS = ("PermissionsRead", "PermissionsCreate", "PermissionsEdit", "PermissionsDelete",
                "PermissionsViewAllRecords", "PermissionsModifyAllRecords")


def _in(values: list[str]) -> str:
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)


def plan(gw: Connection, wanted: set[Read], inv: Inventory, queries: list[Query]) -> list[
        Callable[[], Any]]:
    """Queries for the composite (appended to ``queries``) and the calls for the wave."""
    calls: list[Callable[[], Any]] = []
    access = sorted((r for r in wanted if isinstance(r, ObjectAccessRead)), key=repr)
    described: dict[str, frozenset[str] | None] = {}
    objects = sorted({o for r in access for o in r.objects}
                     | {f.partition(".")[0] for r in access for f in r.fields}
                     | {t.partition(".")[0] for r in access for t in r.record_types})
    for obj in objects:
        calls.append(partial(_describe, gw, obj, described))
    for read in access:
        _plan_access(read, inv, queries, described)
    apps = sorted({r.name for r in wanted if isinstance(r, AppRowRead)})
    if apps:
        def apps_done(records: list[dict[str, Any]]) -> None:
            by_name = {str(r.get("Name")): r for r in records}
            for name in apps:
                row = by_name.get(name)
                inv.results[AppRowRead(name)] = None if row is None else AppRow(
                    str(row["Id"]), name, bool(row.get("OptionsHasSessionLevelPolicy")))

        queries.append(("SELECT Id, Name, OptionsHasSessionLevelPolicy FROM ConnectedApplication "
                        f"WHERE Name IN ({_in(apps)})", apps_done))
    users = sorted({r.username for r in wanted if isinstance(r, OauthUsageRead)})
    if users:
        _plan_usage(users, inv, queries)
    return calls


def _describe(gw: Connection, obj: str, out: dict[str, frozenset[str] | None]) -> None:
    try:
        answer = gw._call(f"describing {obj}",
                          partial(gw._sf_call, "restful", f"sobjects/{obj}/describe"))
    except SalesforceError as err:
        if err.code == "NOT_FOUND":
            out[obj.lower()] = None
            return
        raise
    fields = answer.get("fields") if isinstance(answer, dict) else None
    out[obj.lower()] = frozenset(str(f.get("name", "")).lower() for f in fields or []
                                 if isinstance(f, dict))


def _plan_access(read: ObjectAccessRead, inv: Inventory, queries: list[Query],
                 described: dict[str, frozenset[str] | None]) -> None:
    parent = f"(Parent.Name = {_in([read.permission_set])} OR Parent.Label = " \
             f"{_in([read.permission_set])}) AND Parent.IsOwnedByProfile = false"
    got: dict[str, Any] = {"objects": {}, "fields": {}, "record_types": {}, "parent": None}
    pending = [0]

    def finish() -> None:
        pending[0] -= 1
        if pending[0] == 0:
            inv.results[read] = ObjectAccessInfo(got["parent"], got["objects"], got["fields"],
                                                 described, got["record_types"])

    def objects_done(records: list[dict[str, Any]]) -> None:
        for r in records:
            got["objects"][str(r.get("SobjectType")).lower()] = r
            got["parent"] = got["parent"] or r.get("ParentId")
        finish()

    def fields_done(records: list[dict[str, Any]]) -> None:
        for r in records:
            got["fields"][str(r.get("Field")).lower()] = r
            got["parent"] = got["parent"] or r.get("ParentId")
        finish()

    def types_done(records: list[dict[str, Any]]) -> None:
        for r in records:
            got["record_types"][f"{r.get('SobjectType')}.{r.get('DeveloperName')}".lower()] = \
                str(r["Id"])
        finish()

    if read.objects:
        pending[0] += 1
        flags = ", ".join(OBJECT_FLAGS)
        queries.append((f"SELECT Id, ParentId, SobjectType, {flags} FROM ObjectPermissions "
                        f"WHERE {parent} AND SobjectType IN ({_in(list(read.objects))})",
                        objects_done))
    if read.fields:
        pending[0] += 1
        queries.append(("SELECT Id, ParentId, SobjectType, Field, PermissionsRead, "
                        f"PermissionsEdit FROM FieldPermissions WHERE {parent} AND Field IN "
                        f"({_in(list(read.fields))})", fields_done))
    if read.record_types:
        pending[0] += 1
        types = sorted({t.partition(".")[0] for t in read.record_types})
        queries.append(("SELECT Id, SobjectType, DeveloperName FROM RecordType WHERE "
                        f"SobjectType IN ({_in(types)})", types_done))
    if not pending[0]:
        inv.results[read] = ObjectAccessInfo(None, {}, {}, described, {})


def _plan_usage(users: list[str], inv: Inventory, queries: list[Query]) -> None:
    """OauthToken rows of the users, newest use first. Whether the org has each app is told
    by the engine from the app metadata read in the same fetch (``engine.oauth_usage``)."""
    def tokens_done(records: list[dict[str, Any]]) -> None:
        per_user: dict[str, list[AppUsage]] = {u.lower(): [] for u in users}
        for r in records:
            username = str((r.get("User") or {}).get("Username") or "")
            per_user.setdefault(username.lower(), []).append(AppUsage(
                username, str(r.get("AppName") or ""), r.get("LastUsedDate"),
                r.get("UseCount"), None))
        for user in users:
            inv.results[OauthUsageRead(user)] = tuple(per_user.get(user.lower(), []))

    queries.append(("SELECT AppName, UserId, User.Username, LastUsedDate, UseCount FROM "
                    f"OauthToken WHERE User.Username IN ({_in(users)}) ORDER BY LastUsedDate "
                    "DESC NULLS LAST LIMIT 200", tokens_done))
