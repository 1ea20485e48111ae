"""Step kinds for the app an integration signs in through: a connected app or an external
client app (ECA). Causes C1 (client credentials off), C2 (no Run As user), C3 (admin-approved
app not granted), C9 (app missing) and C11 (IP relaxation).

Both app families are handled by the same kinds; ``type`` picks the metadata that holds each
setting (reference salesforce-api.md section 2, the equivalence table):

==================  =========================================  ==========================================
setting             ConnectedApp                               ECA
==================  =========================================  ==========================================
client credentials  oauthConfig.isClientCredentialEnabled      GlobalOauthSettings + OauthPolicies flag
Run As user         oauthConfig.oauthClientCredentialUser      OauthPolicies.clientCredentialsFlowUser
permitted users     oauthConfig.isAdminApproved                OauthPolicies.permittedUsersPolicyType
granted sets        permissionSetName[] / profileName[]        commaSeparatedPermissionSet / ...Profile
IP relaxation       oauthPolicy.ipRelaxation                   OauthPolicies.ipRelaxationPolicyType
==================  =========================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from remediate.errors import NotFound
from remediate.plan import Change, MetadataWrite
from remediate.salesforce import versions
from remediate.steps.base import (
    Inventory,
    MetadataRead,
    Params,
    PermissionSetRead,
    ProfileRead,
    Read,
    StepContext,
    StepKind,
    UserRead,
    get_path,
    register,
)

AppType = Literal["connected_app", "external_client_app"]
CA = "ConnectedApp"
ECA = "ExternalClientApplication"
ECA_GLOBAL = "ExtlClntAppGlobalOauthSettings"
ECA_POLICY = "ExtlClntAppOauthConfigurablePolicies"


class AppParams(Params):
    app: str
    type: AppType = "connected_app"


def eca_global_name(app: str) -> str:
    return f"{app}_glbloauth"


def eca_policy_name(app: str) -> str:
    return f"{app}_oauthPlcy"


def app_reads(p: AppParams) -> list[Read]:
    if p.type == "connected_app":
        return [MetadataRead(CA, p.app)]
    return [MetadataRead(ECA, p.app), MetadataRead(ECA_GLOBAL, eca_global_name(p.app)),
            MetadataRead(ECA_POLICY, eca_policy_name(p.app))]


def app_target(p: AppParams) -> str:
    return f"{'ConnectedApp' if p.type == 'connected_app' else 'ExternalClientApp'} {p.app}"


def missing_app(p: AppParams, inv: Inventory, kind: str, ctx: StepContext) -> list[Change] | None:
    """A change that says the app is not in the org, or None when it is. Only ``app.installed``
    reports the missing app as a change; any other step on it could not be checked, so it
    raises NotFound and the engine makes it an ``unknown`` finding."""
    header = inv.metadata(CA if p.type == "connected_app" else ECA, p.app)
    if header is not None and header.get("fullName"):
        return None
    what = "connected app" if p.type == "connected_app" else "external client app"
    if kind != "app.installed":
        raise NotFound(f"{ctx.where}: {what} {p.app!r} not in org (see its app.installed step)")
    manual = (f"The {what} {p.app!r} is not in this org. Install the integration's package "
              f"(or create the app) before its other settings can be checked.")
    if p.type == "connected_app":
        # C13 (platform-truth.md A8): an app that lives in its vendor's org is blocked unless
        # installed here, for users without "Approve Uninstalled Connected Apps".
        manual += (" If the integration signs in through its vendor's own app, install it: "
                   "Setup → Apps → Connected Apps → Connected Apps OAuth Usage → the app → "
                   "Install. Until then its sign-in fails 'app must be installed into org' "
                   "(C13) for users without Approve Uninstalled Connected Apps.")
    return [ctx.change(kind, target=app_target(p), field="installed", before=False, after=True,
                       manual=manual)]


def _need(inv: Inventory, type_: str, field: str, ctx: StepContext) -> None:
    """The org must be talked to at a version that has ``type_.field`` (versions.NEEDS)."""
    versions.require(inv.api_version, type_, field, where=ctx.where, how=inv.api_version_how)


def _set(kind: str, ctx: StepContext, p: AppParams, type_: str, full_name: str, path: str,
         before: Any, after: Any, *, field: str | None = None) -> Change:
    return ctx.change(kind, target=app_target(p), field=field or path, before=before, after=after,
                      write=MetadataWrite(type=type_, full_name=full_name, path=path, value=after))


# ---- C1 ----------------------------------------------------------------------------------


class ClientCredentialsParams(AppParams):
    enabled: bool = True


@register
class ClientCredentials(StepKind[ClientCredentialsParams]):
    name = "app.client_credentials"
    summary = "Turn the OAuth client credentials flow on (or off) for the app."
    causes = ("C1",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData")  # A5
    params = ClientCredentialsParams
    example: ClassVar[dict[str, Any]] = {"app": "Copilot_for_Sales", "enabled": True}

    def reads(self, p: ClientCredentialsParams) -> Iterable[Read]:
        return app_reads(p)

    def diff(self, p: ClientCredentialsParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        missing = missing_app(p, inv, self.name, ctx)
        if missing is not None:
            return missing
        out = []
        if p.type == "connected_app":
            now = bool(get_path(inv.metadata(CA, p.app), "oauthConfig.isClientCredentialEnabled"))
            if now != p.enabled:
                out.append(_set(self.name, ctx, p, CA, p.app,
                                "oauthConfig.isClientCredentialEnabled", now, p.enabled))
            return out
        for type_, full_name in ((ECA_GLOBAL, eca_global_name(p.app)),
                                 (ECA_POLICY, eca_policy_name(p.app))):
            _need(inv, type_, "isClientCredentialsFlowEnabled", ctx)
            now = bool(get_path(inv.metadata(type_, full_name), "isClientCredentialsFlowEnabled"))
            if now != p.enabled:
                out.append(_set(self.name, ctx, p, type_, full_name,
                                "isClientCredentialsFlowEnabled", now, p.enabled,
                                field=f"{type_}.isClientCredentialsFlowEnabled"))
        return out

    def capture(self, p: ClientCredentialsParams, inv: Inventory,
                ctx: StepContext) -> dict[str, Any]:
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, p.app), "oauthConfig.isClientCredentialEnabled")
        else:
            now = get_path(inv.metadata(ECA_POLICY, eca_policy_name(p.app)),
                           "isClientCredentialsFlowEnabled")
        return {"app": p.app, "type": p.type, "enabled": bool(now)}


# ---- C2 ----------------------------------------------------------------------------------


class RunAsParams(AppParams):
    username: str


@register
class RunAsUser(StepKind[RunAsParams]):
    name = "app.run_as_user"
    summary = "Set the app's client credentials Run As (execution) user."
    causes = ("C2",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData")  # A5
    params = RunAsParams
    example: ClassVar[dict[str, Any]] = {"app": "Copilot_for_Sales",
                                         "username": "copilot.integration@acme.example.com"}

    def reads(self, p: RunAsParams) -> Iterable[Read]:
        return [*app_reads(p), UserRead(p.username)]

    def _path(self, p: RunAsParams) -> tuple[str, str, str]:
        if p.type == "connected_app":
            return CA, p.app, "oauthConfig.oauthClientCredentialUser"
        return ECA_POLICY, eca_policy_name(p.app), "clientCredentialsFlowUser"

    def diff(self, p: RunAsParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        inv.user(p.username, where=ctx.where)  # the Run As user must exist
        missing = missing_app(p, inv, self.name, ctx)
        if missing is not None:
            return missing
        type_, full_name, path = self._path(p)
        if p.type == "external_client_app":
            _need(inv, type_, path, ctx)
        now = get_path(inv.metadata(type_, full_name), path)
        if (now or "").lower() == p.username.lower():
            return []
        return [_set(self.name, ctx, p, type_, full_name, path, now, p.username)]

    def capture(self, p: RunAsParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        type_, full_name, path = self._path(p)
        now = get_path(inv.metadata(type_, full_name), path)
        return {"app": p.app, "type": p.type, "username": now or p.username}


# ---- C3 ----------------------------------------------------------------------------------


class AccessParams(AppParams):
    """Admin-approved access, granted through a permission set (option 1) or a profile (2)."""

    admin_approved: bool = True
    via: Literal["permission_set", "profile"] = "permission_set"
    permission_set: str | None = None
    profile: str | None = None

    @model_validator(mode="after")
    def _grant_named(self) -> AccessParams:
        if self.via == "permission_set" and not self.permission_set:
            raise ValueError("via: permission_set needs 'permission_set' (its API name)")
        if self.via == "profile" and not self.profile:
            raise ValueError("via: profile needs 'profile' (the profile name)")
        return self


@register
class AppAccess(StepKind[AccessParams]):
    name = "app.access"
    summary = ("Limit the app to admin-approved users and grant it to the integration's "
               "permission set or profile.")
    causes = ("C3",)
    # A5: updating an app's profiles and permission sets
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData",
                   "PermissionsManageProfilesPermissionsets")
    params = AccessParams
    example: ClassVar[dict[str, Any]] = {"app": "Workato", "via": "profile",
                                         "profile": "Workato Integration"}

    def reads(self, p: AccessParams) -> Iterable[Read]:
        extra: list[Read] = [PermissionSetRead(p.permission_set)] if p.permission_set else []
        if p.profile:
            extra.append(ProfileRead(p.profile))
        return [*app_reads(p), *extra]

    def diff(self, p: AccessParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        if p.permission_set:
            inv.permission_set(p.permission_set, where=ctx.where)
        if p.profile:
            inv.profile(p.profile, where=ctx.where)
        missing = missing_app(p, inv, self.name, ctx)
        if missing is not None:
            return missing
        grant = p.permission_set if p.via == "permission_set" else p.profile
        assert grant is not None
        if p.via == "permission_set":  # the API name, also when the playbook gives a label
            grant = inv.permission_set(grant, where=ctx.where).name
        out: list[Change] = []
        if p.type == "connected_app":
            app = inv.metadata(CA, p.app)
            approved = bool(get_path(app, "oauthConfig.isAdminApproved"))
            if approved != p.admin_approved:
                out.append(_set(self.name, ctx, p, CA, p.app, "oauthConfig.isAdminApproved",
                                approved, p.admin_approved))
            list_field = "permissionSetName" if p.via == "permission_set" else "profileName"
            granted = sorted(_as_list(get_path(app, list_field)))
            if grant not in granted:
                out.append(ctx.change(
                    self.name, target=app_target(p), field=list_field, before=granted,
                    after=sorted([*granted, grant]),
                    write=MetadataWrite(type=CA, full_name=p.app, path=list_field, value=[grant],
                                        mode="add")))
            return out
        policy_name = eca_policy_name(p.app)
        policy = inv.metadata(ECA_POLICY, policy_name)
        wanted = "AdminApprovedPreAuthorized" if p.admin_approved else "AllSelfAuthorized"
        now = get_path(policy, "permittedUsersPolicyType")
        if now != wanted:
            out.append(_set(self.name, ctx, p, ECA_POLICY, policy_name,
                            "permittedUsersPolicyType", now, wanted))
        list_field = ("commaSeparatedPermissionSet" if p.via == "permission_set"
                      else "commaSeparatedProfile")
        granted = _split(get_path(policy, list_field))
        if grant not in granted:
            after = ", ".join([*granted, grant])
            out.append(_set(self.name, ctx, p, ECA_POLICY, policy_name, list_field,
                            ", ".join(granted) or None, after))
        return out

    def capture(self, p: AccessParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump(exclude_none=True)


# ---- C9 ----------------------------------------------------------------------------------


@register
class AppInstalled(StepKind[AppParams]):
    name = "app.installed"
    summary = "The app the integration signs in through exists in the org."
    causes = ("C9",)
    permissions = ("PermissionsViewSetup", "PermissionsCustomizeApplication")  # A5: reading apps
    params = AppParams
    example: ClassVar[dict[str, Any]] = {"app": "Workato"}

    def reads(self, p: AppParams) -> Iterable[Read]:
        return app_reads(p)

    def diff(self, p: AppParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        return missing_app(p, inv, self.name, ctx) or []

    def capture(self, p: AppParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C14 ---------------------------------------------------------------------------------

ECA_OAUTH = "ExtlClntAppOauthSettings"


def eca_oauth_name(app: str) -> str:
    return f"{app}_oauth"


@register
class ApiScope(StepKind[AppParams]):
    """Since Winter '26 a client credentials token request without a usable scope fails
    ``invalid_grant`` / ``no valid scopes defined`` (platform-truth.md A7): the app must carry
    the ``api`` scope ("Manage user data via APIs")."""

    name = "app.api_scope"
    summary = "The app carries the api OAuth scope (Manage user data via APIs)."
    causes = ("C14",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData")  # A5
    params = AppParams
    example: ClassVar[dict[str, Any]] = {"app": "Copilot_for_Sales"}

    def reads(self, p: AppParams) -> Iterable[Read]:
        if p.type == "connected_app":
            return app_reads(p)
        return [*app_reads(p), MetadataRead(ECA_OAUTH, eca_oauth_name(p.app))]

    def diff(self, p: AppParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        missing = missing_app(p, inv, self.name, ctx)
        if missing is not None:
            return missing
        if p.type == "connected_app":
            scopes = _as_list(get_path(inv.metadata(CA, p.app), "oauthConfig.scopes"))
            if "Api" in scopes:
                return []
            return [ctx.change(
                self.name, target=app_target(p), field="oauthConfig.scopes",
                before=sorted(scopes), after=sorted([*scopes, "Api"]),
                write=MetadataWrite(type=CA, full_name=p.app, path="oauthConfig.scopes",
                                    value=["Api"], mode="add"))]
        settings = inv.metadata(ECA_OAUTH, eca_oauth_name(p.app))
        if settings is None or not settings.get("fullName"):
            raise NotFound(f"{ctx.where}: no {ECA_OAUTH} {eca_oauth_name(p.app)!r} for the "
                           f"external client app {p.app!r}; its OAuth scopes cannot be read",
                           hint="check Setup → External Client App Manager → the app → "
                                "Settings → OAuth Settings → Selected OAuth Scopes")
        scopes = _split(settings.get("commaSeparatedOauthScopes"))
        if "Api" in scopes:
            return []
        after = [*scopes, "Api"]
        return [_set(self.name, ctx, p, ECA_OAUTH, eca_oauth_name(p.app),
                     "commaSeparatedOauthScopes", ", ".join(scopes), ", ".join(after))]

    def capture(self, p: AppParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C11 ---------------------------------------------------------------------------------

ECA_IP = {"ENFORCE": "Enforce", "BYPASS_2FACTOR": "Bypass_2factor", "BYPASS": "Bypass",
          "ENFORCE_RELAXREFRESH": "Enforce_RelaxRefresh"}


class IpRelaxationParams(AppParams):
    policy: Literal["ENFORCE", "BYPASS_2FACTOR", "BYPASS", "ENFORCE_RELAXREFRESH"] = "BYPASS"


@register
class IpRelaxation(StepKind[IpRelaxationParams]):
    name = "app.ip_relaxation"
    summary = "Set the app's IP relaxation policy (whether profile IP ranges apply to it)."
    causes = ("C11",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyAllData")  # A5
    params = IpRelaxationParams
    example: ClassVar[dict[str, Any]] = {"app": "Workato", "policy": "BYPASS"}

    def reads(self, p: IpRelaxationParams) -> Iterable[Read]:
        return app_reads(p)

    def diff(self, p: IpRelaxationParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        missing = missing_app(p, inv, self.name, ctx)
        if missing is not None:
            return missing
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, p.app), "oauthPolicy.ipRelaxation") or "ENFORCE"
            if now == p.policy:
                return []
            return [_set(self.name, ctx, p, CA, p.app, "oauthPolicy.ipRelaxation", now,
                         p.policy)]
        name = eca_policy_name(p.app)
        now = get_path(inv.metadata(ECA_POLICY, name), "ipRelaxationPolicyType") or "Enforce"
        wanted = ECA_IP[p.policy]
        if now == wanted:
            return []
        return [_set(self.name, ctx, p, ECA_POLICY, name, "ipRelaxationPolicyType", now, wanted)]

    def capture(self, p: IpRelaxationParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, p.app), "oauthPolicy.ipRelaxation") or "ENFORCE"
        else:
            eca = get_path(inv.metadata(ECA_POLICY, eca_policy_name(p.app)),
                           "ipRelaxationPolicyType") or "Enforce"
            now = next((k for k, v in ECA_IP.items() if v == eca), "ENFORCE")
        return {"app": p.app, "type": p.type, "policy": now}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _split(value: Any) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]
