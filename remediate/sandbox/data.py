"""The org's data rules: what a row written through the REST data API (sObject rows,
collections, composite) must satisfy, and what writing it does to the other tables.

This is the data backend (docs/adr/0031): ``rest.py`` parses a request, calls ``insert``,
``update``, ``delete`` or ``advance_installs`` here with canonical values, and turns the
``Failure`` it gets back into the REST body. Nothing outside the state layer changes a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediate.sandbox import access
from remediate.sandbox.ids import is_valid_id, same_id
from remediate.sandbox.scenario import install_package_apps
from remediate.sandbox.schema import PERMISSION_FLAGS, SObject
from remediate.sandbox.state import Org, Row
from remediate.sandbox.wire import Response, rest_error

NOT_FOUND_MESSAGE = "The requested resource does not exist"
_AUDIT = frozenset({"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"})
#: Fields nobody sets on insert, beyond Id and the audit fields.
_READ_ONLY_ON_CREATE: dict[str, frozenset[str]] = {
    "PermissionSet": frozenset({"IsOwnedByProfile", "ProfileId", "IsCustom", "Type",
                                "NamespacePrefix", "PermissionSetGroupId"}),
    "PermissionSetAssignment": frozenset({"IsActive", "IsRevoked"}),
    "PermissionSetLicenseAssign": frozenset({"IsRevoked"}),
    "User": frozenset({"Name", "UserType", "LastLoginDate"}),
    "PackageInstallRequest": frozenset({"Status"}),
}
#: Values a new row gets when the body does not set them.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "PermissionSet": {"Description": None, "IsCustom": True, "IsOwnedByProfile": False,
                      "ProfileId": None, "PermissionSetGroupId": None, "LicenseId": None,
                      "NamespacePrefix": None, "HasActivationRequired": False,
                      "Type": "Regular", **{f"Permissions{p}": False for p in PERMISSION_FLAGS}},
    "PermissionSetAssignment": {"PermissionSetId": None, "PermissionSetGroupId": None,
                                "ExpirationDate": None, "IsActive": True, "IsRevoked": False},
    "PermissionSetLicenseAssign": {"IsRevoked": False},
    "User": {"IsActive": True, "UserType": "Standard", "LastLoginDate": None,
             "FirstName": None, "Alias": None, "TimeZoneSidKey": "GMT",
             "LocaleSidKey": "en_US", "LanguageLocaleKey": "en_US",
             "EmailEncodingKey": "UTF-8"},
    "PackageInstallRequest": {"NameConflictResolution": "Block", "SecurityType": "None"},
}
#: UI labels of permission flags, for the licence error message.
_PERMISSION_LABELS = {
    "ApiEnabled": "API Enabled", "ApiUserOnly": "API Only User",
    "ModifyAllData": "Modify All Data", "ViewSetup": "View Setup and Configuration",
    "ManageUsers": "Manage Users", "ViewAllData": "View All Data",
    "CustomizeApplication": "Customize Application", "ModifyMetadata": "Modify Metadata",
}
_SETUP_ENTITY_TYPES = frozenset({
    "ApexClass", "ApexPage", "ConnectedApplication", "CustomEntityDefinition",
    "CustomPermission", "ExternalClientApplication", "ExternalCredentialParameter",
    "FlowDefinition", "OrgWideEmailAddress", "ServiceProvider", "TabSet", "BotDefinition",
    "EmailRoutingAddress", "MessagingChannel", "StandardInvocableActionType",
})


@dataclass(frozen=True)
class Failure:
    """One error: the REST body item for single calls, the ``errors`` item in collections."""

    status: int
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def response(self) -> Response:
        if self.code == "NOT_FOUND":
            # Recorded traffic (tests/conformance): errorCode first, no fields.
            return Response.of_json(self.status, [{"errorCode": self.code,
                                                   "message": self.message}])
        if self.code == "INVALID_FIELD" and self.message.startswith("No such column"):
            # Recorded: an unknown field in a create or update body names no fields.
            return rest_error(self.status, self.code, self.message)
        return rest_error(self.status, self.code, self.message, list(self.fields))

    def item(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


def not_found() -> Failure:
    return Failure(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def _cross_reference(field_name: str) -> Failure:
    return Failure(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                   (field_name,))


# ---- DML: the org's rules for a row written through the data API ---------------------


def read_only_on_create(sobject: str) -> frozenset[str]:
    """Fields no insert may set on ``sobject`` (describe's ``createable`` reads this)."""
    return _AUDIT | _READ_ONLY_ON_CREATE.get(sobject, frozenset())


def may_write(org: Org, uid: str) -> Failure | None:
    """Whether the session's user may write rows through the data API."""
    if access.has_permission(org, uid, "ManageUsers") or \
            access.has_permission(org, uid, "ModifyAllData"):
        return None
    return Failure(403, "INSUFFICIENT_ACCESS", "insufficient access rights on object id")


def _normalise(obj: SObject, values: dict[str, Any]) -> dict[str, Any] | Failure:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = obj.field_name(key)
        if name is None:
            return Failure(400, "INVALID_FIELD",
                           f"No such column '{key}' on sobject of type {obj.name}", (key,))
        out[name] = value
    return out


def _read_only(fields: list[str]) -> Failure:
    return Failure(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                   f"Unable to create/update fields: {', '.join(fields)}. Please check the "
                   "security settings of this field and verify that it is read write for your "
                   "profile or permission set.", tuple(fields))


def insert(org: Org, user_id: str, obj: SObject, values: dict[str, Any]) -> str | Failure:
    if not obj.createable:
        return Failure(400, "INVALID_TYPE_FOR_OPERATION", "entity type cannot be inserted")
    denied = may_write(org, user_id)
    if denied is not None:
        return denied
    row = _normalise(obj, values)
    if isinstance(row, Failure):
        return row
    if "Id" in row:
        return Failure(400, "INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))
    locked = sorted(f for f in row
                    if f in _AUDIT or f in _READ_ONLY_ON_CREATE.get(obj.name, frozenset()))
    if locked:
        return _read_only(locked)
    missing = [f for f in obj.required_on_create if row.get(f) in (None, "")]
    if missing:
        return Failure(400, "REQUIRED_FIELD_MISSING",
                       f"Required fields are missing: [{', '.join(missing)}]", tuple(missing))
    failure = _validate_insert(org, obj.name, row)
    if failure is not None:
        return failure
    stored = org.insert(obj.name, {**_DEFAULTS.get(obj.name, {}), **row})
    _after_insert(org, obj.name, stored)
    return str(stored["Id"])


def update(org: Org, user_id: str, obj: SObject, record_id: str, values: dict[str, Any]) -> Failure | None:
    if not obj.updateable:
        return Failure(400, "INVALID_TYPE_FOR_OPERATION", "entity type cannot be updated")
    denied = may_write(org, user_id)
    if denied is not None:
        return denied
    changes = _normalise(obj, values)
    if isinstance(changes, Failure):
        return changes
    current = org.get(obj.name, record_id)
    if current is None:
        return not_found()
    if "Id" in changes and same_id(str(changes["Id"]), current["Id"]):
        del changes["Id"]
    locked = sorted(f for f in changes if f not in obj.updateable_fields)
    if locked:
        return _read_only(locked)
    failure = _validate_update(org, obj.name, current, changes)
    if failure is not None:
        return failure
    before = dict(current)
    org.update(obj.name, current["Id"], changes)
    _after_update(org, obj.name, before, current)
    return None


def delete(org: Org, user_id: str, obj: SObject, record_id: str) -> Failure | None:
    if not obj.deletable:
        return Failure(400, "INVALID_TYPE_FOR_OPERATION", "entity type cannot be deleted")
    denied = may_write(org, user_id)
    if denied is not None:
        return denied
    current = org.get(obj.name, record_id)
    if current is None:
        return not_found()
    failure = _validate_delete(org, obj.name, current)
    if failure is not None:
        return failure
    org.delete(obj.name, current["Id"])
    _after_delete(org, obj.name, current)
    return None


# ---- business rules ------------------------------------------------------------------------


def _validate_insert(org: Org, sobject: str, row: Row) -> Failure | None:
    """The org's rules for a new row (fields already canonical, required ones present)."""
    if sobject in ("ObjectPermissions", "FieldPermissions"):
        return _permission_row(org, sobject, row, insert=True)
    if sobject == "PermissionSetAssignment":
        return _check_assignment(org, row)
    if sobject == "PermissionSetLicenseAssign":
        user = org.get("User", row["AssigneeId"])
        if user is None:
            return _cross_reference("AssigneeId")
        psl = org.get("PermissionSetLicense", row["PermissionSetLicenseId"])
        if psl is None:
            return _cross_reference("PermissionSetLicenseId")
        if access.holds_license(org, user["Id"], psl["Id"]):
            return Failure(400, "DUPLICATE_VALUE",
                           f"Duplicate PermissionSetLicenseAssign. Assignee: {user['Id']}; "
                           f"Permission Set License: {psl['Id']}")
        if int(psl.get("UsedLicenses") or 0) >= int(psl.get("TotalLicenses") or 0):
            return Failure(400, "LICENSE_LIMIT_EXCEEDED", "License Limit Exceeded")
        return None
    if sobject == "SetupEntityAccess":
        return _check_setup_entity_access(org, row)
    if sobject == "PermissionSet":
        if row.get("LicenseId") and not _license_exists(org, str(row["LicenseId"])):
            return _cross_reference("LicenseId")
        for other in org.tables["PermissionSet"].values():
            if not other.get("IsOwnedByProfile") and other.get("Name") == row["Name"]:
                return Failure(400, "DUPLICATE_VALUE",
                               f"duplicate value found: Name duplicates value on record with "
                               f"id: {other['Id']}", ("Name",))
        return None
    if sobject == "User":
        if org.get("Profile", str(row["ProfileId"])) is None:
            return _cross_reference("ProfileId")
        if org.user_by_username(str(row["Username"])) is not None:
            return Failure(400, "DUPLICATE_USERNAME",
                           "Duplicate Username.<br>Another user has already selected this "
                           "username.<br>Please select another.", ("Username",))
        return None
    if sobject == "PackageInstallRequest":
        key = str(row["SubscriberPackageVersionKey"])
        if org.get("SubscriberPackageVersion", key) is None:
            return _cross_reference("SubscriberPackageVersionKey")
        return None
    return None


#: Objects "related to a feature in the Salesforce Setup area" among those the sandbox serves:
#: an sObject Collections create may not mix one of them with another type (REST API Developer
#: Guide, "Create Records Using sObject Collections").
SETUP_OBJECTS = frozenset({"User", "PermissionSet", "PermissionSetAssignment",
                           "PermissionSetLicenseAssign", "SetupEntityAccess", "ObjectPermissions",
                           "FieldPermissions", "Profile", "UserRole", "Group", "GroupMember"})
MIXED_SETUP_CODE = "MIXED_DML_OPERATION"  # the code is an assumption (docs/sandbox.md)


def mixed_setup_types(types: list[str]) -> Failure | None:
    """The refusal of one collections create of several types when one is a setup object."""
    distinct = sorted(set(types))
    if len(distinct) > 1 and any(t in SETUP_OBJECTS for t in distinct):
        return Failure(400, MIXED_SETUP_CODE,
                       "You can't create records for multiple object types in one call when "
                       "one of the types is related to a feature in the Salesforce Setup area: "
                       + ", ".join(distinct))
    return None


def _check_assignment(org: Org, row: Row) -> Failure | None:
    user = org.get("User", row["AssigneeId"])
    if user is None:
        return _cross_reference("AssigneeId")
    if row.get("PermissionSetGroupId"):
        return _cross_reference("PermissionSetGroupId")  # no permission set groups modelled
    if not row.get("PermissionSetId"):
        return Failure(400, "REQUIRED_FIELD_MISSING",
                       "Required fields are missing: [PermissionSetId]", ("PermissionSetId",))
    ps = org.get("PermissionSet", str(row["PermissionSetId"]))
    if ps is None:
        return _cross_reference("PermissionSetId")
    if ps.get("IsOwnedByProfile"):
        return _profile_owned_assignment()
    for existing in org.tables["PermissionSetAssignment"].values():
        if same_id(existing.get("AssigneeId"), user["Id"]) and \
                same_id(existing.get("PermissionSetId"), ps["Id"]):
            return Failure(400, "DUPLICATE_VALUE",
                           f"Duplicate PermissionSetAssignment. Assignee: {user['Id']}; "
                           f"Permission Set: {ps['Id']}")
    license_id = ps.get("LicenseId")
    if license_id and not _user_has_license(org, user, str(license_id)):
        flags = [p for p in PERMISSION_FLAGS if ps.get(f"Permissions{p}")]
        what = _PERMISSION_LABELS[flags[0]] if flags else str(ps.get("Label") or ps["Name"])
        return Failure(400, "FIELD_INTEGRITY_EXCEPTION",
                       f"The user license doesn't allow the permission: {what}",
                       ("PermissionSetId",))
    return None


def _profile_owned_assignment() -> Failure:
    return Failure(400, "FIELD_INTEGRITY_EXCEPTION",
                   "You can't assign or unassign a permission set that is owned by a profile. "
                   "Change the user's profile instead.", ("PermissionSetId",))


def _license_exists(org: Org, license_id: str) -> bool:
    return org.get("PermissionSetLicense", license_id) is not None or \
        org.get("UserLicense", license_id) is not None


def _user_has_license(org: Org, user: Row, license_id: str) -> bool:
    """A permission set's LicenseId is a permission set licence the user holds, or the user
    licence of the user's profile (reference 4.4)."""
    if org.get("PermissionSetLicense", license_id) is not None:
        if not org.licence_in_composite:
            # the other reading of an undocumented fact (docs/sandbox.md): a licence assigned
            # by an earlier subrequest of the same composite is not yet seen
            return any(same_id(a.get("AssigneeId"), user["Id"])
                       and same_id(a.get("PermissionSetLicenseId"), license_id)
                       and not org.inserted_in_composite(str(a["Id"]))
                       for a in org.find("PermissionSetLicenseAssign"))
        return access.holds_license(org, user["Id"], license_id)
    profile = org.get("Profile", user.get("ProfileId"))
    return profile is not None and same_id(profile.get("UserLicenseId"), license_id)


def _check_setup_entity_access(org: Org, row: Row) -> Failure | None:
    if org.get("PermissionSet", str(row["ParentId"])) is None:
        return _cross_reference("ParentId")
    entity_id = str(row["SetupEntityId"])
    derived = _setup_entity_type(org, entity_id)
    if derived is None:
        return _cross_reference("SetupEntityId")
    given = row.get("SetupEntityType")
    if given is not None and given not in _SETUP_ENTITY_TYPES:
        return Failure(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                       f"bad value for restricted picklist field: {given}", ("SetupEntityType",))
    if given is not None and given != derived:
        return Failure(400, "FIELD_INTEGRITY_EXCEPTION",
                       f"SetupEntityType {given} does not match the entity {entity_id}",
                       ("SetupEntityType",))
    row["SetupEntityType"] = derived
    for existing in org.tables["SetupEntityAccess"].values():
        if same_id(existing.get("ParentId"), str(row["ParentId"])) and \
                same_id(existing.get("SetupEntityId"), entity_id):
            return Failure(400, "DUPLICATE_VALUE",
                           f"duplicate value found: SetupEntityId duplicates value on record "
                           f"with id: {existing['Id']}", ("SetupEntityId",))
    return None


def _setup_entity_type(org: Org, entity_id: str) -> str | None:
    """The SetupEntityType of an id the org knows, from its key prefix."""
    if not is_valid_id(entity_id):
        return None
    if org.get("ConnectedApplication", entity_id) is not None:
        return "ConnectedApplication"
    for eca in org.metadata.get("ExternalClientApplication", {}).values():
        if same_id(eca.get("_id"), entity_id):
            return "ExternalClientApplication"
    return None


def _permission_row(org: Org, sobject: str, row: Row, *, insert: bool) -> Failure | None:
    """C15: ObjectPermissions / FieldPermissions rows (the rules live in objectaccess.py)."""
    from remediate.sandbox import objectaccess

    if insert and (other := objectaccess.duplicate(org, sobject, row)) is not None:
        return Failure(400, "DUPLICATE_VALUE",
                       f"duplicate value found: <unknown> duplicates value on record with id: "
                       f"{other}")
    problem = objectaccess.check_row(org, sobject, row)
    return None if problem is None else Failure(400, problem[0], problem[1], problem[2])


def _validate_update(org: Org, sobject: str, current: Row, changes: Row) -> Failure | None:
    if sobject in ("ObjectPermissions", "FieldPermissions"):
        return _permission_row(org, sobject, {**current, **changes}, insert=False)
    if sobject == "PermissionSet":
        if current.get("IsOwnedByProfile"):
            return _profile_owned_set()
        if changes.get("LicenseId") and not _license_exists(org, str(changes["LicenseId"])):
            return _cross_reference("LicenseId")
    if sobject == "PermissionSetAssignment":
        ps = org.get("PermissionSet", current.get("PermissionSetId"))
        if ps is not None and ps.get("IsOwnedByProfile"):
            return _profile_owned_assignment()
    if sobject == "User" and "ProfileId" in changes:
        target = org.get("Profile", changes["ProfileId"])
        if target is None:
            return _cross_reference("ProfileId")
        now = org.get("Profile", current.get("ProfileId"))
        if now is not None and not same_id(now.get("UserLicenseId"), target.get("UserLicenseId")):
            return Failure(400, "FIELD_INTEGRITY_EXCEPTION",
                           "You can only assign profiles that are compatible with the user's "
                           "license", ("ProfileId",))
    return None


def _profile_owned_set() -> Failure:
    return Failure(400, "INSUFFICIENT_ACCESS_OR_READONLY",
                   "You can't modify a permission set that is owned by a profile. Edit the "
                   "profile instead.")


def _validate_delete(org: Org, sobject: str, current: Row) -> Failure | None:
    if sobject == "PermissionSet":
        if current.get("IsOwnedByProfile"):
            return _profile_owned_set()
        if org.find("PermissionSetAssignment", PermissionSetId=current["Id"]):
            return Failure(400, "DELETE_FAILED",
                           "You can't delete a permission set that is assigned to users.")
    if sobject == "PermissionSetAssignment":
        ps = org.get("PermissionSet", current.get("PermissionSetId"))
        if ps is not None and ps.get("IsOwnedByProfile"):
            return _profile_owned_assignment()
    if sobject == "PermissionSetLicenseAssign":
        for ps in access.assigned_permission_sets(org, str(current["AssigneeId"])):
            if same_id(ps.get("LicenseId"), current["PermissionSetLicenseId"]):
                return Failure(400, "FIELD_INTEGRITY_EXCEPTION",
                               f"The user is assigned permission set {ps['Name']}, which needs "
                               "this permission set license.")
    return None


def _after_insert(org: Org, sobject: str, row: Row) -> None:
    if sobject == "PermissionSetLicenseAssign":
        psl = org.get("PermissionSetLicense", row["PermissionSetLicenseId"])
        if psl is not None:
            psl["UsedLicenses"] = int(psl.get("UsedLicenses") or 0) + 1
    elif sobject == "User":
        names = [row.get("FirstName"), row.get("LastName")]
        row["Name"] = " ".join(str(n) for n in names if n)
        _assign_profile_set(org, row)
    elif sobject == "PackageInstallRequest":
        version = org.get("SubscriberPackageVersion", row["SubscriberPackageVersionKey"])
        assert version is not None  # checked by _validate_insert
        row["_Password"], row["Password"] = row.get("Password"), None  # never read back
        row["Status"] = "IN_PROGRESS"
        row["Errors"] = None
        row["_PollsLeft"] = max(1, int(version.get("_InstallPolls") or 1))


def advance_installs(org: Org) -> None:
    """A read of the install requests: time passes for each one still IN_PROGRESS."""
    for row in org.tables["PackageInstallRequest"].values():
        if row.get("Status") != "IN_PROGRESS":
            continue
        row["_PollsLeft"] = int(row.get("_PollsLeft") or 1) - 1
        if row["_PollsLeft"] <= 0:
            _finish_install(org, row)


def _finish_install(org: Org, row: Row) -> None:
    version = org.get("SubscriberPackageVersion", row["SubscriberPackageVersionKey"])
    assert version is not None
    if version.get("_InstallKey") and row.get("_Password") != version["_InstallKey"]:
        row["Status"] = "ERROR"
        row["Errors"] = {"errors": [{"message": "The installation key is not valid."}]}
        return
    if version.get("_InstallError"):
        row["Status"] = "ERROR"
        row["Errors"] = {"errors": [{"message": str(version["_InstallError"])}]}
        return
    row["Status"] = "SUCCESS"
    installed = org.find_one("InstalledSubscriberPackage",
                             SubscriberPackageId=version["SubscriberPackageId"])
    if installed is None:
        org.insert("InstalledSubscriberPackage", {
            "SubscriberPackageId": version["SubscriberPackageId"],
            "SubscriberPackageVersionId": version["Id"], "MinPackageVersionId": None})
    else:
        installed["SubscriberPackageVersionId"] = version["Id"]
    install_package_apps(org, version["SubscriberPackageId"])


def _after_update(org: Org, sobject: str, before: Row, after: Row) -> None:
    if sobject == "User":
        names = [after.get("FirstName"), after.get("LastName")]
        after["Name"] = " ".join(str(n) for n in names if n)
        if not same_id(before.get("ProfileId"), after.get("ProfileId")):
            old = org.profile_permission_set(str(before.get("ProfileId")))
            if old is not None:
                for assignment in org.find("PermissionSetAssignment", AssigneeId=after["Id"],
                                           PermissionSetId=old["Id"]):
                    org.delete("PermissionSetAssignment", assignment["Id"])
            _assign_profile_set(org, after)


def _assign_profile_set(org: Org, user: Row) -> None:
    owned = org.profile_permission_set(str(user["ProfileId"]))
    if owned is not None:
        org.insert("PermissionSetAssignment", {
            **_DEFAULTS["PermissionSetAssignment"], "AssigneeId": user["Id"],
            "PermissionSetId": owned["Id"]})


def _after_delete(org: Org, sobject: str, row: Row) -> None:
    if sobject == "PermissionSetLicenseAssign":
        psl = org.get("PermissionSetLicense", row["PermissionSetLicenseId"])
        if psl is not None:
            psl["UsedLicenses"] = max(0, int(psl.get("UsedLicenses") or 0) - 1)
    elif sobject == "PermissionSet":
        for sea in org.find("SetupEntityAccess", ParentId=row["Id"]):
            org.delete("SetupEntityAccess", sea["Id"])
