"""Scenario files: YAML descriptions of an org that seed the sandbox.

A scenario names things the way an admin does (usernames, profile names, permission set API
names, app names); ``build_org`` turns it into rows and metadata with ids. Scenarios are strict
(unknown keys are errors) and may ``extends:`` another scenario, overriding whole top-level
sections or, with ``patch:``, single entries by name.

The ``integrations`` section describes the *external* systems (Copilot for Sales, Workato): the
credentials and login URL they are configured with and the IP they call from. It is not org
state; tests and ``verify`` use it to act as the integration would.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediate.sandbox.ids import IdFactory, to18
from remediate.sandbox.schema import PERMISSION_FLAGS
from remediate.sandbox.state import Org


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrgSpec(_Strict):
    name: str = "Acme"
    my_domain: str = "acme"
    instance_name: str = "USA238"
    is_sandbox: bool = False
    sandbox_name: str | None = None
    organization_type: str = "Enterprise Edition"
    previous_my_domains: list[str] = Field(default_factory=list)
    my_domain_settings: dict[str, Any] = Field(default_factory=dict)
    #: Highest API version the org serves ("62.0"); None serves up to app.MAX_API_VERSION.
    max_api_version: str | None = None
    #: A fixed time the login-hours rule reads (ISO 8601, UTC), e.g. "2026-01-05T03:00:00Z".
    clock: str | None = None


class ProfileSpec(_Strict):
    name: str
    #: The metadata API name (listMetadata/readMetadata fullName) when it is not the Name:
    #: standard profiles have their own (System Administrator is ``Admin``).
    full_name: str | None = None
    user_license: str = "Salesforce"
    user_type: str = "Standard"
    permissions: list[str] = Field(default_factory=list)  # flag names, e.g. ApiEnabled
    login_ip_ranges: list[tuple[str, str]] = Field(default_factory=list)
    #: Profile login hours (C16): day (monday..sunday) -> ["08:00", "18:00"], whole hours, UTC.
    login_hours: dict[str, tuple[str, str]] = Field(default_factory=dict)


class LicenseSpec(_Strict):
    developer_name: str
    label: str
    total: int = 10
    is_available_for_integrations: bool = True


class PermissionSetSpec(_Strict):
    name: str
    label: str | None = None
    license: str | None = None  # PermissionSetLicense DeveloperName
    permissions: list[str] = Field(default_factory=list)
    description: str | None = None
    #: C15: object -> ObjectPermissions flags (Read, Create, Edit, Delete, ViewAllRecords,
    #: ModifyAllRecords); "Object.Field" -> FieldPermissions flags (Read, Edit); the record
    #: types ("Object.DeveloperName") the set makes visible.
    objects: dict[str, list[str]] = Field(default_factory=dict)
    fields: dict[str, list[str]] = Field(default_factory=dict)
    record_types: list[str] = Field(default_factory=list)


class UserSpec(_Strict):
    username: str
    last_name: str = "User"
    first_name: str | None = None
    email: str | None = None
    profile: str
    active: bool = True
    user_type: str = "Standard"
    password: str | None = None
    permission_sets: list[str] = Field(default_factory=list)
    licenses: list[str] = Field(default_factory=list)  # PermissionSetLicense DeveloperNames


class ConnectedAppSpec(_Strict):
    name: str  # fullName
    label: str | None = None
    contact_email: str = "admin@example.com"
    consumer_key: str
    consumer_secret: str
    callback_url: str = "https://localhost/callback"
    client_credentials: bool = False
    run_as: str | None = None  # username
    admin_approved: bool = False
    profiles: list[str] = Field(default_factory=list)
    permission_sets: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=lambda: ["Api"])
    ip_relaxation: Literal["ENFORCE", "BYPASS_2FACTOR", "BYPASS", "ENFORCE_RELAXREFRESH"] = "ENFORCE"
    refresh_token_policy: str = "zero"
    certificate: str | None = None  # PEM, enables JWT bearer
    high_assurance: bool = False
    package: str | None = None  # namespace of the package that brings the app
    #: True: a managed package's component: named ``<package>__Name``, its metadata not
    #: writable in this org, its policies changed in Setup only (platform-truth A1).
    managed: bool = False
    #: The Custom Connected App Handler's Run As user (pluginExecutionUser, A14).
    handler_run_as: str | None = None
    #: False: the app lives in another org and was never installed in this one (C13, A8).
    installed: bool = True
    #: JWT bearer audiences this app's sign-ins are accepted with (None: the My Domain and
    #: both login URLs); e.g. ["login"] for an org that takes only https://login.salesforce.com.
    jwt_audiences: list[Literal["my_domain", "login", "test"]] | None = None


class ExternalClientAppSpec(_Strict):
    name: str
    label: str | None = None
    contact_email: str = "admin@example.com"
    consumer_key: str
    consumer_secret: str
    callback_url: str = "https://localhost/callback"
    client_credentials: bool = False  # both the global setting and the policy
    client_credentials_global: bool | None = None  # override the global setting alone
    run_as: str | None = None
    admin_approved: bool = False
    profiles: list[str] = Field(default_factory=list)
    permission_sets: list[str] = Field(default_factory=list)
    scopes: list[str] = Field(default_factory=lambda: ["Api"])
    ip_relaxation: Literal["Enforce", "Bypass", "Bypass_2factor", "Enforce_RelaxRefresh"] = "Enforce"
    certificate: str | None = None
    high_assurance: bool = False  # the policy's requiredSessionLevel is HIGH_ASSURANCE (C16)


class PackageSpec(_Strict):
    name: str
    namespace: str | None = None
    version: str = "1.0.0.1"  # major.minor.patch.build
    version_id: str | None = None  # 04t...; generated when absent
    installed: bool = True
    #: An install request's reads until it ends (asynchronous, platform-truth P2).
    install_polls: int = 1
    install_error: str | None = None  # the install ends in ERROR with this message
    installation_key: str | None = None  # the install needs this Password


class NamedCredentialSpec(_Strict):
    """A named credential (platform-truth P1). ``Legacy``: the URL is ``endpoint`` and a
    Password/Oauth ``protocol`` holds a secret (``password``) no read returns. The current
    format (``SecuredEndpoint``): the URL is a ``Url`` parameter and ``external_credential``
    names the ExternalCredential that signs its callouts."""

    name: str
    label: str | None = None
    endpoint: str
    type: Literal["Legacy", "SecuredEndpoint", "PrivateEndpoint"] = "Legacy"
    protocol: Literal["NoAuthentication", "Password", "Oauth", "Jwt", "AwsSv4"] = \
        "NoAuthentication"
    principal_type: Literal["Anonymous", "NamedUser", "PerUser"] = "Anonymous"
    username: str | None = None
    password: str | None = None  # legacy Password protocol: the secret (never read back)
    external_credential: str | None = None


class RemoteSiteSpec(_Strict):
    name: str
    url: str
    active: bool = True


class LoginHistorySpec(_Strict):
    username: str
    status: str = "Success"
    login_url: str = ""
    application: str = "Browser"
    login_type: str = "Remote Access 2.0"
    login_sub_type: str | None = None
    source_ip: str = "198.51.100.7"
    minutes_ago: int = 60


class RecordTypeSpec(_Strict):
    object: str
    name: str  # DeveloperName
    label: str | None = None
    active: bool = True


class OauthTokenSpec(_Strict):
    """A row of Connected Apps OAuth Usage: the user signed in through the app (its label)."""

    username: str
    app: str  # AppName: the app's label
    minutes_ago: int = 60
    use_count: int = 1


class IntegrationSpec(_Strict):
    """How the external system is configured: what it sends, from where."""

    name: str
    app: str
    flow: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    login_url: str | None = None  # None: the org's My Domain URL
    client_id: str
    client_secret: str | None = None
    username: str | None = None  # JWT subject
    private_key: str | None = None  # PEM, for JWT
    source_ip: str = "198.51.100.7"
    #: What the integration reads and writes (C15), as a playbook's object_access step takes
    #: them: [{object, read, edit, ...}], [{field: Object.Field, ...}], [Object.DeveloperName].
    objects: list[dict[str, Any]] = Field(default_factory=list)
    fields: list[dict[str, Any]] = Field(default_factory=list)
    record_types: list[str] = Field(default_factory=list)


class Scenario(_Strict):
    name: str = ""
    description: str
    causes: list[str] = Field(default_factory=list)  # catalogue ids this scenario seeds, e.g. C1
    extends: str | None = None
    org: OrgSpec = Field(default_factory=OrgSpec)
    profiles: list[ProfileSpec] = Field(default_factory=list)
    permission_set_licenses: list[LicenseSpec] = Field(default_factory=list)
    permission_sets: list[PermissionSetSpec] = Field(default_factory=list)
    users: list[UserSpec] = Field(default_factory=list)
    connected_apps: list[ConnectedAppSpec] = Field(default_factory=list)
    external_client_apps: list[ExternalClientAppSpec] = Field(default_factory=list)
    packages: list[PackageSpec] = Field(default_factory=list)
    named_credentials: list[NamedCredentialSpec] = Field(default_factory=list)
    remote_sites: list[RemoteSiteSpec] = Field(default_factory=list)
    login_history: list[LoginHistorySpec] = Field(default_factory=list)
    record_types: list[RecordTypeSpec] = Field(default_factory=list)
    oauth_tokens: list[OauthTokenSpec] = Field(default_factory=list)
    integrations: list[IntegrationSpec] = Field(default_factory=list)
    #: Playbook variables a built-in org of this scenario binds, per playbook, over the
    #: defaults every scenario shares (e.g. the Workato app's names in a managed package).
    playbook_variables: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def integration(self, name: str) -> IntegrationSpec:
        for spec in self.integrations:
            if spec.name == name:
                return spec
        raise KeyError(name)


class ScenarioError(ValueError):
    """A scenario file that does not load; the message names the file and the field."""


_LIST_SECTIONS = (
    "profiles", "permission_set_licenses", "permission_sets", "users", "connected_apps",
    "external_client_apps", "packages", "named_credentials", "remote_sites", "login_history",
    "integrations", "record_types", "oauth_tokens",
)


def scenario_dir() -> Path:
    return Path(str(resources.files("remediate.sandbox") / "scenarios"))


def available() -> dict[str, str]:
    """Scenario name -> one-line description, for every shipped scenario."""
    out = {}
    for path in sorted(scenario_dir().glob("*.yaml")):
        out[path.stem] = load(path.stem).description.strip().splitlines()[0]
    return out


def load(name_or_path: str | Path) -> Scenario:
    path = Path(name_or_path)
    if not path.suffix:
        path = scenario_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in scenario_dir().glob("*.yaml")))
            raise ScenarioError(f"unknown scenario {name_or_path!r} (known: {known})")
    raw = _read_merged(path, seen=())
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ScenarioError(f"{path}: {where}: {first['msg']}") from None
    if not scenario.name:
        scenario.name = path.stem
    return scenario


def _read_merged(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path in seen:
        raise ScenarioError(f"{path}: 'extends' forms a cycle")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping")
    parent_name = data.get("extends")
    patch = data.pop("patch", None)
    if parent_name is None:
        if patch:
            raise ScenarioError(f"{path}: 'patch' needs 'extends'")
        return data
    parent = _read_merged(path.parent / f"{parent_name}.yaml", (*seen, path))
    merged = {k: v for k, v in parent.items() if k not in ("name", "causes", "description")}
    merged.update({k: v for k, v in data.items()})
    for section, entries in (patch or {}).items():
        if section == "org":
            merged["org"] = {**merged.get("org", {}), **entries}
            continue
        if section not in _LIST_SECTIONS:
            raise ScenarioError(f"{path}: patch.{section}: not a list section")
        merged[section] = _patch_section(path, section, merged.get(section, []), entries)
    return merged


def _patch_section(path: Path, section: str, base: list[dict[str, Any]],
                   entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries with ``remove: true`` drop the named one; others update it or are appended."""
    key = "username" if section in ("users", "login_history", "oauth_tokens") else "name"
    out = [dict(e) for e in base]
    for entry in entries:
        entry = dict(entry)
        remove = entry.pop("remove", False)
        ident = entry.get(key)
        idx = next((i for i, e in enumerate(out) if e.get(key) == ident), None)
        if remove:
            if idx is None:
                raise ScenarioError(f"{path}: patch.{section}: nothing named {ident!r} to remove")
            out.pop(idx)
        elif idx is None:
            out.append(entry)
        else:
            out[idx] = {**out[idx], **entry}
    return out


