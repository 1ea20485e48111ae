"""``remediate doctor``: can remediate work on this org, before the first apply? Read-only.

One pass over the org, each part answered even when another fails:

* **sign-in**: which flow, at which URL, as which user (``userinfo``);
* **API version**: the version remediate uses and the versions the org serves
  (``GET /services/data/``);
* **permissions**: the signed-in user's ``Permissions*`` flags, read from the user's profile and
  every permission set assigned to them, against what each bound step kind declares it needs
  (``StepKind.permissions``: Salesforce's API field names, platform-truth A5 for the app kinds),
  plus what every read needs (API Enabled, View Setup and Configuration). A flag the org does
  not know (no such field on PermissionSet) cannot be checked and counts as missing;
* **objects**: every sObject, field and relationship the reads of the bound steps use, from
  ``describe``, and every Metadata API type they read, from ``describeMetadata``;
* **apps**: every ConnectedApplication row (local or installed) and External Client App;
* **limits**: ``DailyApiRequests`` from ``/limits``;
* **org settings**: API Access Control (Metadata ``ConnectedAppSettings``, cause C13);
* **probes**: one per unsettled platform fact (platform-truth.md) or sandbox assumption
  (docs/sandbox.md, assumptions) that a read can settle, with what this org answered, a
  verdict against the assumption row (confirmed / contradicted / open) and what remediate
  does given it (ADR 0042). Every call is a read, but for one validation-only ``checkOnly``
  deploy (``managed-refusal``: nothing is saved).

Exit codes: 0 everything needed is there; 2 something is missing (each ``missing`` line says
what and how to grant it); 1 remediate could not sign in. JSON shape: docs/doctor.schema.json.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

from remediate.errors import EXIT_DRIFT, EXIT_FAILURE, EXIT_OK, RemediateError
from remediate.salesforce.accessreads import OBJECT_FLAGS
from remediate.steps.base import (
    AppRead,
    AppRowRead,
    LicenseRead,
    MetadataRead,
    ObjectAccessRead,
    OrgRead,
    PackageRead,
    PermissionSetRead,
    ProfileRead,
    Read,
    UserRead,
)

if TYPE_CHECKING:
    from remediate.orgs import OrgHandle
    from remediate.salesforce.gateway import Gateway

PERMISSION_SET_FILE = "remediate_admin.permissionset-meta.xml"
PERMISSION_SET_NAME = "Remediate_Admin"

#: Setup labels of the permissions remediate needs, by API field name (object reference,
#: PermissionSet; the Setup label is what an admin ticks under System Permissions).
LABELS: dict[str, str] = {
    "PermissionsApiEnabled": "API Enabled",
    "PermissionsViewSetup": "View Setup and Configuration",
    "PermissionsCustomizeApplication": "Customize Application",
    "PermissionsModifyAllData": "Modify All Data",
    "PermissionsModifyMetadata": "Modify Metadata Through Metadata API Functions",
    "PermissionsManageProfilesPermissionsets": "Manage Profiles and Permission Sets",
    "PermissionsManageUsers": "Manage Users",
    "PermissionsAssignPermissionSets": "Assign Permission Sets",
    "PermissionsInstallPackaging": "Download AppExchange Packages",
    "PermissionsViewAllData": "View All Data",
}

#: What every run needs, whatever the playbooks: calling the API and reading setup objects.
READS = "remediate (every read)"
BASE_PERMISSIONS = ("PermissionsApiEnabled", "PermissionsViewSetup")


#: Objects doctor reads when they are there, with a fallback when not (permissions then come
#: from the profile and permission sets).
OPTIONAL_OBJECTS = frozenset({"UserPermissionAccess"})


@dataclass
class ObjectNeed:
    api: str  # rest | tooling
    fields: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)  # relationship names of lookups
    children: set[str] = field(default_factory=set)  # child relationship names


def _need(out: dict[str, ObjectNeed], name: str, fields: Iterable[str] = (),
          references: Iterable[str] = (), children: Iterable[str] = (),
          api: str = "rest") -> None:
    need = out.setdefault(name, ObjectNeed(api))
    need.fields.update(fields)
    need.references.update(references)
    need.children.update(children)


def object_needs(reads: Iterable[Read], permission_fields: Iterable[str]) -> dict[str, ObjectNeed]:
    """The sObjects, fields and relationships the gateway's queries use for these reads
    (salesforce/planner.py ``_plan_queries``, ``PACKAGES_SOQL``), plus doctor's own."""
    out: dict[str, ObjectNeed] = {}
    perms = list(permission_fields)
    # doctor's own reads: the signed-in user's profile and permission sets, the apps
    _need(out, "UserPermissionAccess", perms)
    _need(out, "User", ["Id", "Username", "ProfileId"], ["Profile"], ["PermissionSetAssignments"])
    _need(out, "Profile", ["Id", "Name"])
    _need(out, "PermissionSetAssignment", ["Id", "PermissionSetId"], ["PermissionSet"])
    _need(out, "PermissionSet", ["Id", "Name", *perms])
    _need(out, "ConnectedApplication", ["Id", "Name"])
    for read in set(reads):
        if isinstance(read, UserRead):
            _need(out, "User", ["IsActive"], children=["PermissionSetLicenseAssignments"])
            _need(out, "Profile", ["PermissionsApiEnabled", "UserLicenseId"])
            _need(out, "PermissionSet", ["IsOwnedByProfile", "PermissionsApiEnabled"])
            _need(out, "PermissionSetLicenseAssign", ["Id", "PermissionSetLicenseId"],
                  ["PermissionSetLicense"])
            _need(out, "PermissionSetLicense", ["DeveloperName"])
        elif isinstance(read, PermissionSetRead):
            # by API name or label; LicenseId resolved against the licence rows (U6)
            _need(out, "PermissionSet", ["Label", "LicenseId", "IsOwnedByProfile",
                                         "PermissionsApiEnabled"],
                  children=["SetupEntityAccessItems"])
            # the apps it grants (planner.GRANTS, platform-truth A4)
            _need(out, "SetupEntityAccess", ["Id", "SetupEntityId", "SetupEntityType"])
        elif isinstance(read, LicenseRead):
            _need(out, "PermissionSetLicense", ["Id", "DeveloperName", "MasterLabel",
                                                "TotalLicenses", "UsedLicenses"])
        elif isinstance(read, ProfileRead):
            _need(out, "Profile", ["PermissionsApiEnabled", "UserLicenseId"], ["UserLicense"])
            _need(out, "UserLicense", ["Name"])
        elif isinstance(read, MetadataRead) and read.type == "Profile":
            # login IP ranges come from readMetadata of the Profile (U3, ADR 0021); the
            # Profile query finds its id and licence
            _need(out, "Profile", ["PermissionsApiEnabled", "UserLicenseId"], ["UserLicense"])
            _need(out, "UserLicense", ["Name"])
        elif isinstance(read, PackageRead):
            _need(out, "InstalledSubscriberPackage",
                  ["Id", "SubscriberPackageId", "SubscriberPackageVersionId"],
                  ["SubscriberPackage", "SubscriberPackageVersion"], api="tooling")
            _need(out, "SubscriberPackage", ["Name", "NamespacePrefix"], api="tooling")
            _need(out, "SubscriberPackageVersion",
                  ["MajorVersion", "MinorVersion", "PatchVersion", "BuildNumber"], api="tooling")
        elif isinstance(read, OrgRead):
            _need(out, "Organization", ["Id", "Name", "IsSandbox", "InstanceName"])
        elif isinstance(read, ObjectAccessRead):  # salesforce/accessreads.py (C15)
            _need(out, "ObjectPermissions", ["Id", "ParentId", "SobjectType", *OBJECT_FLAGS],
                  ["Parent"])
            _need(out, "FieldPermissions", ["Id", "ParentId", "SobjectType", "Field",
                                            "PermissionsRead", "PermissionsEdit"], ["Parent"])
            _need(out, "RecordType", ["Id", "SobjectType", "DeveloperName"])
        elif isinstance(read, AppRowRead):
            _need(out, "ConnectedApplication", ["OptionsHasSessionLevelPolicy"])
        if isinstance(read, UserRead):  # audit shows the user's OAuth usage (accessreads.py)
            _need(out, "OauthToken", ["AppName", "UserId", "LastUsedDate", "UseCount"], ["User"])
    return out


