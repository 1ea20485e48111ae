"""Object, field and record type access of a sandbox org (cause C15), the login hours of a
profile (cause C16) and the OAuth usage rows: the rules and the rows they own, in the state
layer (ADR 0031); the REST, SOAP and OAuth code only call these. Who may read a data object is
``access.can_read_object``.

Sources: the object reference pages ObjectPermissions and FieldPermissions (rows of a permission
set, profile-owned or not; the dependencies between the flags below), RecordType, and the
Metadata API PermissionSet page (``recordTypeVisibilities``: ``recordType`` ``Object.DevName``
and ``visible``). Login hours: Profile ``loginHours`` holds ``<day>Start``/``<day>End`` as
minutes after midnight (retrieved profiles in public repositories [Q]); a day with neither is
unrestricted. The sandbox reads them in UTC (the org's time zone is not modelled:
docs/sandbox.md, assumptions).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from remediate.sandbox.ids import same_id
from remediate.sandbox.schema import OBJECTS
from remediate.sandbox.state import Org, Row

#: ObjectPermissions flags and the flags each needs on the same row (object reference).
OBJECT_NEEDS: dict[str, tuple[str, ...]] = {
    "PermissionsRead": (),
    "PermissionsCreate": ("PermissionsRead",),
    "PermissionsEdit": ("PermissionsRead",),
    "PermissionsDelete": ("PermissionsRead", "PermissionsEdit"),
    "PermissionsViewAllRecords": ("PermissionsRead",),
    "PermissionsModifyAllRecords": ("PermissionsRead", "PermissionsEdit", "PermissionsDelete",
                                    "PermissionsViewAllRecords"),
}
FIELD_NEEDS: dict[str, tuple[str, ...]] = {"PermissionsRead": (), "PermissionsEdit": ("PermissionsRead",)}

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

Problem = tuple[str, str, tuple[str, ...]]  # (errorCode, message, fields)


def data_object(name: str) -> bool:
    obj = OBJECTS.get(name)
    return obj is not None and obj.data


def check_row(org: Org, sobject: str, row: Row) -> Problem | None:
    """Whether an ObjectPermissions / FieldPermissions row (as it would be stored) is valid."""
    if sobject not in ("ObjectPermissions", "FieldPermissions"):
        return None
    if org.get("PermissionSet", row.get("ParentId")) is None:
        return ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("ParentId",))
    obj = str(row.get("SobjectType") or "")
    if not data_object(obj):
        return ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"SObject Type Name: bad value for restricted picklist field: {obj}",
                ("SobjectType",))
    needs = OBJECT_NEEDS if sobject == "ObjectPermissions" else FIELD_NEEDS
    if sobject == "FieldPermissions":
        field = str(row.get("Field") or "")
        name, _, rest = field.partition(".")
        if name != obj or OBJECTS[obj].field_name(rest) is None or rest == "Id":
            return ("INVALID_FIELD", f"Invalid field {field} for FieldPermissions", ("Field",))
    for flag, required in needs.items():
        if row.get(flag) and not all(row.get(r) for r in required):
            missing = next(r for r in required if not row.get(r))
            return ("FIELD_INTEGRITY_EXCEPTION",
                    f"{flag} requires {missing} for {row.get('Field') or obj}", (flag,))
    return None


def duplicate(org: Org, sobject: str, row: Row) -> str | None:
    """The id of an existing row for the same parent and object (or field)."""
    if sobject not in ("ObjectPermissions", "FieldPermissions"):
        return None
    key = "SobjectType" if sobject == "ObjectPermissions" else "Field"
    for other in org.tables[sobject].values():
        if same_id(other.get("ParentId"), row.get("ParentId")) and \
                str(other.get(key)).lower() == str(row.get(key)).lower():
            return str(other["Id"])
    return None


# ---- record type visibilities (PermissionSet metadata) -----------------------------------


def record_type_names(org: Org) -> set[str]:
    return {f"{r['SobjectType']}.{r['DeveloperName']}" for r in org.tables["RecordType"].values()}


def record_type_visibilities(ps: Row) -> list[dict[str, Any]]:
    stored = ps.get("_RecordTypeVisibilities") or {}
    return [{"recordType": name, "visible": bool(visible)}
            for name, visible in sorted(stored.items())]


def set_record_type_visibilities(org: Org, ps: Row, items: list[dict[str, Any]]) -> None:
    """A write carries the list it wants; entries it leaves out keep their value (the sandbox
    merges PermissionSet updates, metadata.CHOICES['view_updates'])."""
    stored = dict(ps.get("_RecordTypeVisibilities") or {})
    for item in items:
        stored[str(item.get("recordType"))] = item.get("visible") in (True, "true")
    org.update("PermissionSet", ps["Id"], {"_RecordTypeVisibilities": stored})


def unknown_record_types(org: Org, items: list[dict[str, Any]]) -> list[str]:
    known = {n.lower() for n in record_type_names(org)}
    return [str(i.get("recordType")) for i in items
            if str(i.get("recordType")).lower() not in known]


# ---- login hours (Profile metadata) -------------------------------------------------------


def login_hours(profile: Row) -> dict[str, str]:
    return dict(profile.get("_LoginHours") or {})


def login_hours_problem(hours: dict[str, Any]) -> str | None:
    for day in DAYS:
        start, end = hours.get(f"{day}Start"), hours.get(f"{day}End")
        if (start is None) != (end is None):
            return f"{day}: a start time needs an end time"
        if start is None:
            continue
        try:
            lo, hi = int(str(start)), int(str(end))
        except ValueError:
            return f"{day}: times are minutes after midnight"
        if not (0 <= lo < hi <= 1440) or lo % 60 or hi % 60:
            return f"{day}: start {lo} and end {hi} must be whole hours, start before end"
    unknown = [k for k in hours if not any(k == f"{d}{e}" for d in DAYS for e in ("Start", "End"))]
    return f"unknown field {unknown[0]}" if unknown else None


def within_login_hours(org: Org, user_id: str, when: datetime | None = None) -> bool:
    user = org.get("User", user_id)
    profile = org.get("Profile", user.get("ProfileId")) if user else None
    if profile is None:
        return True
    hours = login_hours(profile)
    if not hours:
        return True
    now = (when or org_now(org)).astimezone(UTC)
    day = DAYS[now.weekday()]
    start, end = hours.get(f"{day}Start"), hours.get(f"{day}End")
    if start is None or end is None:
        return True  # a day without hours is unrestricted
    minute = now.hour * 60 + now.minute
    return int(start) <= minute < int(end)


def org_now(org: Org) -> datetime:
    """The org's clock: the scenario's fixed time when it sets one (tests of login hours)."""
    fixed = getattr(org, "clock", None)
    if fixed:
        return datetime.fromisoformat(str(fixed).replace("Z", "+00:00"))
    return datetime.now(UTC)


# ---- Connected Apps OAuth Usage -----------------------------------------------------------


def record_oauth_use(org: Org, user_id: str, app_label: str) -> None:
    """A successful sign-in through an app counts on the user's OauthToken row for it (CHOICE,
    docs/sandbox.md: which grants leave a row is not documented; the sandbox counts every
    one). The row's AppName is the app's label (object reference, OauthToken)."""
    from remediate.sandbox.state import now_iso

    for row in org.tables["OauthToken"].values():
        if same_id(row.get("UserId"), user_id) and row.get("AppName") == app_label:
            row["UseCount"] = int(row.get("UseCount") or 0) + 1
            row["LastUsedDate"] = now_iso()
            return
    org.insert("OauthToken", {"AppName": app_label, "UserId": user_id, "LastUsedDate": now_iso(),
                              "UseCount": 1, "AppMenuItemId": None})