# ---- building an org ------------------------------------------------------------------------


def _org_id(scenario: Scenario, pod: int) -> str:
    digest = hashlib.sha256(f"{scenario.org.my_domain}:{pod}".encode()).hexdigest()
    body = "".join(c for c in digest if c.isdigit())[:10].ljust(10, "0")
    return to18("00D" + str(pod).rjust(2, "0")[-2:] + body)


def _perm_flags(names: list[str], where: str) -> dict[str, bool]:
    unknown = [n for n in names if n not in PERMISSION_FLAGS]
    if unknown:
        raise ScenarioError(f"{where}: unknown permission {unknown[0]!r} "
                            f"(known: {', '.join(PERMISSION_FLAGS)})")
    return {f"Permissions{f}": f in names for f in PERMISSION_FLAGS}


def build_org(scenario: Scenario, pod: int = 0, my_domain: str | None = None) -> Org:
    """A fresh org seeded from the scenario. ``pod``/``my_domain`` keep fleet orgs apart."""
    spec = scenario.org
    org = Org(
        org_id=_org_id(scenario, pod),
        name=spec.name,
        my_domain=my_domain or spec.my_domain,
        instance_name=spec.instance_name,
        is_sandbox=spec.is_sandbox,
        sandbox_name=spec.sandbox_name,
        organization_type=spec.organization_type,
        ids=IdFactory(pod),
        max_api_version=spec.max_api_version,
        clock=spec.clock,
    )
    _seed(org, scenario)
    return org