def metadata_types(reads: Iterable[Read]) -> list[str]:
    reads = list(reads)
    types = {r.type for r in reads if isinstance(r, MetadataRead)}
    for r in reads:
        if isinstance(r, AppRead):  # salesforce/apps.py lists and reads these
            types |= {"ConnectedApp"} if r.type == "connected_app" else {
                "ExternalClientApplication", "ExtlClntAppOauthSettings",
                "ExtlClntAppGlobalOauthSettings", "ExtlClntAppOauthConfigurablePolicies"}
    return sorted(types)


def needed_permissions(handle: OrgHandle) -> dict[str, list[str]]:
    """Permission API name -> the bound step kinds (and READS) that need it."""
    out: dict[str, set[str]] = {p: {READS} for p in BASE_PERMISSIONS}
    for step in handle.steps:
        for perm in step.kind.permissions:
            out.setdefault(perm, set()).add(step.kind.name)
    return {p: sorted(kinds) for p, kinds in sorted(out.items())}


def all_permissions() -> list[str]:
    """Every permission any step kind or any read needs: what the shipped set grants."""
    from remediate.steps.base import kinds

    perms = set(BASE_PERMISSIONS)
    for kind in kinds().values():
        perms.update(kind.permissions)
    return sorted(perms)


def permission_set_xml() -> str:
    """The shipped permission set for remediate's own admin user (package data)."""
    return resources.files("remediate").joinpath("data", PERMISSION_SET_FILE) \
        .read_text(encoding="utf-8")


def permission_set_component() -> dict[str, Any]:
    """The shipped permission set as a Metadata API component (for upsertMetadata)."""
    from xml.etree import ElementTree

    ns = "{http://soap.sforce.com/2006/04/metadata}"
    root = ElementTree.fromstring(permission_set_xml())
    comp: dict[str, Any] = {"fullName": PERMISSION_SET_NAME}
    for child in root:
        tag = child.tag.removeprefix(ns)
        if tag == "userPermissions":
            enabled = (child.findtext(f"{ns}enabled") or "").strip() == "true"
            comp.setdefault("userPermissions", []).append(
                {"enabled": enabled, "name": (child.findtext(f"{ns}name") or "").strip()})
        elif tag == "hasActivationRequired":
            comp[tag] = (child.text or "").strip() == "true"
        else:
            comp[tag] = (child.text or "").strip()
    return comp


# ---- the report --------------------------------------------------------------------------


@dataclass
class Report:
    org: str
    sign_in: dict[str, Any]
    api_version: dict[str, Any] = field(default_factory=dict)
    permissions: list[dict[str, Any]] = field(default_factory=list)
    objects: list[dict[str, Any]] = field(default_factory=list)
    metadata_types: list[dict[str, Any]] = field(default_factory=list)
    apps: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a part that could not be read

    @property
    def exit_code(self) -> int:
        if not self.sign_in.get("ok"):
            return EXIT_FAILURE
        return EXIT_DRIFT if self.missing else EXIT_OK

    def data(self) -> dict[str, Any]:
        return {"org": self.org, "ok": self.exit_code == EXIT_OK, "exit_code": self.exit_code,
                "sign_in": self.sign_in, "api_version": self.api_version,
                "permissions": self.permissions, "objects": self.objects,
                "metadata_types": self.metadata_types, "apps": self.apps,
                "limits": self.limits, "settings": self.settings,
                "probes": self.probes, "missing": self.missing,
                "errors": self.errors}


