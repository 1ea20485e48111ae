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
from remediate.plan import Change, MetadataWrite, RecordWrite
from remediate.salesforce import versions
from remediate.steps.base import (
    AppInfo,
    AppRead,
    Inventory,
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
ECA_OAUTH = "ExtlClntAppOauthSettings"

#: Where an admin edits an installed connected app's policies (platform-truth A1, A3; help
#: "Manage OAuth Access Policies for a Connected App", xcloud.connected_app_manage_oauth.htm).
CA_POLICIES = "Setup → Apps → Connected Apps → Manage Connected Apps → {label} → Edit Policies"
ECA_POLICIES = ("Setup → Apps → External Client Apps → External Client App Manager → {label} → "
                "Edit Policies")


class AppParams(Params):
    """An app by its API name (``app``) and, tried in turn, other names it may have in an org:
    a namespaced ``ns__Name`` or a display name (platform-truth A1, A15)."""

    app: str
    type: AppType = "connected_app"
    candidates: tuple[str, ...] = ()
    namespace: str | None = None  # only an app installed from the package with this namespace


def app_read(p: AppParams) -> AppRead:
    names = tuple(dict.fromkeys(n for n in (p.app, *p.candidates) if n))
    return AppRead(p.type, names, p.namespace or None)


def app_reads(p: AppParams) -> list[Read]:
    return [app_read(p)]


def app_target(p: AppParams, info: AppInfo | None = None) -> str:
    name = info.full_name if info is not None else p.app
    return f"{'ConnectedApp' if p.type == 'connected_app' else 'ExternalClientApp'} {name}"


def _what(p: AppParams) -> str:
    return "connected app" if p.type == "connected_app" else "external client app"


def _looked_for(p: AppParams, inv: Inventory) -> str:
    return inv.app_note(app_read(p)) or f"the {_what(p)} {p.app!r} is not in this org"


def find_app(p: AppParams, inv: Inventory, ctx: StepContext) -> AppInfo:
    """The app the step is about. Only ``app.installed`` reports a missing app as a change;
    any other step on it could not be checked, so this raises NotFound and the engine makes it
    an ``unknown`` finding."""
    info = inv.app(app_read(p), where=ctx.where)
    if info is None:
        raise NotFound(f"{ctx.where}: {_looked_for(p, inv)} (see its app.installed step)")
    return info


def missing_app(p: AppParams, inv: Inventory, kind: str, ctx: StepContext) -> list[Change]:
    """``app.installed``'s change that says the app is not in the org; none when it is."""
    if inv.app(app_read(p), where=ctx.where) is not None:
        return []
    looked = _looked_for(p, inv)
    manual = (f"{ctx.where}: {looked}. Install the integration's package "
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


def _component(inv: Inventory, info: AppInfo, ctx: StepContext) -> dict[str, Any]:
    """The connected app's component as read (A1: an installed app's may not be readable)."""
    comp = inv.metadata(CA, info.full_name)
    if comp is None:
        raise NotFound(f"{ctx.where}: the connected app {info.full_name!r} ({info.origin}) "
                       "could not be read through the Metadata API",
                       hint="check its policies in " + CA_POLICIES.format(label=info.label
                                                                          or info.full_name))
    return comp


def _policy(kind: str, ctx: StepContext, p: AppParams, info: AppInfo, path: str, before: Any,
            after: Any, *, setup: str, shown: str | None = None) -> Change:
    """A connected app policy change: a metadata write for a local app; for an installed app a
    manual change with the Setup click path and the target value (A1, A3), re-checked on the
    next audit or verify."""
    if not info.installed:
        return _set(kind, ctx, p, CA, info.full_name, path, before, after, info=info)
    where = CA_POLICIES.format(label=info.label or info.full_name)
    value = shown if shown is not None else repr(after)
    return ctx.change(kind, target=app_target(p, info), field=path, before=before, after=after,
                      manual=(f"{info.full_name} is {info.origin}: its policies are changed in "
                              f"Setup only. {where} → {setup}: {value}; Save. remediate "
                              "re-checks it on the next audit or verify."))


def _set(kind: str, ctx: StepContext, p: AppParams, type_: str, full_name: str, path: str,
         before: Any, after: Any, *, field: str | None = None,
         info: AppInfo | None = None) -> Change:
    return ctx.change(kind, target=app_target(p, info), field=field or path, before=before,
                      after=after,
                      write=MetadataWrite(type=type_, full_name=full_name, path=path, value=after))


def _eca_part(inv: Inventory, info: AppInfo, type_: str, ctx: StepContext) -> tuple[str, Any]:
    """The ECA component of ``type_`` that names the app (A11), never one made up from a name
    (A12); NotFound when none does."""
    name = info.part(type_)
    if name is None:
        raise NotFound(f"{ctx.where}: no {type_} component of the org names the external "
                       f"client app {info.full_name!r} ({info.origin}) as its "
                       "externalClientApplication; that part could not be read",
                       hint="check " + ECA_POLICIES.format(label=info.label or info.full_name))
    return name, inv.metadata(type_, name) or {}


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
        info = find_app(p, inv, ctx)
        out = []
        if p.type == "connected_app":
            path = "oauthConfig.isClientCredentialEnabled"
            now = bool(get_path(_component(inv, info, ctx), path))
            if now != p.enabled:
                # A2: a packaged app's flow is opted into by the subscriber, in its policies
                out.append(_policy(self.name, ctx, p, info, path, now, p.enabled,
                                   setup="OAuth Policies → Enable Client Credentials Flow",
                                   shown="checked" if p.enabled else "unchecked"))
            return out
        parts = [ECA_POLICY]
        if info.part(ECA_GLOBAL) is not None or not info.installed:
            # a packaged ECA has no global settings in the subscriber org (A12)
            parts.insert(0, ECA_GLOBAL)
        for type_ in parts:
            _need(inv, type_, "isClientCredentialsFlowEnabled", ctx)
            full_name, comp = _eca_part(inv, info, type_, ctx)
            now = bool(get_path(comp, "isClientCredentialsFlowEnabled"))
            if now != p.enabled:
                out.append(_set(self.name, ctx, p, type_, full_name,
                                "isClientCredentialsFlowEnabled", now, p.enabled,
                                field=f"{type_}.isClientCredentialsFlowEnabled", info=info))
        return out

    def capture(self, p: ClientCredentialsParams, inv: Inventory,
                ctx: StepContext) -> dict[str, Any]:
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, info.full_name),
                           "oauthConfig.isClientCredentialEnabled")
        else:
            now = get_path(_eca_part(inv, info, ECA_POLICY, ctx)[1],
                           "isClientCredentialsFlowEnabled")
        return {"app": info.full_name, "type": p.type, "enabled": bool(now)}