def _seed(org: Org, sc: Scenario) -> None:
    licenses: dict[str, str] = {}
    for name in sorted({p.user_license for p in sc.profiles}):
        row = org.insert("UserLicense", {"Name": name, "MasterLabel": name,
                                         "LicenseDefinitionKey": name.upper().replace(" ", "_"),
                                         "Status": "Active"})
        licenses[name] = row["Id"]
    for p in sc.profiles:
        profile = org.insert("Profile", {"Name": p.name, "UserLicenseId": licenses[p.user_license],
                                         "UserType": p.user_type, "Description": None,
                                         "IsSsoEnabled": False,
                                         "_FullName": p.full_name or p.name})
        flags = _perm_flags(p.permissions, f"profiles.{p.name}.permissions")
        org.insert("PermissionSet", {
            "Name": "X" + profile["Id"][:15], "Label": profile["Id"][:15],
            "IsCustom": False, "IsOwnedByProfile": True, "ProfileId": profile["Id"],
            "LicenseId": None, "Type": "Profile", "HasActivationRequired": False, **flags})
        if p.login_hours:
            profile["_LoginHours"] = _login_hours(p.login_hours, f"profiles.{p.name}")
        for start, end in p.login_ip_ranges:
            org.insert("LoginIpRange", {"ProfileId": profile["Id"], "StartAddress": start,
                                        "EndAddress": end, "Description": None})
    for lic in sc.permission_set_licenses:
        org.insert("PermissionSetLicense", {
            "DeveloperName": lic.developer_name, "MasterLabel": lic.label,
            "PermissionSetLicenseKey": lic.developer_name.upper(), "Status": "Active",
            "TotalLicenses": lic.total, "UsedLicenses": 0,
            "IsAvailableForIntegrations": lic.is_available_for_integrations, "Language": "en_US"})
    for rt in sc.record_types:
        org.insert("RecordType", {"Name": rt.label or rt.name, "DeveloperName": rt.name,
                                  "SobjectType": rt.object, "IsActive": rt.active,
                                  "NamespacePrefix": None})
    for ps in sc.permission_sets:
        lic_row = org.license_by_name(ps.license) if ps.license else None
        if ps.license and lic_row is None:
            raise ScenarioError(f"permission_sets.{ps.name}.license: no licence {ps.license!r}")
        org.insert("PermissionSet", {
            "Name": ps.name, "Label": ps.label or ps.name, "Description": ps.description,
            "IsCustom": True, "IsOwnedByProfile": False, "ProfileId": None,
            "LicenseId": lic_row["Id"] if lic_row else None, "Type": "Regular",
            "HasActivationRequired": False,
            **_perm_flags(ps.permissions, f"permission_sets.{ps.name}.permissions")})
        _seed_object_access(org, ps)
    for u in sc.users:
        user_profile = org.profile_by_name(u.profile)
        if user_profile is None:
            raise ScenarioError(f"users.{u.username}.profile: no profile {u.profile!r}")
        profile = user_profile
        user = org.insert("User", {
            "Username": u.username, "LastName": u.last_name, "FirstName": u.first_name,
            "Name": " ".join(x for x in (u.first_name, u.last_name) if x),
            "Email": u.email or u.username, "Alias": u.last_name[:8].lower(),
            "IsActive": u.active, "ProfileId": profile["Id"], "UserType": u.user_type,
            "LastLoginDate": None, "TimeZoneSidKey": "GMT", "LocaleSidKey": "en_US",
            "LanguageLocaleKey": "en_US", "EmailEncodingKey": "UTF-8"})
        if u.password:
            org.passwords[user["Id"]] = u.password
        for lic_name in u.licenses:
            lic_row = org.license_by_name(lic_name)
            if lic_row is None:
                raise ScenarioError(f"users.{u.username}.licenses: no licence {lic_name!r}")
            org.insert("PermissionSetLicenseAssign", {"AssigneeId": user["Id"],
                                                      "PermissionSetLicenseId": lic_row["Id"],
                                                      "IsRevoked": False})
            lic_row["UsedLicenses"] += 1
        for ps_name in u.permission_sets:
            ps_row = org.permission_set_by_name(ps_name)
            if ps_row is None:
                raise ScenarioError(f"users.{u.username}.permission_sets: no permission set "
                                    f"{ps_name!r}")
            org.insert("PermissionSetAssignment", {"AssigneeId": user["Id"],
                                                   "PermissionSetId": ps_row["Id"],
                                                   "IsActive": True, "IsRevoked": False})
        owned = org.profile_permission_set(profile["Id"])
        if owned is not None:
            org.insert("PermissionSetAssignment", {"AssigneeId": user["Id"],
                                                   "PermissionSetId": owned["Id"],
                                                   "IsActive": True, "IsRevoked": False})
    for pkg in sc.packages:
        _seed_package(org, pkg)
    for app in sc.connected_apps:
        package = _package_row(org, app.package) if app.package else None
        if app.package and package is None:
            raise ScenarioError(f"connected_apps.{app.name}.package: no package with namespace "
                                f"{app.package!r}")
        if package is not None and org.find_one("InstalledSubscriberPackage",
                                                 SubscriberPackageId=package["Id"]) is None:
            org.package_apps.setdefault(package["Id"], []).append(app.model_dump())
            continue
        _seed_connected_app(org, app)
    for eca in sc.external_client_apps:
        _seed_eca(org, eca)
    for nc in sc.named_credentials:
        org.metadata.setdefault("NamedCredential", {})[nc.name] = _named_credential(org, sc, nc)
    for rs in sc.remote_sites:
        org.metadata.setdefault("RemoteSiteSetting", {})[rs.name] = {
            "fullName": rs.name, "url": _own(org, sc, rs.url), "isActive": rs.active,
            "disableProtocolSecurity": False}
    my_domain = {
        "fullName": "MyDomain", "myDomainName": org.my_domain,
        "myDomainSuffix": "MySalesforce",
        "domainPartition": "sandbox" if org.is_sandbox else "none",
        "canOnlyLoginWithMyDomainUrl": False, "doesApiLoginRequireOrgDomain": False,
        "enableLegacyRedirections": False, "redirectPriorMyDomain": True,
        "useStabilizedMyDomainHostnames": True, "logRedirections": False,
    }
    my_domain.update(sc.org.my_domain_settings)
    org.metadata.setdefault("MyDomainSettings", {})["MyDomain"] = my_domain
    for old in sc.org.previous_my_domains:
        org.insert("OrgDomainLog", {"MyDomainName": old, "DomainPartition": "none",
                                    "ProdSuffixType": "MySalesforce",
                                    "CreatedDate": "2023-01-01T00:00:00.000+0000"})
    for entry in sc.login_history:
        _seed_login(org, entry)
    for token in sc.oauth_tokens:
        _seed_oauth_token(org, token)


