"""Step kinds for the integration user: causes C4 (profile), C5 (permission set), C6 (permission
set licence), C7 (API Enabled) and C8 (inactive). Writes are REST rows, batched by the engine
through composite/sobjects in dependency order (a licence before the set that needs it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from remediate.plan import Change, RecordWrite
from remediate.steps.base import (
    Inventory,
    LicenseRead,
    Params,
    PermissionSetRead,
    ProfileRead,
    Read,
    StepContext,
    StepKind,
    UserRead,
    register,
)


class UserParams(Params):
    username: str


def _target(username: str) -> str:
    return f"User {username}"


# ---- C4 ----------------------------------------------------------------------------------


class ProfileParams(UserParams):
    profile: str  # Name or metadata API name (platform-truth U4)


@register
class UserProfile(StepKind[ProfileParams]):
    name = "user.profile"
    summary = "Give the integration user the profile the integration expects."
    causes = ("C4",)
    permissions = ("PermissionsManageUsers",)
    params = ProfileParams
    example: ClassVar[dict[str, Any]] = {"username": "workato.integration@acme.example.com",
                                         "profile": "Workato Integration"}

    def reads(self, p: ProfileParams) -> Iterable[Read]:
        return [UserRead(p.username), ProfileRead(p.profile)]

    def diff(self, p: ProfileParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        user = inv.user(p.username, where=ctx.where)
        profile = inv.profile(p.profile, where=ctx.where)
        if user.profile_id[:15] == profile.id[:15]:
            return []
        if user.user_license_id and profile.user_license_id and \
                user.user_license_id[:15] != profile.user_license_id[:15]:
            # changing the profile would change the user's licence: downgrades are refused and
            # an incompatible profile fails FIELD_INTEGRITY_EXCEPTION (platform-truth U2)
            licence = f"the {profile.user_license!r} licence" if profile.user_license \
                else "another user licence"
            return [ctx.change(
                self.name, target=_target(p.username), field="Profile",
                before=user.profile_name, after=profile.name,
                manual=(f"Profile {profile.name!r} belongs to {licence}, not to the licence of "
                        f"the user's current profile {user.profile_name!r}: Salesforce only "
                        "assigns profiles compatible with the user's licence, so remediate does "
                        f"not write it. In Setup > Users > Users, edit {p.username}: choose the "
                        f"User License of {profile.name!r} and then Profile {profile.name!r}, "
                        "and save (a licence downgrade is refused; then create a new "
                        "integration user with that licence), or name a profile of the user's "
                        "licence in the playbook."))]
        return [ctx.change(self.name, target=_target(p.username), field="Profile",
                           before=user.profile_name, after=profile.name,
                           write=RecordWrite(sobject="User", record_id=user.id,
                                             fields={"ProfileId": profile.id}))]

    def capture(self, p: ProfileParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        user = inv.user(p.username, where=ctx.where)
        return {"username": p.username, "profile": user.profile_name}


# ---- C5 ----------------------------------------------------------------------------------


class PermissionSetParams(UserParams):
    permission_set: str  # API name or label (platform-truth U1)


def _assign(kind: str, ctx: StepContext, inv: Inventory, username: str,
            permission_set: str, field: str = "permission set") -> list[Change]:
    user = inv.user(username, where=ctx.where)
    ps = inv.permission_set(permission_set, where=ctx.where)
    if user.has_set(ps.name):
        return []
    return [ctx.change(kind, target=_target(username), field=f"{field} {ps.name}",
                       before="not assigned", after="assigned",
                       write=RecordWrite(sobject="PermissionSetAssignment",
                                         fields={"AssigneeId": user.id,
                                                 "PermissionSetId": ps.id}))]


@register
class UserPermissionSet(StepKind[PermissionSetParams]):
    name = "user.permission_set"
    summary = "Assign a permission set to the integration user."
    causes = ("C5",)
    permissions = ("PermissionsAssignPermissionSets",)
    params = PermissionSetParams
    example: ClassVar[dict[str, Any]] = {"username": "copilot.integration@acme.example.com",
                                         "permission_set": "Copilot_for_Sales_Integration"}

    def reads(self, p: PermissionSetParams) -> Iterable[Read]:
        return [UserRead(p.username), PermissionSetRead(p.permission_set)]

    def diff(self, p: PermissionSetParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        return _assign(self.name, ctx, inv, p.username, p.permission_set)

    def capture(self, p: PermissionSetParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C6 ----------------------------------------------------------------------------------


class LicenseParams(UserParams):
    license: str  # PermissionSetLicense DeveloperName or label (platform-truth U1)


@register
class UserLicense(StepKind[LicenseParams]):
    name = "user.license"
    summary = "Assign a permission set licence (e.g. Salesforce API Integration) to the user."
    causes = ("C6",)
    permissions = ("PermissionsManageUsers",)
    params = LicenseParams
    example: ClassVar[dict[str, Any]] = {"username": "copilot.integration@acme.example.com",
                                         "license": "SalesforceAPIIntegrationPsl"}

    def reads(self, p: LicenseParams) -> Iterable[Read]:
        return [UserRead(p.username), LicenseRead(p.license)]

    def diff(self, p: LicenseParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        user = inv.user(p.username, where=ctx.where)
        lic = inv.license(p.license, where=ctx.where)
        if lic.developer_name in user.licenses:
            return []
        return [ctx.change(self.name, target=_target(p.username),
                           field=f"permission set license {lic.developer_name}",
                           before="not assigned", after="assigned",
                           write=RecordWrite(sobject="PermissionSetLicenseAssign",
                                             fields={"AssigneeId": user.id,
                                                     "PermissionSetLicenseId": lic.id}))]

    def capture(self, p: LicenseParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C7 ----------------------------------------------------------------------------------


@register
class UserApiEnabled(StepKind[PermissionSetParams]):
    """API Enabled comes from a named permission set that carries it (ADR 6).

    The baseline is "this set is assigned", whatever the profile grants today: a profile can
    change (and ``user.profile`` may change it in the same plan), and judging API Enabled by the
    current profile would make convergence depend on the order of the fixes.
    """

    name = "user.api_enabled"
    summary = ("Make sure the user has API Enabled through the named permission set (a profile "
               "is never edited for this).")
    causes = ("C7",)
    permissions = ("PermissionsAssignPermissionSets",)
    params = PermissionSetParams
    example: ClassVar[dict[str, Any]] = {"username": "workato.integration@acme.example.com",
                                         "permission_set": "Workato_API_Access"}

    def reads(self, p: PermissionSetParams) -> Iterable[Read]:
        return [UserRead(p.username), PermissionSetRead(p.permission_set)]

    def diff(self, p: PermissionSetParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        user = inv.user(p.username, where=ctx.where)
        ps = inv.permission_set(p.permission_set, where=ctx.where)
        if not ps.api_enabled:
            return [ctx.change(
                self.name, target=_target(p.username), field="API Enabled",
                before=user.api_enabled, after=True,
                manual=(f"Permission set {ps.name!r} does not grant API Enabled. Enable 'API "
                        "Enabled' in that permission set, or name one that has it in the "
                        "playbook."))]
        return _assign(self.name, ctx, inv, p.username, p.permission_set)

    def capture(self, p: PermissionSetParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C8 ----------------------------------------------------------------------------------


class ActiveParams(UserParams):
    allow_reactivation: bool = False


@register
class UserActive(StepKind[ActiveParams]):
    name = "user.active"
    summary = "The integration user is active (reactivated only when the playbook allows it)."
    causes = ("C8",)
    permissions = ("PermissionsManageUsers",)
    params = ActiveParams
    example: ClassVar[dict[str, Any]] = {"username": "copilot.integration@acme.example.com",
                                         "allow_reactivation": True}

    def reads(self, p: ActiveParams) -> Iterable[Read]:
        return [UserRead(p.username)]

    def diff(self, p: ActiveParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        user = inv.user(p.username, where=ctx.where)
        if user.active:
            return []
        if not p.allow_reactivation:
            return [ctx.change(
                self.name, target=_target(p.username), field="IsActive", before=False,
                after=True,
                manual=(f"User {p.username} is inactive. Reactivate it in Setup > Users (a "
                        "licence is consumed), or set allow_reactivation: true on this step."))]
        return [ctx.change(self.name, target=_target(p.username), field="IsActive", before=False,
                           after=True,
                           write=RecordWrite(sobject="User", record_id=user.id,
                                             fields={"IsActive": True}))]

    def capture(self, p: ActiveParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return {"username": p.username, "allow_reactivation": True}
