"""The read planner: read requests (steps/base.py) in, the calls that answer them out.

Pure planning, no I/O: ``plan`` turns a run's set of ``Read`` values into a ``ReadPlan``: the
SOQL queries (each with what fills the inventory from its records, long IN lists split under
the statement limit, U8), grouped into ``composite`` batches of at most 5 (Salesforce's limit
for query subrequests); the ``readMetadata`` calls per type per 10 names; the profiles whose
metadata is read by API name (U3, U4); whether the installed packages (Tooling) and the
organization are read. reads.py executes a plan through a session (session.py); the parts a
plan collects before the inventory can be finished (the organization row, the My Domain, the
Profile rows) live in the plan's typed ``Scratch``, never in ``Inventory.results``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from remediate.salesforce import soql as soql_text
from remediate.steps.base import (
    Ambiguous,
    AssignedSet,
    Inventory,
    LicenseInfo,
    LicenseRead,
    MetadataRead,
    OrgInfo,
    OrgRead,
    PackageInfo,
    PackageRead,
    PermissionSetInfo,
    PermissionSetRead,
    ProfileInfo,
    ProfileRead,
    Read,
    UserInfo,
    UserRead,
)

QUERIES_PER_COMPOSITE = 5
METADATA_PER_CALL = 10
#: The longest IN list remediate puts in one SOQL statement, in characters. Salesforce allows
#: 100,000 characters per statement (platform-truth U8); a query goes in a GET URL, so the
#: list is kept far below that (an assumption, docs/sandbox.md).
IN_LIST_CHARS = 8000

ORGANIZATION_SOQL = "SELECT Id, Name, IsSandbox, InstanceName FROM Organization"
PROFILES_BY_ID_SOQL = ("SELECT Id, Name, PermissionsApiEnabled, UserLicenseId, "
                       "UserLicense.Name FROM Profile WHERE Id IN ({})")
PACKAGES_SOQL = ("SELECT Id, SubscriberPackageId, SubscriberPackage.Name, "
                 "SubscriberPackage.NamespacePrefix, SubscriberPackageVersionId, "
                 "SubscriberPackageVersion.MajorVersion, SubscriberPackageVersion.MinorVersion, "
                 "SubscriberPackageVersion.PatchVersion, SubscriberPackageVersion.BuildNumber "
                 "FROM InstalledSubscriberPackage")

#: A SOQL statement and what to do with its records (all pages, all child pages).
Query = tuple[str, Callable[[list[dict[str, Any]]], None]]


@dataclass
class Scratch:
    """What a fetch collects on the way that is not itself an answer to a read: the
    organization row and the My Domain (finished into the ``OrgRead`` answer), and the Profile
    rows found by Name (to map a profile's metadata API name)."""

    organization: dict[str, Any] | None = None
    my_domain: str | None = None
    profile_rows: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ReadPlan:
    """The calls that answer a set of reads; their handlers fill ``inventory``."""

    inventory: Inventory
    queries: list[Query]
    packages: list[PackageRead]
    #: (metadata type, names) per ``readMetadata`` call, Profile excluded
    metadata: list[tuple[str, list[str]]]
    #: Profiles whose whole metadata is read (login IP ranges), by the name asked for
    profiles: list[str]
    org: bool
    scratch: Scratch

    @property
    def composites(self) -> list[list[Query]]:
        """The queries in ``composite`` batches of at most QUERIES_PER_COMPOSITE."""
        return [self.queries[s:s + QUERIES_PER_COMPOSITE]
                for s in range(0, len(self.queries), QUERIES_PER_COMPOSITE)]

    @property
    def profile_chunks(self) -> list[list[str]]:
        return chunks(self.profiles, METADATA_PER_CALL)


def plan(reads: Iterable[Read]) -> ReadPlan:
    """The calls that answer ``reads``, in a fixed order (so the wire traffic is the same for
    the same reads), and a fresh inventory their handlers fill."""
    wanted = set(reads)
    inv = Inventory()
    scratch = Scratch()
    md_profiles = sorted({r.full_name for r in wanted
                          if isinstance(r, MetadataRead) and r.type == "Profile"})
    queries: list[Query] = []
    _plan_queries(wanted, inv, queries, md_profiles, scratch)
    by_type: dict[str, set[str]] = {}
    for r in wanted:
        if isinstance(r, MetadataRead) and r.type != "Profile":
            by_type.setdefault(r.type, set()).add(r.full_name)
    metadata = [(type_, chunk) for type_, names in sorted(by_type.items())
                for chunk in chunks(sorted(names), METADATA_PER_CALL)]
    return ReadPlan(inv, queries, [r for r in wanted if isinstance(r, PackageRead)], metadata,
                    md_profiles, OrgRead() in wanted, scratch)


def chunks(values: list[str], size: int) -> list[list[str]]:
    return [values[s:s + size] for s in range(0, len(values), size)]


def _plan_queries(wanted: set[Read], inv: Inventory, queries: list[Query],
                  md_profiles: list[str], scratch: Scratch) -> None:
    """The SOQL of a read, with long IN lists split under the statement limit (U8).
    Permission sets and licences are looked up by API name or label (U1)."""
    users = sorted({r.username for r in wanted if isinstance(r, UserRead)})
    user_soql = (
        "SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
        "Profile.PermissionsApiEnabled, Profile.UserLicenseId, "
        "(SELECT Id, PermissionSetId, PermissionSet.Name, PermissionSet.IsOwnedByProfile, "
        "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
        "(SELECT Id, PermissionSetLicenseId, PermissionSetLicense.DeveloperName FROM "
        "PermissionSetLicenseAssignments) "
        "FROM User WHERE Username IN ({})")
    for chunk in _split_in(users, user_soql):
        queries.append(_lookup(inv, chunk, UserRead, "Username", _user,
                               user_soql.format(_in(chunk)),
                               fold=str.lower))  # usernames are case-insensitive
    licenses = sorted({r.developer_name for r in wanted if isinstance(r, LicenseRead)})
    license_rows: list[dict[str, Any]] = []
    license_soql = ("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses FROM "
                    "PermissionSetLicense WHERE DeveloperName IN ({0}) OR MasterLabel IN ({0})")
    for chunk in _split_in(licenses, license_soql, times=2):
        queries.append(_by_name_or_label(
            inv, chunk, LicenseRead, "DeveloperName", "MasterLabel",
            lambda r: LicenseInfo(r["Id"], r["DeveloperName"], r.get("MasterLabel") or "",
                                  r.get("TotalLicenses"), r.get("UsedLicenses")),
            license_soql.format(_in(chunk)), "permission set license", license_rows))
    sets = sorted({r.name for r in wanted if isinstance(r, PermissionSetRead)})
    set_soql = ("SELECT Id, Name, Label, LicenseId, PermissionsApiEnabled, " + GRANTS
                + " FROM PermissionSet WHERE IsOwnedByProfile = false AND (Name IN ({0}) OR "
                "Label IN ({0}))")

    def permission_set(r: dict[str, Any]) -> PermissionSetInfo:
        # LicenseId may name a PermissionSetLicense or a UserLicense (U6): resolve it
        # against the licence rows this fetch read, never through License.DeveloperName
        lic = str(r.get("LicenseId") or "")
        name = next((str(x["DeveloperName"]) for x in license_rows
                     if lic and str(x["Id"])[:15] == lic[:15]), None)
        return PermissionSetInfo(r["Id"], r["Name"], r.get("Label") or r["Name"], name,
                                 bool(r.get("PermissionsApiEnabled")), lic or None,
                                 granted(r))

    for chunk in _split_in(sets, set_soql, times=2):
        queries.append(_by_name_or_label(
            inv, chunk, PermissionSetRead, "Name", "Label", permission_set,
            set_soql.format(_in(chunk)), "permission set"))
    by_name = {r.name for r in wanted if isinstance(r, ProfileRead)}
    profiles = sorted(by_name | set(md_profiles))
    profile_soql = ("SELECT Id, Name, PermissionsApiEnabled, UserLicenseId, "
                    "UserLicense.Name FROM Profile WHERE Name IN ({})")
    for chunk in _split_in(profiles, profile_soql):
        def profiles_done(records: list[dict[str, Any]], names: list[str] = chunk) -> None:
            found = {r["Name"]: r for r in records}
            for name in names:
                r = found.get(name)
                if r is not None:
                    scratch.profile_rows[name] = r
                if name in by_name:
                    inv.results[ProfileRead(name)] = None if r is None else _profile_info(r)

        queries.append((profile_soql.format(_in(chunk)), profiles_done))
    if OrgRead() in wanted:
        def org_done(records: list[dict[str, Any]]) -> None:
            scratch.organization = records[0] if records else {}

        queries.append((ORGANIZATION_SOQL, org_done))


def profiles_missing(wanted: Iterable[Read], inv: Inventory) -> list[str]:
    """Profiles asked for by a name no Profile has as Name: perhaps their metadata API name."""
    return sorted(r.name for r in wanted if isinstance(r, ProfileRead)
                  and inv.results.get(r) is None)


def packages_by_namespace(records: list[dict[str, Any]]) -> dict[str, PackageInfo]:
    """InstalledSubscriberPackage rows by lower-case namespace prefix."""
    by_ns: dict[str, PackageInfo] = {}
    for r in records:
        pkg = r.get("SubscriberPackage") or {}
        ver = r.get("SubscriberPackageVersion") or {}
        ns = pkg.get("NamespacePrefix") or ""
        version = ".".join(str(ver.get(k, 0)) for k in ("MajorVersion", "MinorVersion",
                                                         "PatchVersion", "BuildNumber"))
        by_ns[ns.lower()] = PackageInfo(ns, pkg.get("Name") or ns,
                                        r.get("SubscriberPackageVersionId") or "", version)
    return by_ns


def org_info(scratch: Scratch, instance_url: str) -> OrgInfo:
    """The ``OrgRead`` answer from the organization row and the My Domain (the instance URL
    when signing in told it)."""
    row = scratch.organization or {}
    my_domain = scratch.my_domain or instance_url
    return OrgInfo(row.get("Id", ""), row.get("Name", ""), bool(row.get("IsSandbox")),
                   row.get("InstanceName") or "", my_domain.rstrip("/"))


def _lookup(inv: Inventory, names: list[str], read: Callable[[str], Read], key: str,
            build: Callable[[dict[str, Any]], Any], soql: str,
            fold: Callable[[str], str] = str) -> Query:
    """A query for records named ``names`` by ``key``, and what to do with its answer: each
    name's read gets ``build(record)``, or None when the org has no such record."""
    def done(records: list[dict[str, Any]]) -> None:
        found = {fold(str(r[key])): r for r in records}
        for name in names:
            record = found.get(fold(name))
            inv.results[read(name)] = None if record is None else build(record)

    return soql, done


def _by_name_or_label(inv: Inventory, names: list[str], read: Callable[[str], Read],
                      key: str, label: str, build: Callable[[dict[str, Any]], Any], soql: str,
                      what: str, keep: list[dict[str, Any]] | None = None) -> Query:
    """A query for records named ``names`` by API name (``key``) or by label (platform-truth
    U1): an API name wins; a label that several records carry is ``Ambiguous``."""
    def done(records: list[dict[str, Any]]) -> None:
        if keep is not None:
            keep.extend(records)
        for name in names:
            exact = [r for r in records if r.get(key) == name]
            labelled = [r for r in records if r.get(label) == name]
            if exact:
                inv.results[read(name)] = build(exact[0])
            elif len(labelled) == 1:
                inv.results[read(name)] = build(labelled[0])
            elif labelled:
                inv.results[read(name)] = Ambiguous(
                    what, name, tuple(sorted(str(r[key]) for r in labelled)))
            else:
                inv.results[read(name)] = None

    return soql, done


def _split_in(values: list[str], soql: str, *, times: int = 1) -> list[list[str]]:
    """``values`` in groups whose quoted IN list (used ``times`` in ``soql``) stays under
    IN_LIST_CHARS."""
    budget = max(1, (IN_LIST_CHARS - len(soql)) // times)
    out: list[list[str]] = []
    size = 0
    for value in values:
        cost = len(_in([value])) + 2
        if out and size + cost <= budget:
            out[-1].append(value)
            size += cost
        else:
            out.append([value])
            size = cost
    return out


def _in(values: Iterable[str]) -> str:
    return soql_text.in_list(values)


def _user(r: dict[str, Any]) -> UserInfo:
    profile = r.get("Profile") or {}
    sets = []
    for a in ((r.get("PermissionSetAssignments") or {}).get("records") or []):
        ps = a.get("PermissionSet") or {}
        if ps.get("IsOwnedByProfile"):
            continue
        sets.append(AssignedSet(a["Id"], a["PermissionSetId"], ps.get("Name") or "",
                                bool(ps.get("PermissionsApiEnabled"))))
    licenses = tuple(sorted(
        (la.get("PermissionSetLicense") or {}).get("DeveloperName") or ""
        for la in ((r.get("PermissionSetLicenseAssignments") or {}).get("records") or [])))
    return UserInfo(r["Id"], r["Username"], bool(r.get("IsActive")), r.get("ProfileId") or "",
                    profile.get("Name") or "", bool(profile.get("PermissionsApiEnabled")),
                    tuple(sorted(sets, key=lambda s: s.name)), licenses,
                    str(profile.get("UserLicenseId") or ""))


def _profile_info(r: dict[str, Any]) -> ProfileInfo:
    return ProfileInfo(r["Id"], r["Name"], bool(r.get("PermissionsApiEnabled")),
                       str(r.get("UserLicenseId") or ""),
                       str((r.get("UserLicense") or {}).get("Name") or ""))


#: The sub-query of a PermissionSet read that gives the apps it grants (A4).
GRANTS = "(SELECT Id, SetupEntityId, SetupEntityType FROM SetupEntityAccessItems)"


def granted(row: dict[str, Any]) -> tuple[str, ...]:
    """The SetupEntityIds a PermissionSet row's ``SetupEntityAccessItems`` name."""
    items = row.get("SetupEntityAccessItems")
    records = items.get("records") if isinstance(items, dict) else None
    return tuple(str(r.get("SetupEntityId")) for r in records or [] if r.get("SetupEntityId"))