def _login_hours(hours: dict[str, tuple[str, str]], where: str) -> dict[str, str]:
    from remediate.sandbox.objectaccess import DAYS, login_hours_problem

    out: dict[str, str] = {}
    for day, (start, end) in hours.items():
        if day not in DAYS:
            raise ScenarioError(f"{where}.login_hours: unknown day {day!r} (known: "
                                f"{', '.join(DAYS)})")
        try:
            out[f"{day}Start"], out[f"{day}End"] = (
                str(int(t.split(":")[0]) * 60 + int(t.split(":")[1])) for t in (start, end))
        except (ValueError, IndexError):
            raise ScenarioError(f"{where}.login_hours.{day}: times are HH:MM") from None
    problem = login_hours_problem(out)
    if problem:
        raise ScenarioError(f"{where}.login_hours: {problem}")
    return out


_OBJECT_FLAG_NAMES = ("Read", "Create", "Edit", "Delete", "ViewAllRecords", "ModifyAllRecords")


def _seed_object_access(org: Org, ps: PermissionSetSpec) -> None:
    from remediate.sandbox import objectaccess

    row = org.permission_set_by_name(ps.name)
    assert row is not None
    where = f"permission_sets.{ps.name}"
    for obj, flags in ps.objects.items():
        bad = [f for f in flags if f not in _OBJECT_FLAG_NAMES]
        if bad:
            raise ScenarioError(f"{where}.objects.{obj}: unknown flag {bad[0]!r}")
        perm = {"ParentId": row["Id"], "SobjectType": obj,
                **{f"Permissions{f}": f in flags for f in _OBJECT_FLAG_NAMES}}
        problem = objectaccess.check_row(org, "ObjectPermissions", perm)
        if problem:
            raise ScenarioError(f"{where}.objects.{obj}: {problem[1]}")
        org.insert("ObjectPermissions", perm)
    for name, flags in ps.fields.items():
        bad = [f for f in flags if f not in ("Read", "Edit")]
        if bad:
            raise ScenarioError(f"{where}.fields.{name}: unknown flag {bad[0]!r}")
        perm = {"ParentId": row["Id"], "SobjectType": name.partition(".")[0], "Field": name,
                "PermissionsRead": "Read" in flags, "PermissionsEdit": "Edit" in flags}
        problem = objectaccess.check_row(org, "FieldPermissions", perm)
        if problem:
            raise ScenarioError(f"{where}.fields.{name}: {problem[1]}")
        org.insert("FieldPermissions", perm)
    if ps.record_types:
        items = [{"recordType": rt, "visible": True} for rt in ps.record_types]
        unknown = objectaccess.unknown_record_types(org, items)
        if unknown:
            raise ScenarioError(f"{where}.record_types: no record type {unknown[0]!r}")
        objectaccess.set_record_type_visibilities(org, row, items)


