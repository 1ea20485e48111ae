"""Step kinds for org-wide settings an integration depends on: the package that brings its app
(C9), the URL it signs in to and URLs stored in the org (C10), and profile login IP ranges (C11).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

from remediate.hosts import LOGIN_HOSTS, host_of
from remediate.plan import Change, MetadataWrite, RecordWrite
from remediate.steps.base import (
    Inventory,
    MetadataRead,
    OrgRead,
    PackageRead,
    Params,
    Read,
    StepContext,
    StepKind,
    get_path,
    list_items,
    register,
)

# ---- C9 ----------------------------------------------------------------------------------


class PackageParams(Params):
    namespace: str
    name: str | None = None
    version_id: str | None = None  # 04t...: install automatically when given
    #: Name of the environment variable holding the installation key (never the key itself)
    installation_key_env: str | None = None


@register
class PackageInstalled(StepKind[PackageParams]):
    name = "package.installed"
    summary = ("The managed package that brings the integration's app is installed (installed "
               "through the Tooling API only when the playbook gives a version id).")
    causes = ("C9",)
    permissions = ("PermissionsInstallPackaging",)  # "Download AppExchange Packages"
    params = PackageParams
    example: ClassVar[dict[str, Any]] = {"namespace": "workato", "name": "Workato Connector",
                                         "version_id": "04t5e000000WkAtAAK"}

    def reads(self, p: PackageParams) -> Iterable[Read]:
        return [PackageRead(p.namespace)]

    def diff(self, p: PackageParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        if inv.get(PackageRead(p.namespace)) is not None:
            return []
        label = p.name or p.namespace
        if p.version_id is None:
            return [ctx.change(
                self.name, target=f"Package {label}", field="installed", before=False,
                after=True,
                manual=(f"Install the package {label!r} (namespace {p.namespace}) from "
                        "AppExchange or the vendor's install link, or give its version id "
                        "(04t...) as version_id so remediate can install it."))]
        return [ctx.change(
            self.name, target=f"Package {label}", field="installed", before=False, after=True,
            write=RecordWrite(api="tooling", sobject="PackageInstallRequest",
                              fields={"SubscriberPackageVersionKey": p.version_id,
                                      "NameConflictResolution": "Block",
                                      "SecurityType": "None",
                                      **({"_installation_key_env": p.installation_key_env}
                                         if p.installation_key_env else {})}))]

    def capture(self, p: PackageParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        info = inv.get(PackageRead(p.namespace))
        out = p.model_dump(exclude_none=True)
        if info is not None:
            out["version_id"] = info.version_id
        return out


# ---- C10 ---------------------------------------------------------------------------------


class LoginUrlParams(Params):
    integration: str
    flow: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    login_url: str | None = None  # what the external system is configured with; None: unknown


@register
class LoginUrl(StepKind[LoginUrlParams]):
    name = "org.login_url"
    summary = ("The integration signs in to the org's My Domain (client credentials refuses "
               "login.salesforce.com, test.salesforce.com and instance URLs).")
    causes = ("C10",)
    permissions = ()
    params = LoginUrlParams
    example: ClassVar[dict[str, Any]] = {"integration": "Copilot for Sales",
                                         "login_url": "https://login.salesforce.com"}

    def reads(self, p: LoginUrlParams) -> Iterable[Read]:
        return [OrgRead()]

    def diff(self, p: LoginUrlParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        my_domain = inv.org.my_domain_url
        if p.login_url is None:
            return []
        host = host_of(p.login_url)
        if host == host_of(my_domain):
            return []
        if p.flow == "jwt_bearer" and host in LOGIN_HOSTS:
            return []  # JWT bearer may use the login hosts
        return [ctx.change(
            self.name, target=f"Integration {p.integration}", field="login URL",
            before=p.login_url, after=my_domain,
            manual=(f"In {p.integration}, change the Salesforce login URL from {p.login_url} to "
                    f"{my_domain}, then set login_url to it in remediate's org configuration."))]

    def capture(self, p: LoginUrlParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return {"integration": p.integration, "flow": p.flow, "login_url": inv.org.my_domain_url}


class StoredUrlsParams(Params):
    named_credentials: list[str] = []
    remote_sites: list[str] = []


_URL_FIELDS = {"NamedCredential": "endpoint", "RemoteSiteSetting": "url"}

#: Where a named credential in the current format keeps its URL (platform-truth P1; Metadata
#: WSDL: NamedCredentialParameter, parameterType Url).
NAMED_CREDENTIAL_URL = "namedCredentialParameters[parameterType=Url].parameterValue"
#: Legacy authentication protocols that hold a secret no read returns (password, OAuth token
#: and refresh token, AWS secret): such a credential cannot be redeployed without it (P1).
SECRET_PROTOCOLS = frozenset({"Password", "Oauth", "AwsSv4", "Basic", "Custom"})
#: Legacy protocols whose credential holds no secret: safe to redeploy with a new URL.
PLAIN_PROTOCOLS = frozenset({"NoAuthentication"})


def named_credential_url(component: dict[str, Any]) -> tuple[str, str | None]:
    """(path of the URL in ``component``, why remediate may not rewrite it, or None).

    The current format (``namedCredentialType`` SecuredEndpoint, PrivateEndpoint, Standard)
    keeps the URL in its ``Url`` parameter and its authentication in an ExternalCredential, so
    a rewrite sends no secret. A legacy one keeps ``endpoint``; when its ``protocol`` holds a
    secret (or is one remediate does not know), the rewrite is a manual change: the secret
    cannot be read, so it cannot be sent back, and remediate never sends one."""
    kind = component.get("namedCredentialType") or "Legacy"
    params = list_items(component.get("namedCredentialParameters"))
    if kind != "Legacy" or any(i.get("parameterType") == "Url" for i in params):
        return NAMED_CREDENTIAL_URL, None
    protocol = component.get("protocol") or "NoAuthentication"
    if protocol in PLAIN_PROTOCOLS:
        return "endpoint", None
    if protocol in SECRET_PROTOCOLS:
        return "endpoint", (f"this legacy named credential authenticates with {protocol}: it "
                            "holds a secret the Metadata API never returns, so remediate cannot "
                            "redeploy it with a new URL (platform-truth P1)")
    return "endpoint", (f"this legacy named credential uses {protocol} authentication, which "
                        "remediate does not redeploy")


def rebase(url: str, base: str) -> str:
    """The same URL (path, query) on another scheme and host."""
    parts, new = urlsplit(url), urlsplit(base)
    return urlunsplit((new.scheme, new.netloc, parts.path, parts.query, parts.fragment))


@register
class StoredUrls(StepKind[StoredUrlsParams]):
    name = "org.stored_urls"
    summary = ("Named credentials (legacy and current format) and remote site settings that "
               "call the org itself use its My Domain URL, not login.salesforce.com or an old "
               "instance URL; a legacy credential holding a secret is a manual change.")
    causes = ("C10",)
    permissions = ("PermissionsCustomizeApplication", "PermissionsModifyMetadata")
    params = StoredUrlsParams
    example: ClassVar[dict[str, Any]] = {"named_credentials": ["Acme_Self"],
                                         "remote_sites": ["Acme_My_Domain"]}

    def _items(self, p: StoredUrlsParams) -> list[tuple[str, str]]:
        return ([("NamedCredential", n) for n in p.named_credentials]
                + [("RemoteSiteSetting", n) for n in p.remote_sites])

    def reads(self, p: StoredUrlsParams) -> Iterable[Read]:
        return [OrgRead(), *(MetadataRead(t, n) for t, n in self._items(p))]

    def diff(self, p: StoredUrlsParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        from remediate.errors import NotFound

        my_domain = inv.org.my_domain_url
        out = []
        for type_, name in self._items(p):
            component = inv.metadata(type_, name)
            if component is None or not component.get("fullName"):
                raise NotFound(f"{ctx.where}: no {type_} named {name!r} in the org")
            field, blocked = (named_credential_url(component) if type_ == "NamedCredential"
                              else (_URL_FIELDS[type_], None))
            now = get_path(component, field)
            if not now or host_of(str(now)) == host_of(my_domain):
                continue
            after = rebase(str(now), my_domain)
            if blocked is not None:
                label = component.get("label") or name
                out.append(ctx.change(
                    self.name, target=f"{type_} {name}", field="URL", before=now, after=after,
                    manual=(f"{blocked}. In Setup → Security → Named Credentials → Named "
                            f"Credentials, open {label!r} (a legacy named credential) → Edit → "
                            f"set URL to {after}, enter its authentication again, and Save.")))
                continue
            out.append(ctx.change(
                self.name, target=f"{type_} {name}",
                field="URL" if field == NAMED_CREDENTIAL_URL else field, before=now, after=after,
                write=MetadataWrite(type=type_, full_name=name, path=field, value=after)))
        return out

    def capture(self, p: StoredUrlsParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        return p.model_dump()


# ---- C11 ---------------------------------------------------------------------------------


class IpRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: str
    end: str
    description: str | None = None


class LoginIpRangesParams(Params):
    profile: str
    ranges: list[IpRange]


@register
class ProfileLoginIpRanges(StepKind[LoginIpRangesParams]):
    name = "profile.login_ip_ranges"
    summary = "The integration profile's login IP ranges include the integration's addresses."
    causes = ("C11",)
    permissions = ("PermissionsManageProfilesPermissionsets", "PermissionsModifyMetadata")
    params = LoginIpRangesParams
    example: ClassVar[dict[str, Any]] = {"profile": "Workato Integration",
                                         "ranges": [{"start": "203.0.113.0",
                                                     "end": "203.0.113.255"}]}

    def reads(self, p: LoginIpRangesParams) -> Iterable[Read]:
        return [MetadataRead("Profile", p.profile)]

    def diff(self, p: LoginIpRangesParams, inv: Inventory, ctx: StepContext) -> list[Change]:
        from remediate.errors import NotFound

        profile = inv.metadata("Profile", p.profile, where=ctx.where)
        if profile is None or not profile.get("fullName"):
            raise NotFound(f"{ctx.where}: no profile named {p.profile!r} in the org")
        api_name = str(profile["fullName"])  # standard profiles: Admin, Standard (U4)
        present = {(r.get("startAddress"), r.get("endAddress"))
                   for r in _ranges(profile.get("loginIpRanges"))}
        wanted = [r for r in p.ranges if (r.start, r.end) not in present]
        if not wanted:
            return []
        before = sorted(f"{s}-{e}" for s, e in present)
        return [ctx.change(
            self.name, target=f"Profile {p.profile}", field="loginIpRanges", before=before,
            after=sorted(before + [f"{r.start}-{r.end}" for r in wanted]),
            write=MetadataWrite(type="Profile", full_name=api_name, path="loginIpRanges",
                                mode="add",
                                value=[{"startAddress": r.start, "endAddress": r.end,
                                        **({"description": r.description}
                                           if r.description else {})} for r in wanted]))]

    def capture(self, p: LoginIpRangesParams, inv: Inventory, ctx: StepContext) -> dict[str, Any]:
        profile = inv.metadata("Profile", p.profile) or {}
        return {"profile": p.profile,
                "ranges": [{"start": r.get("startAddress"), "end": r.get("endAddress")}
                           for r in _ranges(profile.get("loginIpRanges"))]}


def _ranges(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    return [r for r in value if isinstance(r, dict)]