def run(handle: OrgHandle, *, probe_writes: bool = False) -> Report:
    """Every check, read-only; with ``probe_writes``, also the probes that send DML inside a
    composite that is always rolled back (nothing persists; ADR 0044)."""
    gw = handle.gateway
    flow = gw.auth_flow
    report = Report(handle.name, {"ok": False, "flow": flow,
                                  "login_url": handle.config.login_url})
    try:
        gw.sign_in()
        info = gw.read_call("reading the signed-in user (userinfo)",
                        lambda: gw.sf.oauth2("userinfo", None, method="GET"))
    except RemediateError as err:
        report.sign_in["error"] = err.message
        return report
    info = info if isinstance(info, dict) else {}
    report.sign_in.update(ok=True, instance_url=gw.instance_url,
                          user_id=str(info.get("user_id") or ""),
                          username=str(info.get("preferred_username") or ""))
    reads = [r for step in handle.steps for r in step.kind.reads(step.params)]
    needed = needed_permissions(handle)
    _part(report, "API version", lambda: _api_version(gw, report))
    described: dict[str, dict[str, Any]] = {}
    _part(report, "objects", lambda: _objects(gw, report, object_needs(reads, needed), described))
    _part(report, "permissions", lambda: _permissions(gw, report, needed, described))
    _part(report, "metadata types", lambda: _metadata_types(gw, report, metadata_types(reads)))
    _part(report, "apps", lambda: _apps(gw, report))
    _part(report, "limits", lambda: _limits(gw, report))
    _org_settings(gw, report)
    for probe in PROBES:
        if probe.id == LICENCE_PROBE and probe_writes:
            probe = Probe(probe.fact, probe.question,
                          partial(_probe_licence_composite, handle), probe.id, probe.assumption)
        _probe(gw, report, described, probe)
    return report