def _seed_oauth_token(org: Org, spec: OauthTokenSpec) -> None:
    from datetime import UTC, datetime, timedelta

    user = org.user_by_username(spec.username)
    if user is None:
        raise ScenarioError(f"oauth_tokens: no user {spec.username!r}")
    when = datetime.now(UTC) - timedelta(minutes=spec.minutes_ago)
    org.insert("OauthToken", {"AppName": spec.app, "UserId": user["Id"],
                              "LastUsedDate": when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                              "UseCount": spec.use_count, "AppMenuItemId": None})


def _own(org: Org, sc: Scenario, url: str) -> str:
    """A URL on the scenario's own My Domain follows the org when a fleet renames it."""
    scenario_host = f"https://{sc.org.my_domain}.my.salesforce.com"
    if url.startswith(scenario_host) and org.my_domain_url != scenario_host:
        return org.my_domain_url + url[len(scenario_host):]
    return url


def _named_credential(org: Org, sc: Scenario, nc: NamedCredentialSpec) -> dict[str, Any]:
    url = _own(org, sc, nc.endpoint)
    common = {"fullName": nc.name, "label": nc.label or nc.name,
              "allowMergeFieldsInBody": False, "allowMergeFieldsInHeader": False,
              "generateAuthorizationHeader": nc.type != "Legacy"}
    if nc.type != "Legacy":
        params = [{"parameterName": "Url", "parameterType": "Url", "parameterValue": url}]
        if nc.external_credential:
            params.append({"parameterName": "ExternalCredential",
                           "parameterType": "Authentication",
                           "externalCredential": nc.external_credential})
        return {**common, "namedCredentialType": nc.type, "namedCredentialParameters": params}
    out: dict[str, Any] = {**common, "endpoint": url, "namedCredentialType": "Legacy",
                           "principalType": nc.principal_type, "protocol": nc.protocol}
    if nc.username:
        out["username"] = nc.username
    if nc.password:
        out["password"] = nc.password
    return out


