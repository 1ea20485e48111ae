"""The sObjects the sandbox org serves, with their fields and relationships.

One table drives SOQL (which fields exist, which relationship path leads where, which fields are
filterable), REST CRUD (what can be created, updated, deleted) and access checks (setup objects
need an admin session). Field lists follow the object reference (see
shared/reference/salesforce-api.md, section 4); `Permissions*` flags are limited to the ones the
tool reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldType = Literal["id", "string", "boolean", "int", "datetime", "date", "reference"]

#: The `Permissions<Name>` flags modelled on Profile and PermissionSet.
PERMISSION_FLAGS: tuple[str, ...] = (
    "ApiEnabled",
    "ApiUserOnly",
    "ModifyAllData",
    "ViewSetup",
    "ManageUsers",
    "ViewAllData",
    "CustomizeApplication",
    "ModifyMetadata",
    # what ``remediate doctor`` reads of the admin (object reference, PermissionSet fields)
    "ManageProfilesPermissionsets",
    "AssignPermissionSets",
    "InstallPackaging",
    # ASSUMPTION (docs/sandbox.md): the field behind "Approve Uninstalled Connected Apps" (A8).
    "ApproveUninstalledConnectedApps",
)


@dataclass(frozen=True)
class Reference:
    """A lookup field: `field` holds the id; `relationship` is the name used in SOQL paths."""

    field: str
    relationship: str
    target: str  # sObject name


@dataclass(frozen=True)
class ChildRelationship:
    name: str
    child: str
    field: str


@dataclass(frozen=True)
class SObject:
    name: str
    fields: dict[str, FieldType]
    references: tuple[Reference, ...] = ()
    children: tuple[ChildRelationship, ...] = ()
    api: Literal["rest", "tooling", "both"] = "rest"
    setup: bool = True  # reading needs "View Setup and Configuration"
    createable: bool = False
    updateable: bool = False
    deletable: bool = False
    #: None means every field is filterable; otherwise only these.
    filterable: frozenset[str] | None = None
    required_on_create: tuple[str, ...] = ()
    updateable_fields: frozenset[str] = field(default_factory=frozenset)
    #: A data object (Account, ...): a user sees it only with object permissions (objectaccess.py)
    data: bool = False

    def reference(self, relationship: str) -> Reference | None:
        for ref in self.references:
            if ref.relationship.lower() == relationship.lower():
                return ref
        return None

    def field_name(self, name: str) -> str | None:
        """Canonical spelling of a field (SOQL is case-insensitive)."""
        lowered = name.lower()
        for f in self.fields:
            if f.lower() == lowered:
                return f
        return None


def _perm_fields() -> dict[str, FieldType]:
    return {f"Permissions{p}": "boolean" for p in PERMISSION_FLAGS}


_AUDIT: dict[str, FieldType] = {
    "CreatedDate": "datetime",
    "LastModifiedDate": "datetime",
    "SystemModstamp": "datetime",
}

OBJECTS: dict[str, SObject] = {}


def _add(obj: SObject) -> None:
    OBJECTS[obj.name] = obj


_add(SObject(
    "Organization",
    {"Id": "id", "Name": "string", "InstanceName": "string", "IsSandbox": "boolean",
     "OrganizationType": "string", "NamespacePrefix": "string", "LanguageLocaleKey": "string",
     "TrialExpirationDate": "datetime", **_AUDIT},
    setup=False,
))
_add(SObject(
    "UserLicense",
    {"Id": "id", "Name": "string", "MasterLabel": "string", "LicenseDefinitionKey": "string",
     "Status": "string", **_AUDIT},
    setup=False,
))
_add(SObject(
    "Profile",
    {"Id": "id", "Name": "string", "Description": "string", "UserLicenseId": "reference",
     "UserType": "string", "IsSsoEnabled": "boolean", **_perm_fields(), **_AUDIT},
    references=(Reference("UserLicenseId", "UserLicense", "UserLicense"),),
    children=(ChildRelationship("LoginIpRanges", "LoginIpRange", "ProfileId"),
              ChildRelationship("Users", "User", "ProfileId")),
    setup=False,
))
_add(SObject(
    "User",
    {"Id": "id", "Username": "string", "Email": "string", "Name": "string", "FirstName": "string",
     "LastName": "string", "Alias": "string", "IsActive": "boolean", "ProfileId": "reference",
     "UserType": "string", "LastLoginDate": "datetime", "TimeZoneSidKey": "string",
     "LocaleSidKey": "string", "LanguageLocaleKey": "string", "EmailEncodingKey": "string",
     **_AUDIT},
    references=(Reference("ProfileId", "Profile", "Profile"),),
    children=(ChildRelationship("PermissionSetAssignments", "PermissionSetAssignment", "AssigneeId"),
              ChildRelationship("PermissionSetLicenseAssignments", "PermissionSetLicenseAssign",
                                "AssigneeId")),
    setup=False,
    createable=True,
    updateable=True,
    required_on_create=("Username", "LastName", "Email", "ProfileId"),
    updateable_fields=frozenset({"IsActive", "ProfileId", "Email", "FirstName", "LastName",
                                 "Alias", "TimeZoneSidKey", "LocaleSidKey", "LanguageLocaleKey",
                                 "EmailEncodingKey"}),
))
_add(SObject(
    "PermissionSetLicense",
    {"Id": "id", "DeveloperName": "string", "MasterLabel": "string",
     "PermissionSetLicenseKey": "string", "Status": "string", "TotalLicenses": "int",
     "UsedLicenses": "int", "ExpirationDate": "date", "IsAvailableForIntegrations": "boolean",
     "Language": "string", **_AUDIT},
    children=(ChildRelationship("PermissionSetLicenseAssignments", "PermissionSetLicenseAssign",
                                "PermissionSetLicenseId"),),
))
_add(SObject(
    "PermissionSet",
    {"Id": "id", "Name": "string", "Label": "string", "Description": "string",
     "IsCustom": "boolean", "IsOwnedByProfile": "boolean", "ProfileId": "reference",
     "PermissionSetGroupId": "reference", "LicenseId": "reference", "NamespacePrefix": "string",
     "HasActivationRequired": "boolean", "Type": "string", **_perm_fields(), **_AUDIT},
    references=(Reference("ProfileId", "Profile", "Profile"),
                Reference("LicenseId", "License", "PermissionSetLicense")),
    children=(ChildRelationship("Assignments", "PermissionSetAssignment", "PermissionSetId"),
              ChildRelationship("SetupEntityAccessItems", "SetupEntityAccess", "ParentId")),
    createable=True,
    updateable=True,
    deletable=True,
    required_on_create=("Name", "Label"),
    updateable_fields=frozenset({"Label", "Description", "LicenseId", "HasActivationRequired",
                                 *(f"Permissions{p}" for p in PERMISSION_FLAGS)}),
))
_add(SObject(
    "PermissionSetAssignment",
    {"Id": "id", "AssigneeId": "reference", "PermissionSetId": "reference",
     "PermissionSetGroupId": "reference", "ExpirationDate": "datetime", "IsActive": "boolean",
     "IsRevoked": "boolean", **_AUDIT},
    references=(Reference("AssigneeId", "Assignee", "User"),
                Reference("PermissionSetId", "PermissionSet", "PermissionSet")),
    createable=True,
    updateable=True,
    deletable=True,
    required_on_create=("AssigneeId",),
    updateable_fields=frozenset({"ExpirationDate"}),
))
_add(SObject(
    "PermissionSetLicenseAssign",
    {"Id": "id", "AssigneeId": "reference", "PermissionSetLicenseId": "reference",
     "IsRevoked": "boolean", **_AUDIT},
    references=(Reference("AssigneeId", "Assignee", "User"),
                Reference("PermissionSetLicenseId", "PermissionSetLicense",
                          "PermissionSetLicense")),
    createable=True,
    deletable=True,
    required_on_create=("AssigneeId", "PermissionSetLicenseId"),
))
_add(SObject(
    "ConnectedApplication",
    {"Id": "id", "Name": "string", "OptionsAllowAdminApprovedUsersOnly": "boolean",
     "OptionsHasSessionLevelPolicy": "boolean", "OptionsIsInternal": "boolean",
     "OptionsRefreshTokenValidityMetric": "boolean", "StartUrl": "string",
     "MobileStartUrl": "string", "RefreshTokenValidityPeriod": "int", **_AUDIT},
))
_add(SObject(
    "SetupEntityAccess",
    {"Id": "id", "ParentId": "reference", "SetupEntityId": "id", "SetupEntityType": "string",
     **_AUDIT},
    references=(Reference("ParentId", "Parent", "PermissionSet"),),
    createable=True,
    deletable=True,
    required_on_create=("ParentId", "SetupEntityId"),
))
_add(SObject(
    "LoginHistory",
    {"Id": "id", "UserId": "reference", "LoginTime": "datetime", "LoginType": "string",
     "LoginSubType": "string", "Status": "string", "SourceIp": "string",
     "ForwardedForIp": "string", "LoginUrl": "string", "Application": "string",
     "ApiType": "string", "ApiVersion": "string", "Browser": "string", "Platform": "string",
     "ClientVersion": "string", "CountryIso": "string", "CipherSuite": "string",
     "TlsProtocol": "string", "LoginGeoId": "reference", "NetworkId": "reference",
     "AuthenticationServiceId": "reference", "AuthMethodReference": "string",
     "OptionsIsGet": "boolean", "OptionsIsPost": "boolean"},
    # Reference section 4.7: only these fields may appear in WHERE.
    filterable=frozenset({"AuthenticationServiceId", "CipherSuite", "CountryIso", "Id",
                          "LoginTime", "LoginType", "LoginUrl", "NetworkId", "OptionsIsGet",
                          "OptionsIsPost", "TlsProtocol", "UserId"}),
))
_add(SObject(
    "LoginIpRange",
    {"Id": "id", "ProfileId": "reference", "StartAddress": "string", "EndAddress": "string",
     "Description": "string", **_AUDIT},
    references=(Reference("ProfileId", "Profile", "Profile"),),
))
_add(SObject(
    # The current user's effective permissions, one row, readable by every user (object
    # reference, UserPermissionAccess); the rows are computed per session (rest.py).
    "UserPermissionAccess",
    {"Id": "id", **_perm_fields()},
    setup=False,
))
# C15: object and field permissions of permission sets (object reference, ObjectPermissions and
# FieldPermissions, API 24.0+: create, query, update, delete; only users with View Setup and
# Configuration read them) and record types (object reference, RecordType).
_OBJECT_FLAGS = ("Read", "Create", "Edit", "Delete", "ViewAllRecords", "ModifyAllRecords")
_add(SObject(
    "ObjectPermissions",
    {"Id": "id", "ParentId": "reference", "SobjectType": "string",
     **{f"Permissions{f}": "boolean" for f in _OBJECT_FLAGS}, **_AUDIT},
    references=(Reference("ParentId", "Parent", "PermissionSet"),),
    createable=True,
    updateable=True,
    deletable=True,
    required_on_create=("ParentId", "SobjectType"),
    updateable_fields=frozenset(f"Permissions{f}" for f in _OBJECT_FLAGS),
))
_add(SObject(
    "FieldPermissions",
    {"Id": "id", "ParentId": "reference", "SobjectType": "string", "Field": "string",
     "PermissionsRead": "boolean", "PermissionsEdit": "boolean", **_AUDIT},
    references=(Reference("ParentId", "Parent", "PermissionSet"),),
    createable=True,
    updateable=True,
    deletable=True,
    required_on_create=("ParentId", "SobjectType", "Field"),
    updateable_fields=frozenset({"PermissionsRead", "PermissionsEdit"}),
))
_add(SObject(
    "RecordType",
    {"Id": "id", "Name": "string", "DeveloperName": "string", "SobjectType": "string",
     "IsActive": "boolean", "NamespacePrefix": "string", **_AUDIT},
    setup=False,
))
# OauthToken (object reference, API 32.0+: query only; users with Customize Application see
# every user's tokens, others their own): the data behind Connected Apps OAuth Usage.
_add(SObject(
    "OauthToken",
    {"Id": "id", "AppName": "string", "UserId": "reference", "LastUsedDate": "datetime",
     "UseCount": "int", "AppMenuItemId": "reference", "CreatedDate": "datetime"},
    references=(Reference("UserId", "User", "User"),),
))
# Data objects an integration reads and writes; their fields are the ones scenarios use.
for _name, _fields in (
        ("Account", ("Name", "Industry", "Website", "AnnualRevenue", "RecordTypeId")),
        ("Contact", ("FirstName", "LastName", "Email", "AccountId")),
        ("Opportunity", ("Name", "StageName", "Amount", "CloseDate", "AccountId")),
        ("Lead", ("FirstName", "LastName", "Company", "Email"))):
    _add(SObject(_name, {"Id": "id", **{f: "string" for f in _fields}, **_AUDIT}, setup=False,
                 data=True))

# Tooling API objects
_add(SObject(
    "SubscriberPackage",
    {"Id": "id", "Name": "string", "NamespacePrefix": "string", "Description": "string"},
    api="tooling",
))
_add(SObject(
    "SubscriberPackageVersion",
    {"Id": "id", "Name": "string", "SubscriberPackageId": "reference", "MajorVersion": "int",
     "MinorVersion": "int", "PatchVersion": "int", "BuildNumber": "int"},
    references=(Reference("SubscriberPackageId", "SubscriberPackage", "SubscriberPackage"),),
    api="tooling",
))
_add(SObject(
    "InstalledSubscriberPackage",
    {"Id": "id", "SubscriberPackageId": "reference", "SubscriberPackageVersionId": "reference",
     "MinPackageVersionId": "reference"},
    references=(Reference("SubscriberPackageId", "SubscriberPackage", "SubscriberPackage"),
                Reference("SubscriberPackageVersionId", "SubscriberPackageVersion",
                          "SubscriberPackageVersion")),
    api="tooling",
))
_add(SObject(
    "OrgDomainLog",
    {"Id": "id", "MyDomainName": "string", "DomainPartition": "string", "ProdSuffixType": "string",
     "CreatedDate": "datetime"},
    api="tooling",
))
_add(SObject(
    "PackageInstallRequest",
    {"Id": "id", "SubscriberPackageVersionKey": "string", "Status": "string",
     "NameConflictResolution": "string", "SecurityType": "string", "Password": "string",
     "Errors": "string", **_AUDIT},  # Errors: a JSON object {errors: [{message}]}
    api="tooling",
    createable=True,
    required_on_create=("SubscriberPackageVersionKey",),
))


def lookup(name: str) -> SObject | None:
    """The sObject with this name, case-insensitively."""
    lowered = name.lower()
    for obj_name, obj in OBJECTS.items():
        if obj_name.lower() == lowered:
            return obj
    return None