# ---- C2 ----------------------------------------------------------------------------------

#: The two "Run As" fields of a connected app (platform-truth A14): the client credentials
#: flow's execution user, and the Custom Connected App Handler's (the Apex plugin's) one.
RUN_AS = {
    "client_credentials": ("oauthConfig.oauthClientCredentialUser",
                           "Client Credentials Flow → Run As"),
    "custom_handler": ("pluginExecutionUser", "Custom Connected App Handler → Run As"),
}


class RunAsParams(AppParams):
    username: str
    #: Which Setup field: the client credentials flow's Run As, or the Custom Connected App
    #: Handler's Run As (A14: Microsoft's Copilot guide checks the latter).
    setting: Literal["client_credentials", "custom_handler"] = "client_credentials"


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

    def diff(self, p: RunAsParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        inv.user(p.username, where=ctx.where)  # the Run As user must exist
        info = find_app(p, inv, ctx)
        if p.type == "external_client_app":
            if p.setting == "custom_handler":
                return []  # an ECA has no Custom Connected App Handler: nothing to set
            _need(inv, ECA_POLICY, "clientCredentialsFlowUser", ctx)
            full_name, comp = _eca_part(inv, info, ECA_POLICY, ctx)
            now = get_path(comp, "clientCredentialsFlowUser")
            if (now or "").lower() == p.username.lower():
                return []
            return [_set(self.name, ctx, p, ECA_POLICY, full_name, "clientCredentialsFlowUser",
                         now, p.username, info=info)]
        path, setup = RUN_AS[p.setting]
        now = get_path(_component(inv, info, ctx), path)
        if (now or "").lower() == p.username.lower():
            return []
        return [_policy(self.name, ctx, p, info, path, now, p.username, setup=setup)]

    def capture(self, p: RunAsParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, info.full_name), RUN_AS[p.setting][0])
        else:
            now = get_path(inv.metadata(ECA_POLICY, info.part(ECA_POLICY) or ""),
                           "clientCredentialsFlowUser") if info.part(ECA_POLICY) else None
        return {"app": info.full_name, "type": p.type, "setting": p.setting,
                "username": now or p.username}


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
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            return self._connected_app(p, info, inv, ctx)
        return self._eca(p, info, inv, ctx)

    def _connected_app(self, p: AccessParams, info: AppInfo, inv: Inventory,
                       ctx: StepContext) -> list[Change]:
        out: list[Change] = []
        app = _component(inv, info, ctx)
        approved = bool(get_path(app, "oauthConfig.isAdminApproved"))
        if approved != p.admin_approved:
            out.append(_policy(
                self.name, ctx, p, info, "oauthConfig.isAdminApproved", approved,
                p.admin_approved, setup="OAuth Policies → Permitted Users",
                shown="Admin approved users are pre-authorized" if p.admin_approved
                else "All users may self-authorize"))
        if p.via == "permission_set":
            assert p.permission_set is not None
            ps = inv.permission_set(p.permission_set, where=ctx.where)
            granted = sorted(_as_list(get_path(app, "permissionSetName")))
            if not any(e[:15] == info.record_id[:15] for e in ps.setup_entities):
                # a SetupEntityAccess row, for local and installed apps alike (A4)
                out.append(ctx.change(
                    self.name, target=app_target(p, info), field="SetupEntityAccess",
                    before=granted, after=sorted([*granted, ps.name]),
                    write=RecordWrite(sobject="SetupEntityAccess",
                                      fields={"ParentId": ps.id,
                                              "SetupEntityId": info.record_id})))
            return out
        assert p.profile is not None
        profile = inv.profile(p.profile, where=ctx.where)
        granted = sorted(_as_list(get_path(app, "profileName")))
        if profile.name in granted:
            return out
        if info.installed:
            # a profile's grant as a SetupEntityAccess row is not confirmed (A4): by hand
            out.append(ctx.change(
                self.name, target=app_target(p, info), field="profileName", before=granted,
                after=sorted([*granted, profile.name]),
                manual=(f"{info.full_name} is {info.origin}. Setup → Apps → Connected Apps → "
                        f"Manage Connected Apps → {info.label or info.full_name} → Manage "
                        f"Profiles → check {profile.name!r}; Save.")))
            return out
        out.append(ctx.change(
            self.name, target=app_target(p, info), field="profileName", before=granted,
            after=sorted([*granted, profile.name]),
            write=MetadataWrite(type=CA, full_name=info.full_name, path="profileName",
                                value=[profile.name], mode="add")))
        return out

    def _eca(self, p: AccessParams, info: AppInfo, inv: Inventory,
             ctx: StepContext) -> list[Change]:
        out: list[Change] = []
        policy_name, policy = _eca_part(inv, info, ECA_POLICY, ctx)
        wanted = "AdminApprovedPreAuthorized" if p.admin_approved else "AllSelfAuthorized"
        now = get_path(policy, "permittedUsersPolicyType")
        if now != wanted:
            out.append(_set(self.name, ctx, p, ECA_POLICY, policy_name,
                            "permittedUsersPolicyType", now, wanted, info=info))
        list_field = ("commaSeparatedPermissionSet" if p.via == "permission_set"
                      else "commaSeparatedProfile")
        granted = _split(get_path(policy, list_field))
        if p.via == "permission_set":
            assert p.permission_set is not None
            ps = inv.permission_set(p.permission_set, where=ctx.where)
            # A13: the doc says ids, samples use API names; either form counts as granted,
            # and a name is added in the form the list already uses (names when empty)
            known = {ps.name.lower(), ps.id[:15].lower()}
            if any(g.lower() in known or g[:15].lower() in known for g in granted):
                return out
            uses_ids = bool(granted) and all(_looks_like_id(g, "0PS") for g in granted)
            grant = ps.id if uses_ids else ps.name
        else:
            assert p.profile is not None
            grant = inv.profile(p.profile, where=ctx.where).name
            if grant in granted:
                return out
        out.append(_set(self.name, ctx, p, ECA_POLICY, policy_name, list_field,
                        ", ".join(granted) or None, ", ".join([*granted, grant]), info=info))
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
        return missing_app(p, inv, self.name, ctx)

    def capture(self, p: AppParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        info = inv.app(app_read(p), where=ctx.where)
        if info is None:  # captured as it is: missing (its finding says so)
            return p.model_dump(exclude_none=True)
        return {"app": info.full_name, "type": p.type}


# ---- C14 ---------------------------------------------------------------------------------


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
        return app_reads(p)

    def diff(self, p: AppParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            scopes = _as_list(get_path(_component(inv, info, ctx), "oauthConfig.scopes"))
            if "Api" in scopes:
                return []
            if info.installed:  # the scopes are the package's, not a policy (A1)
                return [ctx.change(
                    self.name, target=app_target(p, info), field="oauthConfig.scopes",
                    before=sorted(scopes), after=sorted([*scopes, "Api"]),
                    manual=(f"{info.full_name} is {info.origin}: its OAuth scopes come with "
                            "the package and cannot be changed in this org. Ask the vendor "
                            "for a version whose app carries 'Manage user data via APIs "
                            "(api)', or sign in through a local app that does."))]
            return [ctx.change(
                self.name, target=app_target(p, info), field="oauthConfig.scopes",
                before=sorted(scopes), after=sorted([*scopes, "Api"]),
                write=MetadataWrite(type=CA, full_name=info.full_name,
                                    path="oauthConfig.scopes", value=["Api"], mode="add"))]
        name, settings = _eca_part(inv, info, ECA_OAUTH, ctx)
        scopes = _split(settings.get("commaSeparatedOauthScopes"))
        if "Api" in scopes:
            return []
        after = [*scopes, "Api"]
        return [_set(self.name, ctx, p, ECA_OAUTH, name, "commaSeparatedOauthScopes",
                     ", ".join(scopes), ", ".join(after), info=info)]

    def capture(self, p: AppParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        info = find_app(p, inv, ctx)
        return {"app": info.full_name, "type": p.type}


# ---- C11 ---------------------------------------------------------------------------------

ECA_IP = {"ENFORCE": "Enforce", "BYPASS_2FACTOR": "Bypass_2factor", "BYPASS": "Bypass",
          "ENFORCE_RELAXREFRESH": "Enforce_RelaxRefresh"}
#: The IP Relaxation choices as Setup shows them (help: connected app OAuth policies).
IP_LABELS = {"ENFORCE": "Enforce IP restrictions",
             "BYPASS_2FACTOR": "Relax IP restrictions with second factor",
             "BYPASS": "Relax IP restrictions",
             "ENFORCE_RELAXREFRESH": "Enforce IP restrictions, but relax for refresh tokens"}


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
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            now = get_path(_component(inv, info, ctx), "oauthPolicy.ipRelaxation") or "ENFORCE"
            if now == p.policy:
                return []
            return [_policy(self.name, ctx, p, info, "oauthPolicy.ipRelaxation", now, p.policy,
                            setup="OAuth Policies → IP Relaxation",
                            shown=repr(IP_LABELS[p.policy]))]
        name, policy = _eca_part(inv, info, ECA_POLICY, ctx)
        now = get_path(policy, "ipRelaxationPolicyType") or "Enforce"
        wanted = ECA_IP[p.policy]
        if now == wanted:
            return []
        return [_set(self.name, ctx, p, ECA_POLICY, name, "ipRelaxationPolicyType", now, wanted,
                     info=info)]

    def capture(self, p: IpRelaxationParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        info = find_app(p, inv, ctx)
        if p.type == "connected_app":
            now = get_path(inv.metadata(CA, info.full_name), "oauthPolicy.ipRelaxation") \
                or "ENFORCE"
        else:
            eca = get_path(_eca_part(inv, info, ECA_POLICY, ctx)[1],
                           "ipRelaxationPolicyType") or "Enforce"
            now = next((k for k, v in ECA_IP.items() if v == eca), "ENFORCE")
        return {"app": info.full_name, "type": p.type, "policy": now}


def _looks_like_id(value: str, prefix: str) -> bool:
    return len(value) in (15, 18) and value.startswith(prefix) and value.isalnum()


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


# ---- C13 ---------------------------------------------------------------------------------


class UninstalledAppParams(AppParams):
    """The integration's user may use its app: the app is installed in the org, or the user
    holds a permission set (one the playbook names, and allows remediate to assign) that
    carries "Approve Uninstalled Connected Apps" (platform-truth A8)."""

    username: str
    permission_set: str | None = None


@register
class UninstalledAppAllowed(StepKind[UninstalledAppParams]):
    """Since September 2025 a connected app that is not installed in the org is blocked for
    users who lack "Approve Uninstalled Connected Apps"; the token error is ``invalid_client``
    / ``app must be installed into org`` (A8). An app found in the org (local or installed from
    a package) is not blocked. One that is not: the fix is a manual install, or, when the
    playbook names one, assigning the permission set that carries the permission."""

    name = "app.uninstalled_allowed"
    summary = ("The integration's app is installed in the org, or its user may use uninstalled "
               "apps through a named permission set.")
    causes = ("C13",)
    permissions = ("PermissionsViewSetup", "PermissionsCustomizeApplication",
                   "PermissionsAssignPermissionSets")
    params = UninstalledAppParams
    example: ClassVar[dict[str, Any]] = {
        "app": "Workato", "username": "workato.integration@acme.example.com",
        "permission_set": "Approve_Uninstalled_Apps"}

    def reads(self, p: UninstalledAppParams) -> Iterable[Read]:
        extra: list[Read] = [PermissionSetRead(p.permission_set)] if p.permission_set else []
        return [*app_reads(p), UserRead(p.username), *extra]

    def diff(self, p: UninstalledAppParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        user = inv.user(p.username, where=ctx.where)
        if inv.app(app_read(p), where=ctx.where) is not None:
            return []  # in the org: A8's block is about apps that are not
        looked = inv.app_note(app_read(p)) or f"the {_what(p)} {p.app!r} is not in " \
            "this org"
        if p.permission_set:
            ps = inv.permission_set(p.permission_set, where=ctx.where)
            if user.has_set(ps.name):
                return []
            return [ctx.change(self.name, target=f"User {p.username}",
                               field=f"PermissionSetAssignment {ps.name}",
                               before="not assigned", after="assigned",
                               write=RecordWrite(sobject="PermissionSetAssignment",
                                                 fields={"AssigneeId": user.id,
                                                         "PermissionSetId": ps.id}))]
        return [ctx.change(
            self.name, target=app_target(p), field="installed", before=False, after=True,
            manual=(f"{ctx.where}: {looked}, so its sign-in is blocked ('app must be installed "
                    "into org', C13) for users without Approve Uninstalled Connected Apps. "
                    "Install it: Setup → Apps → Connected Apps → Connected Apps OAuth Usage → "
                    "the app → Install; or give the playbook a 'permission_set' carrying "
                    "Approve Uninstalled Connected Apps for remediate to assign."))]

    def capture(self, p: UninstalledAppParams, inv: Inventory,
                ctx: StepContext) -> dict[str, Any]:
        return p.model_dump(exclude_none=True)