def _grant_rows(org: Org, entity_type: str, entity_id: str, profiles: list[str],
                permission_sets: list[str], where: str) -> None:
    for name in profiles:
        profile = org.profile_by_name(name)
        owned = org.profile_permission_set(profile["Id"]) if profile else None
        if owned is None:
            raise ScenarioError(f"{where}.profiles: no profile {name!r}")
        org.insert("SetupEntityAccess", {"ParentId": owned["Id"], "SetupEntityId": entity_id,
                                         "SetupEntityType": entity_type})
    for name in permission_sets:
        ps = org.permission_set_by_name(name)
        if ps is None:
            raise ScenarioError(f"{where}.permission_sets: no permission set {name!r}")
        org.insert("SetupEntityAccess", {"ParentId": ps["Id"], "SetupEntityId": entity_id,
                                         "SetupEntityType": entity_type})


def _seed_connected_app(org: Org, app: ConnectedAppSpec) -> None:
    where = f"connected_apps.{app.name}"
    if app.run_as and org.user_by_username(app.run_as) is None:
        raise ScenarioError(f"{where}.run_as: no user {app.run_as!r}")
    oauth: dict[str, Any] = {
        "callbackUrl": app.callback_url, "consumerKey": app.consumer_key,
        "consumerSecret": app.consumer_secret, "isAdminApproved": app.admin_approved,
        "isClientCredentialEnabled": app.client_credentials, "scopes": list(app.scopes),
    }
    if app.run_as:
        oauth["oauthClientCredentialUser"] = app.run_as
    if app.certificate:
        oauth["certificate"] = app.certificate
    component: dict[str, Any] = {
        "fullName": app.name, "label": app.label or app.name, "contactEmail": app.contact_email,
        "oauthConfig": oauth,
        "oauthPolicy": {"ipRelaxation": app.ip_relaxation,
                        "refreshTokenPolicy": app.refresh_token_policy},
    }
    if app.high_assurance:
        component["sessionPolicy"] = {"policyAction": "Block", "sessionLevel": "HIGH_ASSURANCE"}
    if app.handler_run_as:
        if org.user_by_username(app.handler_run_as) is None:
            raise ScenarioError(f"{where}.handler_run_as: no user {app.handler_run_as!r}")
        component["pluginExecutionUser"] = app.handler_run_as
    if app.managed:
        if not app.package or not app.name.startswith(f"{app.package}__"):
            raise ScenarioError(f"{where}.managed: a managed app is named <package "
                                f"namespace>__Name (package: {app.package!r})")
        component["_namespace"] = app.package
        component["_managed"] = True
    if app.jwt_audiences is not None:
        org.jwt_audiences[app.name] = list(app.jwt_audiences)
    if not app.installed:  # known to the token endpoint only, by its consumer key
        org.uninstalled_apps[app.name] = component
        return
    org.metadata.setdefault("ConnectedApp", {})[app.name] = component
    row = org.insert("ConnectedApplication", {"Name": app.name, "OptionsIsInternal": False,
                                              "OptionsRefreshTokenValidityMetric": False,
                                              "StartUrl": None, "MobileStartUrl": None,
                                              "RefreshTokenValidityPeriod": None})
    _grant_rows(org, "ConnectedApplication", row["Id"], app.profiles, app.permission_sets, where)