def _part(report: Report, what: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except RemediateError as err:
        report.errors.append(f"{what}: {err.message}")
        report.missing.append(f"{what}: could not be read ({err.message}); the signed-in "
                              "user needs the permissions listed above (View Setup and "
                              "Configuration to read setup objects, Modify Metadata Through "
                              "Metadata API Functions or Modify All Data for the Metadata API)")


def _api_version(gw: Gateway, report: Report) -> None:
    def call() -> Any:
        sf = gw.sf
        response = sf.session.get(f"https://{sf.sf_instance}/services/data/", headers=sf.headers)
        response.raise_for_status()
        return response.json()

    answer = gw.read_call("listing the org's API versions", call)
    versions = sorted((str(v.get("version")) for v in answer if isinstance(v, dict)),
                      key=_version_key) if isinstance(answer, list) else []
    report.api_version = {"in_use": gw.version, "org_oldest": versions[0] if versions else None,
                          "org_newest": versions[-1] if versions else None,
                          "served": gw.version in versions}
    if gw.version not in versions:
        report.missing.append(f"API version {gw.version}: the org does not serve it (it serves "
                              f"{', '.join(versions[:1] + versions[-1:]) or 'none'}); set "
                              "api_version in remediate.toml to one it serves")


def _version_key(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


def _describe(gw: Gateway, name: str, api: str) -> Any:
    path = f"sobjects/{name}/describe"
    if api == "tooling":
        return gw.read_call(f"describing {name} (Tooling)", lambda: gw.sf.toolingexecute(path))
    return gw.read_call(f"describing {name}", lambda: gw.sf.restful(path))


def _objects(gw: Gateway, report: Report, needs: dict[str, ObjectNeed],
             described: dict[str, dict[str, Any]]) -> None:
    names = sorted(needs)
    results = gw.together([partial(_describe, gw, n, needs[n].api) for n in names])
    for name, (ok, answer) in zip(names, results, strict=True):
        need = needs[name]
        row: dict[str, Any] = {"object": name, "api": need.api, "exists": False,
                               "missing_fields": [], "missing_relationships": []}
        if not ok or not isinstance(answer, dict):
            detail = answer.message if isinstance(answer, RemediateError) else "no describe"
            row["error"] = detail
            report.objects.append(row)
            if name in OPTIONAL_OBJECTS:
                continue
            report.missing.append(f"object {name} ({need.api} API): not found or not visible to "
                                  f"the signed-in user ({detail}); it needs View Setup and "
                                  "Configuration, or the org's edition lacks it")
            continue
        described[name] = answer
        fields = {str(f.get("name")) for f in answer.get("fields") or [] if isinstance(f, dict)}
        refs = {str(f.get("relationshipName")) for f in answer.get("fields") or []
                if isinstance(f, dict) and f.get("relationshipName")}
        kids = {str(c.get("relationshipName")) for c in answer.get("childRelationships") or []
                if isinstance(c, dict) and c.get("relationshipName")}
        row["exists"] = True
        row["missing_fields"] = sorted(need.fields - fields)
        row["missing_relationships"] = sorted((need.references - refs) | (need.children - kids))
        report.objects.append(row)
        for f in row["missing_fields"]:
            if f.startswith("Permissions"):
                continue  # reported once, as a permission this org does not know
            report.missing.append(f"field {name}.{f}: not in this org's describe; remediate's "
                                  "reads use it (an older API version or another edition?)")
        for r in row["missing_relationships"]:
            report.missing.append(f"relationship {name}.{r}: not in this org's describe; "
                                  "remediate's reads use it")


def _permissions(gw: Gateway, report: Report, needed: dict[str, list[str]],
                 described: dict[str, dict[str, Any]]) -> None:
    """Whether the signed-in user holds each needed permission: UserPermissionAccess (the
    current user's effective permissions, readable by every user; object reference), and,
    where the user may read them, the profile and permission sets that grant it."""
    username = str(report.sign_in.get("username") or "the signed-in user")

    def fields_of(name: str) -> set[str] | None:
        d = described.get(name)
        if d is None:
            return None
        return {str(f.get("name")) for f in d.get("fields") or [] if isinstance(f, dict)}

    on_upa = fields_of("UserPermissionAccess")
    on_ps = fields_of("PermissionSet")
    names = on_upa if on_upa is not None else on_ps
    known = [p for p in needed if names is not None and p in names]
    held: dict[str, bool] = dict.fromkeys(needed, False)
    if known and on_upa is not None:
        rows = gw.query(f"SELECT {', '.join(p for p in known if p in on_upa)} "
                        "FROM UserPermissionAccess")
        for p in known:
            held[p] = bool(rows and rows[0].get(p))
    via = _granted_by(gw, report, [p for p in known if on_ps is None or p in on_ps],
                      fields_of("Profile") or set())
    if on_upa is None:
        held.update({p: bool(via.get(p)) for p in known})
    for perm, kinds in needed.items():
        label = LABELS.get(perm, perm.removeprefix("Permissions"))
        exists = perm in known
        report.permissions.append({"permission": perm, "label": label, "exists": exists,
                                   "held": held[perm], "via": via.get(perm, []),
                                   "needed_by": kinds})
        if names is None:
            continue  # neither describe answered: reported once, under objects
        if not exists:
            report.missing.append(
                f"permission {perm} ({label}), needed by {', '.join(kinds)}: this org has no "
                "such field on UserPermissionAccess or PermissionSet, so remediate cannot "
                "check it; grant the permission labelled so in Setup and report the field "
                "name to remediate")
        elif not held[perm]:
            report.missing.append(
                f"permission {perm} ({label}), needed by {', '.join(kinds)}: {username} does "
                f"not hold it; grant it: Setup > Users > Permission Sets > (a set assigned to "
                f"{username}) > System Permissions > Edit > tick '{label}' > Save, or deploy "
                "and assign the shipped set (remediate doctor --print-permission-set; "
                "docs/real-org.md)")


def _granted_by(gw: Gateway, report: Report, perms: list[str],
                on_profile: set[str]) -> dict[str, list[str]]:
    """Permission -> 'profile NAME' / 'permission set NAME' granting it to the signed-in
    user; empty when the user may not read its own assignments (no View Setup)."""
    user_id = str(report.sign_in.get("user_id") or "")
    out: dict[str, list[str]] = {p: [] for p in perms}
    if not perms or not user_id:
        return out
    profile_fields = [p for p in perms if p in on_profile]
    select = ", ".join(["Id", "Profile.Name", *(f"Profile.{p}" for p in profile_fields)])
    sub = ", ".join(["Id", "PermissionSet.Name", "PermissionSet.IsOwnedByProfile",
                     *(f"PermissionSet.{p}" for p in perms)])
    try:
        rows = gw.query(f"SELECT {select}, (SELECT {sub} FROM PermissionSetAssignments) "
                        f"FROM User WHERE Id = '{user_id}'")
    except RemediateError:
        return out  # needs View Setup and Configuration; UserPermissionAccess answered
    if not rows:
        return out
    profile = rows[0].get("Profile") or {}
    for p in profile_fields:
        if profile.get(p):
            out[p].append(f"profile {profile.get('Name')}")
    for a in ((rows[0].get("PermissionSetAssignments") or {}).get("records") or []):
        ps = a.get("PermissionSet") or {}
        where = (f"profile {profile.get('Name')}" if ps.get("IsOwnedByProfile")
                 else f"permission set {ps.get('Name')}")
        for p in perms:
            if ps.get(p) and where not in out[p]:
                out[p].append(where)
    return out


def _metadata_types(gw: Gateway, report: Report, types: list[str]) -> None:
    if not types:
        return
    answer = gw.read_call("describing the Metadata API (describeMetadata)",
                      lambda: gw.mdapi.describe_metadata())
    objects = _attr(answer, "metadataObjects") or []
    served = {str(_attr(o, "xmlName")) for o in objects}
    for t in types:
        present = t in served
        report.metadata_types.append({"type": t, "exists": present})
        if not present:
            report.missing.append(f"metadata type {t}: not in this org's describeMetadata; "
                                  "the steps that read it cannot run here")


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _list_metadata(gw: Gateway, type_: str) -> list[dict[str, Any]]:
    return gw.list_metadata([type_])[type_]


def _apps(gw: Gateway, report: Report) -> None:
    rows = gw.query("SELECT Id, Name FROM ConnectedApplication")
    listed = {str(c["fullName"]): c for c in _list_metadata(gw, "ConnectedApp")}
    for r in sorted(rows, key=lambda r: str(r.get("Name"))):
        name = str(r.get("Name") or "")
        comp = listed.get(name)
        installed = comp is None or bool(comp.get("namespacePrefix")) or \
            comp.get("manageableState") == "installed"
        report.apps.append({"name": name, "type": "connected_app", "id": str(r.get("Id") or ""),
                            "source": "installed" if installed else "local",
                            "namespace": (comp or {}).get("namespacePrefix") or None})
    try:
        ecas = _list_metadata(gw, "ExternalClientApplication")
    except RemediateError as err:  # e.g. an API version before External Client Apps
        report.errors.append(f"External Client Apps: {err.message}")
        return
    for c in sorted(ecas, key=lambda c: str(c["fullName"])):
        installed = bool(c.get("namespacePrefix")) or c.get("manageableState") == "installed"
        report.apps.append({"name": str(c["fullName"]), "type": "external_client_app",
                            "id": str(c.get("id") or ""),
                            "source": "installed" if installed else "local",
                            "namespace": c.get("namespacePrefix") or None})


def _limits(gw: Gateway, report: Report) -> None:
    answer = gw.read_call("reading the org's limits", lambda: gw.sf.restful("limits"))
    daily = answer.get("DailyApiRequests") if isinstance(answer, dict) else None
    if not isinstance(daily, dict):
        report.errors.append("limits: no DailyApiRequests in the answer")
        return
    report.limits = {"DailyApiRequests": {"max": daily.get("Max"),
                                          "remaining": daily.get("Remaining")}}
    remaining = daily.get("Remaining")
    if isinstance(remaining, int) and remaining <= 0:
        report.missing.append("DailyApiRequests: no API requests left today; wait for the "
                              "rolling 24-hour window or raise the allocation")


# ---- probes: what this org answers to an unsettled platform fact ---------------------------


@dataclass(frozen=True)
class Finding:
    """What a probe saw, measured against the assumption it tests."""

    verdict: str  # confirmed | contradicted (the assumption row) | observed (no row) | open
    answer: str  # what this org answered, or exactly what could not be settled and why
    remediate: str = ""  # what remediate does, given this answer


@dataclass(frozen=True)
class Probe:
    fact: str | None  # platform-truth.md row, when there is one
    question: str
    run: Callable[[Gateway, dict[str, dict[str, Any]]], tuple[bool, str] | Finding]
    id: str = ""  # the probe's name in the report and in docs/sandbox.md's assumptions table
    assumption: str = ""  # the assumptions-table row (docs/sandbox.md) it confirms or not


def _probe_u5(gw: Gateway, described: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    profile = described.get("Profile") or _describe(gw, "Profile", "rest")
    kids = {str(c.get("relationshipName")): str(c.get("childSObject"))
            for c in profile.get("childRelationships") or [] if isinstance(c, dict)}
    if "LoginIpRanges" not in kids:
        return True, "no: Profile has no child relationship LoginIpRanges in this org"
    child = described.get(kids["LoginIpRanges"]) or _describe(gw, kids["LoginIpRanges"], "rest")
    fields = {str(f.get("name")) for f in child.get("fields") or [] if isinstance(f, dict)}
    names = [f for f in ("StartAddress", "EndAddress", "IpStartAddress", "IpEndAddress")
             if f in fields]
    return True, (f"yes: Profile.LoginIpRanges -> {kids['LoginIpRanges']}, address fields "
                  f"{', '.join(names) or 'none of StartAddress/IpStartAddress'}")


def _eca_policies(gw: Gateway) -> list[str]:
    return sorted(str(c["fullName"]) for c in
                  _list_metadata(gw, "ExtlClntAppOauthConfigurablePolicies"))


def _probe_a11(gw: Gateway, described: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    del described
    names = _eca_policies(gw)
    if not names:
        return False, "no External Client App OAuth policies in this org: nothing to compare"
    forms = []
    for n in names:
        form = ("<App>_oauthPlcy" if n.endswith("_oauthPlcy") else
                "<App>_oauth_defaultPolicy" if n.endswith("_oauth_defaultPolicy") else "other")
        forms.append(f"{n} ({form})")
    return True, "policy names: " + ", ".join(forms)


_ID = re.compile(r"^0PS[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$")

ASSUMES_NAMES = "Metadata | `commaSeparatedPermissionSet` / `commaSeparatedProfile` hold API names"


def _probe_a13(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    """Each value of every ECA policy's ``commaSeparatedPermissionSet``, matched against the
    org's permission sets: by API name or by id (15 or 18 characters)."""
    del described
    names = _eca_policies(gw)
    values: list[str] = []
    for start in range(0, len(names), 10):
        for comp in gw.read_metadata("ExtlClntAppOauthConfigurablePolicies",
                                     names[start:start + 10]):
            value = (comp or {}).get("commaSeparatedPermissionSet")
            values += [v.strip() for v in str(value or "").split(",") if v.strip()]
    does = ("counts a grant given as a permission set's API name or its id, and adds a new "
            "one in the form the list already uses (steps/apps.AppAccess._eca), so either "
            "form is read and kept")
    if not values:
        return Finding("open", "no ECA policy lists a permission set in this org: nothing to "
                       "compare", does)
    sets = gw.query("SELECT Id, Name FROM PermissionSet WHERE IsOwnedByProfile = false")
    by_name = {str(r.get("Name")).lower() for r in sets}
    by_id = {str(r.get("Id"))[:15] for r in sets}
    as_names = [v for v in values if v.lower() in by_name]
    as_ids = [v for v in values if _ID.match(v) and v[:15] in by_id]
    other = [v for v in values if v not in as_names and v not in as_ids]
    seen = (f"{len(values)} value(s): {len(as_names)} permission set API name(s), "
            f"{len(as_ids)} id(s)" + (f", {len(other)} neither ({', '.join(other[:3])})"
                                      if other else ""))
    if as_ids:
        return Finding("contradicted", f"{seen}: the list holds ids", does)
    if as_names:
        return Finding("confirmed", f"{seen}: the list holds API names", does)
    return Finding("open", f"{seen}: no value names or ids a permission set of this org", does)


def _probe_u4(gw: Gateway, described: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    del described
    soql_names = {str(r.get("Name")) for r in gw.query("SELECT Name FROM Profile")}
    md_names = {str(c["fullName"]) for c in _list_metadata(gw, "Profile")}
    differ = sorted(md_names - soql_names)
    if not differ:
        return True, "every Profile metadata fullName equals a Profile Name"
    return True, (f"{len(differ)} metadata fullName(s) differ from every Profile Name, e.g. "
                  + ", ".join(differ[:5]))


def _probe_a4(gw: Gateway, described: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    del described
    rows = gw.query("SELECT Id, Parent.IsOwnedByProfile FROM SetupEntityAccess "
                    "WHERE SetupEntityType = 'ConnectedApplication'")
    on_profiles = sum(1 for r in rows if (r.get("Parent") or {}).get("IsOwnedByProfile"))
    if not on_profiles:
        return False, (f"{len(rows)} app grant row(s), none on a profile: nothing to compare")
    return True, (f"yes: {on_profiles} of {len(rows)} app grant row(s) have a profile's own "
                  "permission set as parent")


# ---- probes of the sandbox's assumptions (docs/sandbox.md; ADR 0042) -----------------------

#: Profiles the login-hours probe reads at most (a real org's Profile component is large).
LOGIN_HOURS_PROFILES = 20
#: Connected apps the name probe reads at most (one readMetadata call).
APP_NAME_READS = 10
#: checkDeployStatus polls of the validation-only deploy, and the wait between them (s).
DEPLOY_POLLS = 10
DEPLOY_POLL_WAIT_S = 2.0
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HOUR_KEYS = frozenset(f"{d}{e}" for d in DAYS for e in ("Start", "End"))


def _installed(comp: dict[str, Any]) -> bool:
    return bool(comp.get("namespacePrefix")) or comp.get("manageableState") == "installed"


def _probe_permission_set_upsert(gw: Gateway,
                                 described: dict[str, dict[str, Any]]) -> Finding:
    """Not settled by any read: say so, and what remediate does meanwhile."""
    del gw, described
    return Finding(
        "open",
        "cannot be settled read-only: readMetadata shows what a permission set holds, not what "
        "an upsertMetadata does to the object permissions it omits, and a checkOnly deploy "
        "answers only success or failure; doctor sends no write (how to settle it on a "
        "Developer sandbox: docs/adr/0042-doctor-probes-of-the-sandbox-assumptions.md)",
        "sends a PermissionSet component whole, as read (ADR 0033), and writes "
        "ObjectPermissions / FieldPermissions rows after the metadata phase, so omitted object "
        "permissions survive whether the upsert overlays or replaces")


def _minutes(value: Any) -> bool:
    text = str(value).strip()
    return text.isdigit() and 0 <= int(text) <= 1440


def _probe_login_hours(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    """The loginHours of the org's profiles (readMetadata): minutes after midnight?"""
    del described
    names = sorted(str(c["fullName"]) for c in _list_metadata(gw, "Profile"))
    read = names[:LOGIN_HOURS_PROFILES]
    values: list[tuple[str, str, Any]] = []
    for start in range(0, len(read), 10):
        for comp in gw.read_metadata("Profile", read[start:start + 10]):
            hours = (comp or {}).get("loginHours")
            if comp is not None and isinstance(hours, dict):
                values += [(str(comp["fullName"]), str(k), v) for k, v in sorted(hours.items())
                           if v not in (None, "") and k != "fullName"]
    does_ok = ("profile.login_hours reads <day>Start/<day>End as minutes after midnight and "
               "widens only the days that miss the playbook's window")
    does_not = ("profile.login_hours reports such a profile unknown (it cannot read the value) "
                "and changes nothing; the login hours stay a manual change in Setup")
    of = f"{len(read)} of {len(names)} profile(s) read"
    if not values:
        return Finding("open", f"{of}; none has login hours: nothing to compare", does_ok)
    odd = [(p, k, v) for p, k, v in values if k not in HOUR_KEYS or not _minutes(v)]
    if odd:
        shown = "; ".join(f"{p}: {k} = {v!r}" for p, k, v in odd[:3])
        return Finding("contradicted", f"{of}; {len(odd)} of {len(values)} value(s) are not "
                       f"<day>Start/<day>End in minutes after midnight: {shown}", does_not)
    p, k, v = values[0]
    return Finding("confirmed", f"{of}; {len(values)} value(s) on "
                   f"{len({p for p, _, _ in values})} profile(s), all <day>Start/<day>End in "
                   f"minutes after midnight (e.g. {p}: {k} = {v})", does_ok)


def _probe_app_name(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    """ConnectedApplication.Name against listMetadata's fullName and the component's label,
    joined by id, for local apps whose label differs from their API name."""
    del described
    rows = gw.query("SELECT Id, Name FROM ConnectedApplication")
    listed = {str(c.get("id") or "")[:15]: c for c in _list_metadata(gw, "ConnectedApp")}
    does = ("matches a display name against the component's label and ConnectedApplication."
            "Name (joined by id), and an API name against listMetadata's fullName, so apps are "
            "found either way")
    joined = [(r, listed[str(r.get("Id"))[:15]]) for r in rows
              if str(r.get("Id"))[:15] in listed]
    if rows and listed and not joined:
        return Finding("contradicted", f"{len(rows)} ConnectedApplication row(s), "
                       f"{len(listed)} ConnectedApp component(s), no listMetadata id equal to a "
                       "ConnectedApplication id", does)
    local = [(r, c) for r, c in joined if not _installed(c)][:APP_NAME_READS]
    if not local:
        return Finding("open", "no local connected app to read (installed apps' components "
                       "are not readable, A1): nothing to compare", does)
    comps = gw.read_metadata("ConnectedApp", [str(c["fullName"]) for _, c in local])
    api = label = same = 0
    example = ""
    for (r, c), comp in zip(local, comps, strict=True):
        name, full = str(r.get("Name")), str(c["fullName"])
        shown = str((comp or {}).get("label") or "")
        if not shown or shown == full:
            same += 1
        elif name == full:
            api += 1
        elif name == shown:
            label += 1
            example = example or f"{full}: Name {name!r}"
    seen = (f"{len(local)} local app(s) read: Name is the API name for {api}, the label for "
            f"{label}; {same} with a label equal to the API name (or none) tell nothing")
    if label:
        return Finding("contradicted", f"{seen} (e.g. {example})", does)
    if api:
        return Finding("confirmed", seen, does)
    return Finding("open", seen, does)


def _deploy_zip(type_: str, directory: str, suffix: str, name: str, body: str,
                version: str) -> bytes:
    import io
    import zipfile

    ns = "http://soap.sforce.com/2006/04/metadata"
    package = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Package xmlns="{ns}"><types>'
               f"<members>{name}</members><name>{type_}</name></types>"
               f"<version>{version}</version></Package>")
    component = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{type_} xmlns="{ns}">{body}'
                 f"</{type_}>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("package.xml", package)
        zf.writestr(f"{directory}/{name}.{suffix}", component)
    return buf.getvalue()


REFUSAL_PREFIX = "Cannot modify managed object"


def _probe_managed_refusal(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    """A checkOnly deploy of an installed managed connected app: the platform's refusal."""
    del described
    managed = sorted(str(c["fullName"]) for c in _list_metadata(gw, "ConnectedApp")
                     if _installed(c))
    does = ("never writes an installed app's component: its policies are manual changes with "
            "the Setup path (A1, A3); a refusal in any wording fails that step and the journal "
            "keeps the platform's message")
    if not managed:
        return Finding("open", "no connected app installed from a managed package: nothing to "
                       "validate against", does)
    name = managed[0]
    body = f"<contactEmail>doctor@example.com</contactEmail><label>{name}</label>"
    answer = gw.validate_deploy(_deploy_zip("ConnectedApp", "connectedApps", "connectedApp",
                                            name, body, gw.version),
                                polls=DEPLOY_POLLS, wait_s=DEPLOY_POLL_WAIT_S)
    what = f"checkOnly deploy of ConnectedApp {name} (nothing saved)"
    if not answer["done"]:
        return Finding("open", f"{what}: not finished after {DEPLOY_POLLS} polls (deploy id "
                       f"{answer['id']}); run doctor again later", does)
    if not answer["failures"]:
        return Finding("contradicted", f"{what}: validated ({answer['status']}), the platform "
                       "would accept a Metadata write of this installed app", does)
    problem = answer["failures"][0]
    verdict = "confirmed" if problem.startswith(REFUSAL_PREFIX) else "contradicted"
    return Finding(verdict, f"{what}: refused {problem!r} (a deploy carries no status code: "
                   "the CRUD calls' CANNOT_MODIFY_MANAGED_OBJECT stays unsettled)", does)


def _probe_api_access_control(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    del described
    comp = gw.read_metadata("ConnectedAppSettings", ["ConnectedApp"])[0]
    does = "reports the setting under org settings (C13); it changes nothing"
    if comp is None or comp.get("enableAdminApprovedAppsOnly") is None:
        return Finding("contradicted", "readMetadata of ConnectedAppSettings answered no "
                       "enableAdminApprovedAppsOnly (the Metadata API page: the field is there "
                       "once Salesforce Support has enabled API Access Control)",
                       "reports the setting unknown with the Setup path to check it by hand")
    return Finding("confirmed", "enableAdminApprovedAppsOnly = "
                   f"{str(comp['enableAdminApprovedAppsOnly']).lower()}", does)


# ---- the licence and its assignments in one composite (opt-in: DML, always rolled back) ----

LICENCE_PROBE = "licence-in-one-composite"
_LICENCE_REMEDIATE = (
    "sends the licence and the permission set assignments in one composite (allOrNone, in "
    "order); an org that refuses the assignments there has it all rolled back, and remediate "
    "sends them apart and remembers the org (ADR 0044): safe either way")


def _licence_not_run(gw: Gateway, described: dict[str, dict[str, Any]]) -> Finding:
    del gw, described
    return Finding("open", "not run: it sends DML (rolled back, nothing persists); pass "
                           "--probe-writes to run it", _LICENCE_REMEDIATE)


def _probe_licence_composite(handle: OrgHandle, gw: Gateway,
                             described: dict[str, dict[str, Any]]) -> Finding:
    """One composite, allOrNone true, collateSubrequests false: the licence assignment, the
    permission set assignments that need it (from the playbooks' own plan), then a GET of a
    record that does not exist, which fails and so rolls everything back (REST API, "Composite
    Request Body": allOrNone true rolls back the whole request). A refused assignment means
    the licence from the earlier subrequest was not seen (contradicted); the assignments
    answering only "rolled back" while the third alone failed means it was (confirmed)."""
    del described
    from remediate.engine import assess
    from remediate.plan import RecordWrite

    plan = assess(handle).plan
    rows = [c.write for c in plan.automatic if isinstance(c.write, RecordWrite)
            and c.write.api == "rest" and c.write.record_id is None]
    licences = [dict(w.fields) for w in rows if w.sobject == "PermissionSetLicenseAssign"]
    users = {str(r.get("AssigneeId")) for r in licences}
    assignments = [dict(w.fields) for w in rows if w.sobject == "PermissionSetAssignment"
                   and str(w.fields.get("AssigneeId")) in users]
    if not licences or not assignments:
        return Finding("open", "nothing to probe with: no bound user lacks a permission set "
                               "licence that a permission set the playbooks assign needs",
                       _LICENCE_REMEDIATE)
    version = gw.version
    url = f"/services/data/v{version}/composite/sobjects"
    body = {"allOrNone": True, "collateSubrequests": False, "compositeRequest": [
        {"method": "POST", "url": url, "referenceId": "licence",
         "body": {"allOrNone": True, "records": [
             {"attributes": {"type": "PermissionSetLicenseAssign"}, **r} for r in licences]}},
        {"method": "POST", "url": url, "referenceId": "assignments",
         "body": {"allOrNone": True, "records": [
             {"attributes": {"type": "PermissionSetAssignment"}, **r} for r in assignments]}},
        {"method": "GET", "referenceId": "fails",
         "url": f"/services/data/v{version}/sobjects/PermissionSetLicenseAssign/"
                "2LA000000000000AAA"}]}
    parts = gw.send_composite("probing a licence and its assignments in one composite "
                              "(rolled back)", body)
    left = gw.query("SELECT Id FROM PermissionSetLicenseAssign WHERE AssigneeId IN ("
                    + ", ".join(f"'{u}'" for u in sorted(users)) + ")")
    if left:
        return Finding("open", f"a licence assignment exists after the probe ({len(left)} "
                               "row(s)); the composite was not rolled back as documented: "
                               "check the user's licences in Setup", _LICENCE_REMEDIATE)
    from remediate.salesforce.writes import subrequest_refusal

    if len(parts) != 3:
        return Finding("open", "the answer did not hold three subrequests", _LICENCE_REMEDIATE)
    lic, psa, third = parts
    psa_refused, lic_refused = subrequest_refusal(psa), subrequest_refusal(lic)
    if lic_refused is not None:
        return Finding("open", f"the licence assignment itself was refused ({lic_refused[0]}: "
                               f"{lic_refused[1]})", _LICENCE_REMEDIATE)
    if psa_refused is not None:
        return Finding("contradicted", "the permission set assignment was refused beside the "
                                       f"licence ({psa_refused[0]}: {psa_refused[1]}); nothing "
                                       "persisted", _LICENCE_REMEDIATE)
    if subrequest_refusal(third) is not None:
        return Finding("confirmed", "the assignments were only rolled back; the failing third "
                                    "subrequest alone was refused; nothing persisted",
                       _LICENCE_REMEDIATE)
    return Finding("open", "no subrequest reported its own refusal", _LICENCE_REMEDIATE)


PROBES: tuple[Probe, ...] = (
    Probe("U5", "Does the SOQL child relationship Profile.LoginIpRanges exist, and what are "
                "its address fields called?", _probe_u5, "profile-login-ip-ranges"),
    Probe("A11", "How are External Client App OAuth policy components named?", _probe_a11,
          "eca-policy-names"),
    Probe("A13", "Does an ECA policy's commaSeparatedPermissionSet hold permission set ids or "
                 "API names?", _probe_a13, "eca-permission-set-form",
          "Metadata: `commaSeparatedPermissionSet` / `commaSeparatedProfile` hold API names"),
    Probe("U4", "Does a Profile's metadata fullName differ from its Name?", _probe_u4,
          "profile-full-names"),
    Probe("A4", "Does a profile's app grant appear as SetupEntityAccess on the profile's own "
                "permission set?", _probe_a4, "profile-app-grants"),
    Probe(None, "Does a PermissionSet upsertMetadata overlay or replace the object permissions "
                "it omits?", _probe_permission_set_upsert, "permission-set-upsert",
          "Metadata: Profile, PermissionSet and MyDomainSettings updates merge"),
    Probe(None, "Are Profile loginHours <day>Start/<day>End minutes after midnight?",
          _probe_login_hours, "login-hours-format",
          "OAuth: C16, profile login hours (minutes after midnight)"),
    Probe("A1", "How does the platform refuse a Metadata write of a component installed from "
                "a managed package?", _probe_managed_refusal, "managed-refusal",
          "Metadata: a managed component is refused with CANNOT_MODIFY_MANAGED_OBJECT "
          "'Cannot modify managed object: ...'"),
    Probe(None, "Does ConnectedApplication.Name hold the app's API name or its label?",
          _probe_app_name, "connected-app-name",
          "Metadata: listMetadata's id of a ConnectedApp is its ConnectedApplication id; "
          "ConnectedApplication.Name holds the API name"),
    Probe("A8", "Does readMetadata of ConnectedAppSettings answer API Access Control "
                "(enableAdminApprovedAppsOnly)?", _probe_api_access_control,
          "api-access-control",
          "Metadata: ConnectedAppSettings answers enableAdminApprovedAppsOnly (default off)"),
    Probe(None, "Does a permission set assignment see a licence assigned by an earlier "
                "subrequest of the same composite?", _licence_not_run, LICENCE_PROBE,
          "REST: a permission set assignment sees a licence assigned by an earlier subrequest "
          "of the same composite"),
)


# ---- org settings: what the org restricts (read-only) -------------------------------------

API_ACCESS_CONTROL_PATH = ("Setup → Quick Find → API Access Control (the page is there only "
                           "when Salesforce Support has enabled the feature)")


def _org_settings(gw: Gateway, report: Report) -> None:
    """API Access Control (cause C13): Metadata ``ConnectedAppSettings``'s
    ``enableAdminApprovedAppsOnly``, "if true, only apps that have been approved or installed
    by the admin can call the Salesforce API" (Metadata API, ConnectedAppSettings, v47.0+)."""
    entry: dict[str, Any] = {"setting": "API Access Control",
                             "source": "Metadata ConnectedAppSettings.enableAdminApprovedAppsOnly",
                             "value": None}
    try:
        comp = gw.read_metadata("ConnectedAppSettings", ["ConnectedApp"])[0]
    except RemediateError as err:
        comp = None
        report.errors.append(f"org settings: {err.message}")
    value = (comp or {}).get("enableAdminApprovedAppsOnly")
    if isinstance(value, bool):
        entry["value"] = value
        entry["detail"] = ("only apps approved or installed by an admin may call the API: an "
                           "integration whose app is not installed fails to sign in (C13)"
                           if value else "any connected app may call the API")
    else:
        entry["detail"] = f"the org answered no value; check by hand: {API_ACCESS_CONTROL_PATH}"
    report.settings.append(entry)


def _probe(gw: Gateway, report: Report, described: dict[str, dict[str, Any]],
           probe: Probe) -> None:
    try:
        result = probe.run(gw, described)
    except RemediateError as err:
        result = Finding("open", f"could not read: {err.message}")
    if isinstance(result, tuple):  # a probe with no assumption row: what the org answered
        settled, answer = result
        result = Finding("observed" if settled else "open", answer)
    report.probes.append({"id": probe.id, "fact": probe.fact, "question": probe.question,
                          "assumption": probe.assumption, "settled": result.verdict != "open",
                          "verdict": result.verdict, "answer": result.answer,
                          "remediate": result.remediate})


# ---- text --------------------------------------------------------------------------------


def render_text(report: Report) -> str:
    lines = [f"remediate doctor: org {report.org!r}", ""]
    s = report.sign_in

    def row(status: str, what: str, detail: str) -> None:
        lines.append(f"  {status:<8} {what:<44} {detail}".rstrip())

    lines.append("sign-in")
    if s.get("ok"):
        row("ok", f"{s.get('flow')} at {s.get('login_url')}",
            f"as {s.get('username')} ({s.get('instance_url')})")
    else:
        row("FAILED", f"{s.get('flow')} at {s.get('login_url')}", str(s.get("error")))
    if report.api_version:
        v = report.api_version
        lines.append("api version")
        row("ok" if v.get("served") else "MISSING", f"in use {v.get('in_use')}",
            f"org serves {v.get('org_oldest')} .. {v.get('org_newest')}")
    if report.permissions:
        lines.append("permissions of the signed-in user")
        for p in report.permissions:
            status = "ok" if p["held"] else "MISSING" if p["exists"] else "UNKNOWN"
            via = f"via {', '.join(p['via'])}; " if p["via"] else ""
            row(status, f"{p['permission']}", f"{via}needed by {', '.join(p['needed_by'])}")
    if report.objects:
        lines.append("objects, fields and relationships the reads use")
        for o in report.objects:
            gaps = o["missing_fields"] + o["missing_relationships"]
            status = "ok" if o["exists"] and not gaps else "MISSING"
            detail = (f"missing {', '.join(gaps)}" if gaps else
                      "" if o["exists"] else str(o.get("error") or "not found"))
            row(status, f"{o['object']} ({o['api']})", detail)
    if report.metadata_types:
        lines.append("metadata types the reads use")
        for m in report.metadata_types:
            row("ok" if m["exists"] else "MISSING", m["type"], "")
    if report.apps:
        lines.append("apps")
        for a in report.apps:
            ns = f", namespace {a['namespace']}" if a.get("namespace") else ""
            row("info", a["name"], f"{a['type']}, {a['source']}{ns}")
    if report.limits:
        d = report.limits["DailyApiRequests"]
        lines.append("limits")
        row("ok", "DailyApiRequests", f"{d['remaining']} of {d['max']} left")
    if report.settings:
        lines.append("org settings")
        for st in report.settings:
            value = {True: "on", False: "off", None: "unknown"}[st["value"]]
            row(value, st["setting"], st["detail"])
    if report.probes:
        lines.append("platform probes (docs: platform-truth, docs/sandbox.md assumptions)")
        for pr in report.probes:
            row(pr["verdict"], " ".join(x for x in (pr["fact"], pr["id"]) if x), pr["answer"])
            if pr["assumption"]:
                lines.append(f"{'':11}assumption: {pr['assumption']}")
            if pr["remediate"]:
                lines.append(f"{'':11}remediate: {pr['remediate']}")
    lines.append("")
    if report.errors:
        lines += [f"could not read: {e}" for e in report.errors]
    if not s.get("ok"):
        lines.append("Cannot connect: fix the sign-in above (docs/real-org.md).")
    elif report.missing:
        lines.append(f"{len(report.missing)} thing(s) missing:")
        lines += [f"  - {m}" for m in report.missing]
    else:
        lines.append("Everything remediate needs is there.")
    return "\n".join(lines)
