"""Who may do what in a sandbox org: the decisions the token endpoint and the APIs share."""

from __future__ import annotations

import ipaddress
from typing import Any

from remediate.sandbox.ids import same_id
from remediate.sandbox.state import Org, Row


def assigned_permission_sets(org: Org, user_id: str) -> list[Row]:
    """Permission sets assigned to the user, excluding the profile-owned one."""
    out = []
    for assignment in org.tables["PermissionSetAssignment"].values():
        if not same_id(assignment.get("AssigneeId"), user_id):
            continue
        ps = org.get("PermissionSet", assignment.get("PermissionSetId"))
        if ps is not None and not ps.get("IsOwnedByProfile"):
            out.append(ps)
    return out


def permission_sets_of(org: Org, user_id: str) -> list[Row]:
    """Every permission set whose permissions the user holds: profile-owned plus assigned
    (kept for the org's generation, ``Org.kept``)."""
    def compute() -> tuple[Row, ...]:
        user = org.get("User", user_id)
        if user is None:
            return ()
        owned = org.profile_permission_set(user["ProfileId"])
        return tuple(([owned] if owned else []) + assigned_permission_sets(org, user_id))

    return list(org.kept(("permission_sets_of", user_id), compute))


def has_permission(org: Org, user_id: str, flag: str) -> bool:
    """True when the profile or any assigned permission set grants ``Permissions<flag>``
    (kept for the org's generation, ``Org.kept``)."""
    field = f"Permissions{flag}"
    return org.kept(("has_permission", user_id, flag),
                 lambda: any(ps.get(field) for ps in permission_sets_of(org, user_id)))


def holds_license(org: Org, user_id: str, license_id: str) -> bool:
    return any(
        same_id(a.get("AssigneeId"), user_id) and same_id(a.get("PermissionSetLicenseId"), license_id)
        for a in org.tables["PermissionSetLicenseAssign"].values()
    )


def app_entity(org: Org, app_name: str) -> tuple[str, str] | None:
    """(SetupEntityType, SetupEntityId) for a connected app or external client app by name."""
    row = org.connected_application(app_name)
    if row is not None:
        return "ConnectedApplication", row["Id"]
    eca = org.metadata.get("ExternalClientApplication", {}).get(app_name)
    if eca is not None:
        return "ExternalClientApplication", eca["_id"]
    return None


def granting_parents(org: Org, entity_id: str) -> list[Row]:
    """Permission sets (profile-owned or not) that SetupEntityAccess attaches to the app."""
    out = []
    for sea in org.tables["SetupEntityAccess"].values():
        if same_id(sea.get("SetupEntityId"), entity_id):
            ps = org.get("PermissionSet", sea.get("ParentId"))
            if ps is not None:
                out.append(ps)
    return out


def user_granted_app(org: Org, user_id: str, app_name: str) -> bool:
    """Admin-approved access: the user's profile or an assigned permission set lists the app.

    For external client apps the policy's ``commaSeparatedProfile`` and
    ``commaSeparatedPermissionSet`` (API names; see docs/sandbox.md) count as well.
    """
    user = org.get("User", user_id)
    if user is None:
        return False
    held = permission_sets_of(org, user_id)
    held_ids = {ps["Id"][:15] for ps in held}
    entity = app_entity(org, app_name)
    if entity is not None:
        for parent in granting_parents(org, entity[1]):
            if parent["Id"][:15] in held_ids:
                return True
    policy = eca_oauth_policy(org, app_name)
    if policy is not None:
        profile = org.get("Profile", user["ProfileId"])
        profiles = _split(policy.get("commaSeparatedProfile"))
        if profile is not None and profile["Name"] in profiles:
            return True
        names = _split(policy.get("commaSeparatedPermissionSet"))
        if any(ps.get("Name") in names for ps in held if not ps.get("IsOwnedByProfile")):
            return True
    return False


def eca_oauth_policy(org: Org, app_name: str) -> dict[str, Any] | None:
    for policy in org.metadata.get("ExtlClntAppOauthConfigurablePolicies", {}).values():
        if policy.get("externalClientApplication") == app_name:
            return policy
    return None


def eca_global_settings(org: Org, app_name: str) -> dict[str, Any] | None:
    for settings in org.metadata.get("ExtlClntAppGlobalOauthSettings", {}).values():
        if settings.get("externalClientApplication") == app_name:
            return settings
    return None


def ip_allowed(org: Org, user_id: str, client_ip: str) -> bool:
    """Profile login IP ranges: when the profile has any, the client IP must be inside one."""
    user = org.get("User", user_id)
    if user is None:
        return False
    ranges = org.find("LoginIpRange", ProfileId=user["ProfileId"])
    if not ranges:
        return True
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for r in ranges:
        try:
            start = ipaddress.ip_address(r["StartAddress"])
            end = ipaddress.ip_address(r["EndAddress"])
        except (KeyError, ValueError):
            continue
        if start.version == ip.version and start <= ip <= end:  # type: ignore[operator]
            return True
    return False


def is_admin(org: Org, user_id: str) -> bool:
    """An admin session: may read setup objects and use the Metadata API (kept for the org's
    generation, ``Org.kept``)."""
    return org.kept(("is_admin", user_id), lambda: has_permission(
        org, user_id, "ModifyAllData") or (has_permission(org, user_id, "ViewSetup")
                                           and has_permission(org, user_id, "ManageUsers")))


def _split(value: Any) -> set[str]:
    if not value:
        return set()
    return {part.strip() for part in str(value).split(",") if part.strip()}


def can_read_object(org: Org, user_id: str, sobject: str) -> bool:
    """C15: a data object (schema ``data``) is visible to a user whose profile or a permission
    set grants Read on it through an ObjectPermissions row (object reference), or who holds
    View All Data / Modify All Data."""
    from remediate.sandbox.schema import OBJECTS

    obj = OBJECTS.get(sobject)
    if obj is None or not obj.data:
        return True
    return org.kept(("can_read_object", user_id, sobject),
                 lambda: _reads_object(org, user_id, sobject))


def _reads_object(org: Org, user_id: str, sobject: str) -> bool:
    if has_permission(org, user_id, "ViewAllData") or has_permission(org, user_id,
                                                                     "ModifyAllData"):
        return True
    held = {ps["Id"][:15] for ps in permission_sets_of(org, user_id)}
    return any(str(r.get("ParentId"))[:15] in held and r.get("PermissionsRead")
               and str(r.get("SobjectType")).lower() == sobject.lower()
               for r in org.tables["ObjectPermissions"].values())