def _seed_eca(org: Org, eca: ExternalClientAppSpec) -> None:
    where = f"external_client_apps.{eca.name}"
    if eca.run_as and org.user_by_username(eca.run_as) is None:
        raise ScenarioError(f"{where}.run_as: no user {eca.run_as!r}")
    for ps in eca.permission_sets:
        if org.permission_set_by_name(ps) is None:
            raise ScenarioError(f"{where}.permission_sets: no permission set {ps!r}")
    for prof in eca.profiles:
        if org.profile_by_name(prof) is None:
            raise ScenarioError(f"{where}.profiles: no profile {prof!r}")
    md = org.metadata
    label = eca.label or eca.name
    md.setdefault("ExternalClientApplication", {})[eca.name] = {
        "_id": org.ids.new("ExternalClientApplication"), "fullName": eca.name, "label": label,
        "contactEmail": eca.contact_email, "distributionState": "Local", "isProtected": False}
    md.setdefault("ExtlClntAppOauthSettings", {})[f"{eca.name}_oauth"] = {
        "fullName": f"{eca.name}_oauth", "externalClientApplication": eca.name, "label": label,
        "commaSeparatedOauthScopes": ", ".join(eca.scopes)}
    global_cc = eca.client_credentials if eca.client_credentials_global is None \
        else eca.client_credentials_global
    settings: dict[str, Any] = {
        "fullName": f"{eca.name}_glbloauth", "externalClientApplication": eca.name,
        "label": label, "callbackUrl": eca.callback_url, "consumerKey": eca.consumer_key,
        "consumerSecret": eca.consumer_secret, "isClientCredentialsFlowEnabled": global_cc,
        "isPkceRequired": True}
    if eca.certificate:
        settings["certificate"] = eca.certificate
    md.setdefault("ExtlClntAppGlobalOauthSettings", {})[settings["fullName"]] = settings
    policy: dict[str, Any] = {
        "fullName": f"{eca.name}_oauthPlcy", "externalClientApplication": eca.name,
        "label": label, "isClientCredentialsFlowEnabled": eca.client_credentials,
        "permittedUsersPolicyType": "AdminApprovedPreAuthorized" if eca.admin_approved
        else "AllSelfAuthorized",
        "ipRelaxationPolicyType": eca.ip_relaxation,
        "commaSeparatedProfile": ", ".join(eca.profiles) or None,
        "commaSeparatedPermissionSet": ", ".join(eca.permission_sets) or None,
        "refreshTokenPolicyType": "Zero"}
    if eca.run_as:
        policy["clientCredentialsFlowUser"] = eca.run_as
    if eca.high_assurance:
        policy["requiredSessionLevel"] = "HIGH_ASSURANCE"
    md.setdefault("ExtlClntAppOauthConfigurablePolicies", {})[policy["fullName"]] = policy
    md.setdefault("ExtlClntAppConfigurablePolicies", {})[f"{eca.name}_plcy"] = {
        "fullName": f"{eca.name}_plcy", "externalClientApplication": eca.name, "label": label,
        "isEnabled": True, "isOauthPluginEnabled": True}


