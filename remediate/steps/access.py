"""Step kind for what the integration user may reach after signing in (cause C15): object
permissions, field permissions and record type visibilities on a permission set the playbook
names. A profile is never edited for this.

Where each lives (object reference; Metadata API PermissionSet page):

* object permissions: ``ObjectPermissions`` rows (``ParentId`` the permission set,
  ``SobjectType``, ``PermissionsRead/Create/Edit/Delete/ViewAllRecords/ModifyAllRecords``);
  Create, Edit and View All need Read, Delete needs Read and Edit, Modify All needs Read, Edit,
  Delete and View All: the step asks for what a flag needs with it.
* field permissions: ``FieldPermissions`` rows (``Field`` = ``Object.Field``,
  ``PermissionsRead``/``PermissionsEdit``; Edit needs Read).
* record type visibilities: no sObject holds them; PermissionSet metadata
  ``recordTypeVisibilities`` (``recordType`` = ``Object.DeveloperName``, ``visible``). The v260
  PermissionSet page says a deployed permission set must carry all its metadata "to avoid
  accidentally overwriting" it, so the write sends the component whole, as read (the engine's
  default for a type that is not an overlay), and the row writes are ordered after it
  (plan.PHASES) so that it cannot take them back (ADR 0033).

Rows are inserted when missing and updated to add flags; a flag is never switched off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

from remediate.errors import NotFound
from remediate.plan import Change, MetadataWrite, RecordWrite
from remediate.steps.base import (
    Inventory,
    MetadataRead,
    ObjectAccessInfo,
    ObjectAccessRead,
    Params,
    PermissionSetRead,
    Read,
    StepContext,
    StepKind,
    register,
)

#: Object flag -> (API field, the flags it needs). Object reference, ObjectPermissions.
OBJECT_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "read": ("PermissionsRead", ()),
    "create": ("PermissionsCreate", ("read",)),
    "edit": ("PermissionsEdit", ("read",)),
    "delete": ("PermissionsDelete", ("read", "edit")),
    "view_all": ("PermissionsViewAllRecords", ("read",)),
    "modify_all": ("PermissionsModifyAllRecords", ("read", "edit", "delete", "view_all")),
}
FIELD_FLAGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "read": ("PermissionsRead", ()),
    "edit": ("PermissionsEdit", ("read",)),
}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectNeed(_Entry):
    object: str  # API name: Account, Invoice__c
    read: bool = True
    create: bool = False
    edit: bool = False
    delete: bool = False
    view_all: bool = False
    modify_all: bool = False

    @field_validator("object")
    @classmethod
    def _api_name(cls, value: str) -> str:
        if not value or "." in value or " " in value:
            raise ValueError(f"{value!r} is not an object API name (e.g. Account, Invoice__c)")
        return value


class FieldNeed(_Entry):
    field: str  # Object.Field
    read: bool = True
    edit: bool = False

    @field_validator("field")
    @classmethod
    def _qualified(cls, value: str) -> str:
        obj, dot, name = value.partition(".")
        if not (obj and dot and name) or "." in name or " " in value:
            raise ValueError(f"{value!r} is not Object.Field (e.g. Account.Industry)")
        return value


class ObjectAccessParams(Params):
    permission_set: str  # API name (a label resolves too, except for record types)
    objects: list[ObjectNeed] = []
    fields: list[FieldNeed] = []
    record_types: list[str] = []  # Object.DeveloperName

    @field_validator("record_types")
    @classmethod
    def _record_types(cls, value: list[str]) -> list[str]:
        for item in value:
            obj, dot, name = item.partition(".")
            if not (obj and dot and name) or "." in name:
                raise ValueError(f"{item!r} is not Object.DeveloperName (e.g. Account.Partner)")
        return value


def _closure(wanted: set[str], table: dict[str, tuple[str, tuple[str, ...]]]) -> set[str]:
    out = set(wanted)
    while True:
        more = {n for w in out for n in table[w][1]} - out
        if not more:
            return out
        out |= more


def _flags(need: _Entry, table: dict[str, tuple[str, tuple[str, ...]]]) -> list[str]:
    wanted = {name for name in table if getattr(need, name)}
    return [n for n in table if n in _closure(wanted, table)]


@register
class PermissionSetObjectAccess(StepKind[ObjectAccessParams]):
    name = "permission_set.object_access"
    summary = ("The named permission set grants the objects, fields and record types the "
               "integration uses (never a profile).")
    causes = ("C15",)
    # Object reference: ObjectPermissions/FieldPermissions need View Setup to read; editing a
    # permission set needs Manage Profiles and Permission Sets; its metadata, Modify Metadata.
    permissions = ("PermissionsViewSetup", "PermissionsManageProfilesPermissionsets",
                   "PermissionsModifyMetadata")
    params = ObjectAccessParams
    example: ClassVar[dict[str, Any]] = {
        "permission_set": "Workato_API_Access",
        "objects": [{"object": "Account", "read": True, "edit": True},
                    {"object": "Contact", "read": True}],
        "fields": [{"field": "Account.Industry", "read": True, "edit": True}],
        "record_types": ["Account.Partner"]}

    def _read(self, p: ObjectAccessParams) -> ObjectAccessRead:
        return ObjectAccessRead(p.permission_set, tuple(o.object for o in p.objects),
                                tuple(f.field for f in p.fields), tuple(p.record_types))

    def reads(self, p: ObjectAccessParams) -> Iterable[Read]:
        out: list[Read] = [PermissionSetRead(p.permission_set)]
        if p.objects or p.fields or p.record_types:
            out.append(self._read(p))
        if p.record_types:
            out.append(MetadataRead("PermissionSet", p.permission_set))
        return out

    def diff(self, p: ObjectAccessParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        ps = inv.permission_set(p.permission_set, where=ctx.where)
        if not (p.objects or p.fields or p.record_types):
            return []
        info = inv.get(self._read(p), where=ctx.where)
        assert isinstance(info, ObjectAccessInfo)
        self._check_names(p, info, ctx)
        target = f"PermissionSet {ps.name}"
        out: list[Change] = []
        for need in p.objects:
            row = info.objects.get(need.object.lower())
            out += _grant(ctx, self.name, target, ps.id, "ObjectPermissions", need.object,
                          {"SobjectType": need.object}, row, _flags(need, OBJECT_FLAGS),
                          OBJECT_FLAGS)
        for fneed in p.fields:
            row = info.fields.get(fneed.field.lower())
            obj = fneed.field.partition(".")[0]
            out += _grant(ctx, self.name, target, ps.id, "FieldPermissions", fneed.field,
                          {"SobjectType": obj, "Field": fneed.field}, row,
                          _flags(fneed, FIELD_FLAGS), FIELD_FLAGS)
        if p.record_types:
            out += self._record_types(p, inv, ctx, target, ps.name)
        return out

    def _check_names(self, p: ObjectAccessParams, info: ObjectAccessInfo,
                     ctx: StepContext) -> None:
        """Objects, fields and record types the org does not have: the step cannot be checked
        (a misspelt name, or a package that is not installed)."""
        for obj in [o.object for o in p.objects] + [f.field.partition(".")[0] for f in p.fields]:
            if info.described.get(obj.lower()) is None:
                raise NotFound(f"{ctx.where}: no object {obj!r} in the org",
                               hint="use the object's API name (Account, Invoice__c); a "
                                    "package's objects carry its namespace (ns__Object__c)")
        for fneed in p.fields:
            obj, _, name = fneed.field.partition(".")
            if name.lower() not in (info.described.get(obj.lower()) or frozenset()):
                raise NotFound(f"{ctx.where}: object {obj} has no field {name!r}",
                               hint="use the field's API name (Industry, Region__c)")
        for rt in p.record_types:
            if rt.lower() not in info.record_types:
                raise NotFound(f"{ctx.where}: no record type {rt!r} in the org",
                               hint="name it Object.DeveloperName, e.g. Account.Partner")

    def _record_types(self, p: ObjectAccessParams, inv: Inventory, ctx: StepContext,
                      target: str, api_name: str) -> list[Change]:
        component = inv.metadata("PermissionSet", p.permission_set, where=ctx.where)
        if component is None or not component.get("fullName"):
            raise NotFound(f"{ctx.where}: the metadata of permission set {p.permission_set!r} "
                           "could not be read",
                           hint=f"name the permission set by its API name ({api_name!r}) to "
                                "check record types")
        items = component.get("recordTypeVisibilities") or []
        items = [items] if isinstance(items, dict) else [i for i in items if isinstance(i, dict)]
        visible = {str(i.get("recordType")).lower() for i in items
                   if i.get("visible") in (True, "true")}
        missing = [rt for rt in p.record_types if rt.lower() not in visible]
        if not missing:
            return []
        kept = [i for i in items if str(i.get("recordType")).lower()
                not in {m.lower() for m in missing}]
        after = sorted(kept + [{"recordType": rt, "visible": True} for rt in missing],
                       key=lambda i: str(i.get("recordType")))
        # before/after are the field's values as written, so rollback can restore them: a
        # record type that had no entry goes back as not visible (an absent entry removes none)
        named = {str(i.get("recordType")).lower() for i in items}
        before = sorted(items + [{"recordType": rt, "visible": False} for rt in missing
                                 if rt.lower() not in named],
                        key=lambda i: str(i.get("recordType")))
        return [ctx.change(
            self.name, target=target, field="recordTypeVisibilities", before=before,
            after=after,
            write=MetadataWrite(type="PermissionSet", full_name=str(component["fullName"]),
                                path="recordTypeVisibilities", value=after))]

    def capture(self, p: ObjectAccessParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


def _grant(ctx: StepContext, kind: str, target: str, parent_id: str, sobject: str, name: str,
           keys: dict[str, str], row: dict[str, Any] | None, wanted: list[str],
           table: dict[str, tuple[str, tuple[str, ...]]]) -> list[Change]:
    have = [] if row is None else [n for n in table if row.get(table[n][0])]
    missing = [n for n in wanted if n not in have]
    if not missing:
        return []
    flags = {table[n][0]: True for n in missing}
    if row is None:  # one insert (rollback deletes the row)
        after = [n for n in table if n in missing]
        return [ctx.change(kind, target=target, field=f"{sobject} {name}", before="no access",
                           after=after,
                           write=RecordWrite(sobject=sobject,
                                             fields={"ParentId": parent_id, **keys, **flags}))]
    # one change per flag, before and after the field's own values (rollback restores them);
    # the engine merges them into one update of the row
    return [ctx.change(kind, target=target, field=f"{sobject} {name}: {table[n][0]}",
                       before=False, after=True,
                       write=RecordWrite(sobject=sobject, record_id=str(row["Id"]),
                                         fields={table[n][0]: True})) for n in missing]