def _package_row(org: Org, namespace: str) -> dict[str, Any] | None:
    return org.find_one("SubscriberPackage", NamespacePrefix=namespace)


def install_package_apps(org: Org, package_id: str) -> list[str]:
    """Create the connected apps a package brings, when the package is installed."""
    created = []
    for spec in org.package_apps.pop(package_id, []):
        app = ConnectedAppSpec.model_validate(spec)
        if org.connected_application(app.name) is None:
            _seed_connected_app(org, app)
            created.append(app.name)
    return created


def _seed_package(org: Org, pkg: PackageSpec) -> None:
    package = org.insert("SubscriberPackage", {"Name": pkg.name, "NamespacePrefix": pkg.namespace,
                                               "Description": None})
    major, minor, patch, build = (int(x) for x in (pkg.version.split(".") + ["0"] * 4)[:4])
    version_row = {"Name": pkg.version, "SubscriberPackageId": package["Id"],
                   "MajorVersion": major, "MinorVersion": minor, "PatchVersion": patch,
                   "BuildNumber": build}
    if pkg.version_id:
        version_row["Id"] = to18(pkg.version_id[:15])
    version_row.update({"_InstallPolls": pkg.install_polls, "_InstallError": pkg.install_error,
                        "_InstallKey": pkg.installation_key})
    version = org.insert("SubscriberPackageVersion", version_row)
    if pkg.installed:
        org.insert("InstalledSubscriberPackage", {"SubscriberPackageId": package["Id"],
                                                  "SubscriberPackageVersionId": version["Id"],
                                                  "MinPackageVersionId": None})


def _seed_login(org: Org, entry: LoginHistorySpec) -> None:
    from datetime import UTC, datetime, timedelta

    user = org.user_by_username(entry.username)
    if user is None:
        raise ScenarioError(f"login_history: no user {entry.username!r}")
    when = datetime.now(UTC) - timedelta(minutes=entry.minutes_ago)
    org.insert("LoginHistory", {
        "UserId": user["Id"], "LoginTime": when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "LoginType": entry.login_type, "LoginSubType": entry.login_sub_type,
        "Status": entry.status, "SourceIp": entry.source_ip,
        "LoginUrl": entry.login_url or org.my_domain_host, "Application": entry.application,
        "ApiType": "N/A", "ApiVersion": "N/A", "Browser": "Unknown", "Platform": "Unknown",
        "OptionsIsGet": False, "OptionsIsPost": True})
