"""Metadata API semantics of the sandbox org: what each supported type means over the Org.

``soap.py`` turns the SOAP envelope into plain values (components are nested dicts, booleans as
``bool``, other leaves as ``str``, repeated fields as lists) and calls the functions at the end
of this module; everything here is independent of XML.

Storage follows ``state.py``: most types are kept as-is in ``org.metadata[type][fullName]``.
Three are different:

* ``ConnectedApp`` is stored without ``profileName``/``permissionSetName``; those are the
  SetupEntityAccess rows of the app's ConnectedApplication row, derived on read and rewritten on
  write (only for the element the request carries; an empty element clears it).
* ``Profile`` and ``PermissionSet`` are views over the Profile / PermissionSet / LoginIpRange
  rows, so REST and Metadata always agree.

Keys starting with ``_`` (the ECA header's ``_id``) and secrets (``consumerSecret``) are never
returned. Where the real behaviour is unknown, the choice is in ``CHOICES`` below (one place, so
docs/sandbox.md can quote it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from remediate.sandbox import access
from remediate.sandbox.ids import same_id, to18
from remediate.sandbox.schema import PERMISSION_FLAGS
from remediate.sandbox.state import Org, Row, Snapshot

Component = dict[str, Any]
Mode = Literal["create", "update", "upsert"]

#: Components (or names) per CRUD call, reference 3.2.
MAX_COMPONENTS = 10
#: Queries per listMetadata call, reference 3.2.
MAX_LIST_QUERIES = 3

#: Behaviours the reference does not settle; each is the sandbox's choice [I].
CHOICES: dict[str, str] = {
    "too_many": "more than 10 components/names (3 list queries) -> fault sf:EXCEEDED_ID_LIMIT",
    "mixed_types": "components of several types in one call -> fault sf:INVALID_TYPE",
    "not_admin": "session user neither admin nor ModifyMetadata -> fault sf:INSUFFICIENT_ACCESS",
    "create_existing": "createMetadata of an existing name -> DUPLICATE_VALUE",
    "missing": "update/delete of a missing name -> INVALID_CROSS_REFERENCE_KEY "
               "'In field: fullName - no <Type> named <name> found'",
    "bad_reference": "unknown profile/permission set/ECA/licence name -> "
                     "INVALID_CROSS_REFERENCE_KEY 'In field: <field> - no <Type> named <x> found'",
    "required": "missing required field -> REQUIRED_FIELD_MISSING 'Required field is missing: <f>'",
    "profile_create": "creating or deleting a Profile -> INVALID_OPERATION",
    "unknown_permission": "unknown userPermissions name -> INVALID_FIELD "
                          "'Unknown user permission: <name>'",
    "my_domain_name": "changing MyDomainSettings.myDomainName -> FIELD_INTEGRITY_EXCEPTION",
    "consumer_key": "consumerKey/consumerSecret are kept from creation; values sent on update "
                    "are ignored",
    "view_updates": "Profile/PermissionSet/MyDomainSettings updates merge: absent fields keep "
                    "their value; other types are replaced whole",
    "all_or_none": "allOrNone=true and a failure -> nothing saved; components that would have "
                   "succeeded report ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "eca_delete": "deleting an ExternalClientApplication also deletes its settings/policies "
                  "components and its SetupEntityAccess rows",
    "permission_set_delete": "deleting a PermissionSet also deletes its assignments and "
                             "SetupEntityAccess rows",
    "write_counter": "every create/update/upsert/delete call that reaches the org counts as one "
                     "write, whatever its per-component results",
    "named_credential_secret": "a legacy NamedCredential's password, OAuth token/refresh token "
                               "and AWS secret are never read back; replacing a legacy "
                               "credential that holds one without sending it again -> "
                               "FIELD_INTEGRITY_EXCEPTION 'Enter the <field> again to change "
                               "this named credential'",
    "named_credential_endpoint": "endpoint (and the other legacy-only fields) on a "
                                 "SecuredEndpoint/PrivateEndpoint NamedCredential -> "
                                 "FIELD_INTEGRITY_EXCEPTION; its URL is the Url parameter",
}

RUN_AS_MESSAGE = "Enter a valid execution user for the OAuth client credentials flow."
#: The sandbox's wording for an unknown Custom Connected App Handler Run As user [I].
HANDLER_RUN_AS_MESSAGE = "Enter a valid Run As user for the connected app handler."
ROLLED_BACK_MESSAGE = ("Record rolled back because not all records were valid and the request "
                       "was using AllOrNone header")
#: listMetadata dates for components that have no row to take them from.
DEFAULT_DATE = "2020-01-01T00:00:00.000Z"


class MetadataFault(Exception):
    """A whole-call failure: becomes a SOAP fault ``sf:<code>`` with ``<code>: <message>``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class SaveError:
    status_code: str
    message: str
    fields: list[str] = field(default_factory=list)


@dataclass
class Result:
    """SaveResult / UpsertResult / DeleteResult."""

    full_name: str
    errors: list[SaveError] = field(default_factory=list)
    created: bool = False

    @property
    def success(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class TypeInfo:
    directory: str
    suffix: str
    id_prefix: str  # for generated ids of components that have no row


def _invalid_type() -> MetadataFault:
    return MetadataFault("INVALID_TYPE", "This type of metadata is not available for this "
                                         "organization")


def _missing(type_name: str, name: str) -> SaveError:
    return SaveError("INVALID_CROSS_REFERENCE_KEY",
                     f"In field: fullName - no {type_name} named {name} found", ["fullName"])


def _bad_ref(field_name: str, type_name: str, value: str) -> SaveError:
    return SaveError("INVALID_CROSS_REFERENCE_KEY",
                     f"In field: {field_name} - no {type_name} named {value} found", [field_name])


def _required(field_name: str) -> SaveError:
    return SaveError("REQUIRED_FIELD_MISSING", f"Required field is missing: {field_name}",
                     [field_name])


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    """List field values without the empty placeholders an empty element parses to."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [v for v in items if v not in ("", None, {})]


def _public(value: Any) -> Any:
    """A deep copy without internal ``_`` keys."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


def _generated_id(prefix: str, type_name: str, name: str) -> str:
    digest = hashlib.sha256(f"{type_name}:{name}".encode()).digest()
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    body = "".join(alphabet[b % 62] for b in digest[:12])
    return to18(prefix + body)


# ---- per-type behaviour ------------------------------------------------------------------------


class Kind:
    """One metadata type. Subclasses override what differs from 'stored as-is by fullName'."""

    name: str = ""
    required: tuple[str, ...] = ()
    merge_on_update = False

    def store(self, org: Org) -> dict[str, Component]:
        return org.metadata.setdefault(self.name, {})

    def names(self, org: Org) -> list[str]:
        return list(self.store(org))

    def exists(self, org: Org, name: str) -> bool:
        return name in self.store(org)

    def read(self, org: Org, name: str) -> Component | None:
        comp = self.store(org).get(name)
        return None if comp is None else _public(comp)

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        del creating
        return [_required(f) for f in self.required if comp.get(f) in (None, "")]

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        store = self.store(org)
        old = store.get(comp["fullName"], {})
        new = {**old, **comp} if (self.merge_on_update and not creating) else dict(comp)
        for key, value in old.items():  # internal keys survive an update
            if key.startswith("_"):
                new.setdefault(key, value)
        store[comp["fullName"]] = new

    def remove(self, org: Org, name: str) -> list[SaveError]:
        self.store(org).pop(name, None)
        return []

    def row(self, org: Org, name: str) -> Row | None:
        """The sObject row behind the component, when there is one."""
        return None

    def record_id(self, org: Org, name: str) -> str:
        row = self.row(org, name)
        if row is not None:
            return str(row["Id"])
        return _generated_id(TYPES[self.name].id_prefix, self.name, name)


class ConnectedAppKind(Kind):
    name = "ConnectedApp"
    required = ("label", "contactEmail")
    _grant_fields = ("profileName", "permissionSetName")

    def row(self, org: Org, name: str) -> Row | None:
        return org.connected_application(name)

    def read(self, org: Org, name: str) -> Component | None:
        comp = super().read(org, name)
        if comp is None:
            return None
        oauth = comp.get("oauthConfig")
        if isinstance(oauth, dict):
            oauth.pop("consumerSecret", None)
        for key in self._grant_fields:
            comp.pop(key, None)
        row = self.row(org, name)
        if row is not None:
            profiles, sets = [], []
            for parent in access.granting_parents(org, row["Id"]):
                if parent.get("IsOwnedByProfile"):
                    profile = org.get("Profile", parent.get("ProfileId"))
                    if profile is not None:
                        profiles.append(profile["Name"])
                else:
                    sets.append(parent["Name"])
            if profiles:
                comp["profileName"] = profiles
            if sets:
                comp["permissionSetName"] = sets
        return comp

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        errors = super().validate(org, comp, creating)
        run_as = _as_dict(comp.get("oauthConfig")).get("oauthClientCredentialUser")
        if run_as and org.user_by_username(str(run_as)) is None:
            errors.append(SaveError("FIELD_INTEGRITY_EXCEPTION", RUN_AS_MESSAGE,
                                    ["oauthClientCredentialUser"]))
        handler_user = comp.get("pluginExecutionUser")
        if handler_user and org.user_by_username(str(handler_user)) is None:
            errors.append(SaveError("FIELD_INTEGRITY_EXCEPTION", HANDLER_RUN_AS_MESSAGE,
                                    ["pluginExecutionUser"]))
        for profile in _as_list(comp.get("profileName")):
            if org.profile_by_name(str(profile)) is None:
                errors.append(_bad_ref("profileName", "Profile", str(profile)))
        for ps in _as_list(comp.get("permissionSetName")):
            if org.permission_set_by_name(str(ps)) is None:
                errors.append(_bad_ref("permissionSetName", "PermissionSet", str(ps)))
        return errors

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        name = comp["fullName"]
        old_oauth = _as_dict(self.store(org).get(name, {}).get("oauthConfig"))
        stored = {k: v for k, v in comp.items() if k not in self._grant_fields}
        if isinstance(stored.get("oauthConfig"), dict):
            oauth = dict(stored["oauthConfig"])
            if old_oauth.get("consumerKey"):
                oauth["consumerKey"] = old_oauth["consumerKey"]
                oauth["consumerSecret"] = old_oauth.get("consumerSecret")
            oauth.setdefault("consumerKey", _new_consumer_key())
            if not oauth.get("consumerSecret"):
                oauth["consumerSecret"] = secrets.token_hex(32)
            stored["oauthConfig"] = oauth
        super().write(org, stored, creating)
        row = self.row(org, name)
        if row is None:
            row = org.insert("ConnectedApplication", {
                "Name": name, "OptionsIsInternal": False,
                "OptionsRefreshTokenValidityMetric": False, "StartUrl": comp.get("startUrl"),
                "MobileStartUrl": comp.get("mobileStartUrl"), "RefreshTokenValidityPeriod": None})
        else:
            org.update("ConnectedApplication", row["Id"], {"StartUrl": comp.get("startUrl")})
        if "profileName" in comp:
            parents = []
            for profile_name in _as_list(comp["profileName"]):
                profile = org.profile_by_name(str(profile_name))
                owned = org.profile_permission_set(profile["Id"]) if profile else None
                if owned is not None:
                    parents.append(owned["Id"])
            _replace_grants(org, row["Id"], parents, profile_owned=True)
        if "permissionSetName" in comp:
            parents = []
            for ps_name in _as_list(comp["permissionSetName"]):
                ps = org.permission_set_by_name(str(ps_name))
                if ps is not None:
                    parents.append(ps["Id"])
            _replace_grants(org, row["Id"], parents, profile_owned=False)

    def remove(self, org: Org, name: str) -> list[SaveError]:
        super().remove(org, name)
        row = self.row(org, name)
        if row is not None:
            _replace_grants(org, row["Id"], [], profile_owned=None)
            org.delete("ConnectedApplication", row["Id"])
        return []


def _new_consumer_key() -> str:
    alphabet = string.ascii_letters + string.digits
    return "3MVG9" + "".join(secrets.choice(alphabet) for _ in range(80))


def _replace_grants(org: Org, entity_id: str, parent_ids: list[str],
                    profile_owned: bool | None) -> None:
    """Make the app's SetupEntityAccess rows of one kind of parent exactly ``parent_ids``.

    ``profile_owned`` picks the rows considered (profile-owned parents, other permission sets,
    or None for all); rows that stay are kept with their ids.
    """
    wanted = {pid[:15]: pid for pid in parent_ids}
    for sea in list(org.tables["SetupEntityAccess"].values()):
        if not same_id(sea.get("SetupEntityId"), entity_id):
            continue
        parent = org.get("PermissionSet", sea.get("ParentId"))
        is_profile = bool(parent and parent.get("IsOwnedByProfile"))
        if profile_owned is not None and is_profile != profile_owned:
            continue
        key = str(sea.get("ParentId"))[:15]
        if key in wanted:
            wanted.pop(key)
        else:
            org.delete("SetupEntityAccess", sea["Id"])
    entity_type = "ConnectedApplication" if entity_id.startswith("0H4") \
        else "ExternalClientApplication"
    for pid in wanted.values():
        org.insert("SetupEntityAccess", {"ParentId": pid, "SetupEntityId": entity_id,
                                         "SetupEntityType": entity_type})


class EcaHeaderKind(Kind):
    name = "ExternalClientApplication"

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        existing = self.store(org).get(comp["fullName"])
        super().write(org, comp, creating)
        if existing is None or "_id" not in existing:
            self.store(org)[comp["fullName"]]["_id"] = org.ids.new("ExternalClientApplication")

    def record_id(self, org: Org, name: str) -> str:
        return str(self.store(org).get(name, {}).get("_id") or super().record_id(org, name))

    def remove(self, org: Org, name: str) -> list[SaveError]:
        header = self.store(org).pop(name, None)
        for child in ECA_CHILDREN:
            store = org.metadata.get(child, {})
            for child_name in [n for n, c in store.items()
                               if c.get("externalClientApplication") == name]:
                del store[child_name]
        if header is not None and header.get("_id"):
            _replace_grants(org, header["_id"], [], profile_owned=None)
        return []


class EcaChildKind(Kind):
    required = ("externalClientApplication",)
    secret_fields: tuple[str, ...] = ()
    run_as_field: str | None = None

    def __init__(self, name: str, secret_fields: tuple[str, ...] = (),
                 run_as_field: str | None = None) -> None:
        self.name = name
        self.secret_fields = secret_fields
        self.run_as_field = run_as_field

    def read(self, org: Org, name: str) -> Component | None:
        comp = super().read(org, name)
        if comp is not None:
            for key in self.secret_fields:
                comp.pop(key, None)
        return comp

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        errors = super().validate(org, comp, creating)
        header = comp.get("externalClientApplication")
        if header and header not in org.metadata.get("ExternalClientApplication", {}):
            errors.append(_bad_ref("externalClientApplication", "ExternalClientApplication",
                                   str(header)))
        if self.run_as_field:
            run_as = comp.get(self.run_as_field)
            if run_as and org.user_by_username(str(run_as)) is None:
                errors.append(SaveError("FIELD_INTEGRITY_EXCEPTION", RUN_AS_MESSAGE,
                                        [self.run_as_field]))
        return errors

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        old = self.store(org).get(comp["fullName"], {})
        comp = dict(comp)
        if self.secret_fields:  # OAuth global settings: the key pair is kept from creation
            for key in ("consumerKey", "consumerSecret"):
                if old.get(key):
                    comp[key] = old[key]
            comp.setdefault("consumerKey", _new_consumer_key())
            if not comp.get("consumerSecret"):
                comp["consumerSecret"] = secrets.token_hex(32)
        super().write(org, comp, creating)


class NamedCredentialKind(Kind):
    """Named credentials in both formats (platform-truth P1, Metadata ``NamedCredential``): the
    current one (``namedCredentialType`` SecuredEndpoint or PrivateEndpoint) keeps its URL in a
    ``namedCredentialParameters`` item of ``parameterType`` Url and its authentication in an
    ExternalCredential; the legacy one (``Legacy``, or no type) keeps ``endpoint``,
    ``principalType``, ``protocol`` and, for Password/OAuth/AWS, a secret no read returns."""

    name = "NamedCredential"
    required = ("label",)
    secret_fields = ("password", "oauthToken", "oauthRefreshToken", "awsAccessSecret")
    legacy_only = ("endpoint", "principalType", "protocol", "username", "password",
                   "oauthToken", "oauthRefreshToken", "oauthScope", "authProvider",
                   "awsAccessKey", "awsAccessSecret", "awsRegion", "awsService")

    def read(self, org: Org, name: str) -> Component | None:
        comp = super().read(org, name)
        if comp is None:
            return None
        return {k: v for k, v in comp.items() if k not in self.secret_fields}

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        errors = super().validate(org, comp, creating)
        kind = comp.get("namedCredentialType") or "Legacy"
        if kind != "Legacy":
            errors += [SaveError("FIELD_INTEGRITY_EXCEPTION",
                                 f"{f} is valid only for legacy named credentials", [f])
                       for f in self.legacy_only if comp.get(f) not in (None, "")]
            return errors
        old = self.store(org).get(comp["fullName"]) or {}
        for f in self.secret_fields:  # CHOICES["named_credential_secret"]
            if old.get(f) and not comp.get(f) and not creating:
                errors.append(SaveError("FIELD_INTEGRITY_EXCEPTION",
                                        f"Enter the {f} again to change this named credential",
                                        [f]))
        return errors


class MyDomainKind(Kind):
    name = "MyDomainSettings"
    merge_on_update = True

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        errors = super().validate(org, comp, creating)
        current = self.store(org).get(comp["fullName"], {})
        wanted = comp.get("myDomainName")
        if wanted not in (None, "") and current and wanted != current.get("myDomainName"):
            errors.append(SaveError(
                "FIELD_INTEGRITY_EXCEPTION",
                "The My Domain name can't be changed through the Metadata API. "
                "Change it in Setup on the My Domain page.", ["myDomainName"]))
        return errors


#: ConnectedAppSettings (Metadata API, "ConnectedAppSettings", API 47.0+: one component named
#: ``ConnectedApp``): ``enableAdminApprovedAppsOnly`` is API Access Control, "if true, only apps
#: that have been approved or installed by the admin can call the Salesforce API" [V]. An org
#: whose scenario sets nothing answers the documented default, off. The sandbox stores the
#: setting; it does not enforce it at sign-in (docs/sandbox.md, assumptions).
CONNECTED_APP_SETTINGS_DEFAULT: Component = {
    "fullName": "ConnectedApp", "enableAdminApprovedAppsOnly": False,
    "enableAdminApprovedAppsOnlyForExternalUser": False}


class ConnectedAppSettingsKind(Kind):
    name = "ConnectedAppSettings"
    merge_on_update = True

    def names(self, org: Org) -> list[str]:
        return ["ConnectedApp"]

    def exists(self, org: Org, name: str) -> bool:
        return name == "ConnectedApp"

    def read(self, org: Org, name: str) -> Component | None:
        if name != "ConnectedApp":
            return None
        stored = super().read(org, name) or {}
        return {**CONNECTED_APP_SETTINGS_DEFAULT, **stored}


def _user_permissions(ps: Row | None) -> list[dict[str, Any]]:
    if ps is None:
        return []
    return [{"enabled": True, "name": flag} for flag in PERMISSION_FLAGS
            if ps.get(f"Permissions{flag}")]


def _permission_errors(comp: Component) -> list[SaveError]:
    errors = []
    for item in _as_list(comp.get("userPermissions")):
        name = _as_dict(item).get("name")
        if name not in PERMISSION_FLAGS:
            errors.append(SaveError("INVALID_FIELD", f"Unknown user permission: {name}",
                                    ["userPermissions"]))
    return errors


def _permission_values(comp: Component) -> dict[str, bool]:
    out = {}
    for item in _as_list(comp.get("userPermissions")):
        entry = _as_dict(item)
        out[f"Permissions{entry['name']}"] = entry.get("enabled") is True
    return out


class ProfileKind(Kind):
    name = "Profile"

    def row(self, org: Org, name: str) -> Row | None:
        return org.profile_by_full_name(name)

    def names(self, org: Org) -> list[str]:
        return [str(r.get("_FullName") or r["Name"]) for r in org.tables["Profile"].values()]

    def exists(self, org: Org, name: str) -> bool:
        return self.row(org, name) is not None

    def read(self, org: Org, name: str) -> Component | None:
        profile = self.row(org, name)
        if profile is None:
            return None
        comp: Component = {"fullName": str(profile.get("_FullName") or profile["Name"]),
                           "custom": False}
        if profile.get("Description"):
            comp["description"] = profile["Description"]
        ranges = []
        for r in org.find("LoginIpRange", ProfileId=profile["Id"]):
            item = {"startAddress": r["StartAddress"], "endAddress": r["EndAddress"]}
            if r.get("Description"):
                item["description"] = r["Description"]
            ranges.append(item)
        if ranges:
            comp["loginIpRanges"] = ranges
        from remediate.sandbox import objectaccess

        hours = objectaccess.login_hours(profile)
        if hours:
            comp["loginHours"] = hours
        lic = org.get("UserLicense", profile.get("UserLicenseId"))
        if lic is not None:
            comp["userLicense"] = lic["Name"]
        perms = _user_permissions(org.profile_permission_set(profile["Id"]))
        if perms:
            comp["userPermissions"] = perms
        return comp

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        if creating:
            return [SaveError("INVALID_OPERATION",
                              "The sandbox can't create profiles through the Metadata API; "
                              "clone a profile in Setup.")]
        errors = _permission_errors(comp)
        for item in _as_list(comp.get("loginIpRanges")):
            entry = _as_dict(item)
            try:
                start = ipaddress.ip_address(str(entry.get("startAddress")))
                end = ipaddress.ip_address(str(entry.get("endAddress")))
                valid = start.version == end.version and start <= end  # type: ignore[operator]
            except ValueError:
                valid = False
            if not valid:
                errors.append(SaveError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Invalid IP address range: {entry.get('startAddress')} - "
                    f"{entry.get('endAddress')}", ["loginIpRanges"]))
        if comp.get("loginHours") not in (None, ""):
            from remediate.sandbox import objectaccess

            problem = objectaccess.login_hours_problem(_as_dict(comp["loginHours"]))
            if problem:
                errors.append(SaveError("FIELD_INTEGRITY_EXCEPTION",
                                        f"Invalid login hours: {problem}", ["loginHours"]))
        return errors

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        del creating
        profile = self.row(org, comp["fullName"])
        assert profile is not None
        owned = org.profile_permission_set(profile["Id"])
        flags = _permission_values(comp)
        if owned is not None and flags:
            org.update("PermissionSet", owned["Id"], flags)
        if "description" in comp:
            org.update("Profile", profile["Id"], {"Description": comp["description"] or None})
        if "loginIpRanges" in comp:
            for r in org.find("LoginIpRange", ProfileId=profile["Id"]):
                org.delete("LoginIpRange", r["Id"])
            for item in _as_list(comp["loginIpRanges"]):
                entry = _as_dict(item)
                org.insert("LoginIpRange", {
                    "ProfileId": profile["Id"], "StartAddress": entry["startAddress"],
                    "EndAddress": entry["endAddress"],
                    "Description": entry.get("description") or None})
        if "loginHours" in comp:  # the element replaces the profile's hours (empty: none)
            hours = _as_dict(comp["loginHours"]) if comp["loginHours"] else {}
            org.update("Profile", profile["Id"],
                       {"_LoginHours": {k: str(v) for k, v in hours.items() if v is not None}})
        org.update("Profile", profile["Id"], {})  # LastModifiedDate

    def remove(self, org: Org, name: str) -> list[SaveError]:
        return [SaveError("INVALID_OPERATION",
                          "The sandbox can't delete profiles through the Metadata API.")]


class PermissionSetKind(Kind):
    name = "PermissionSet"

    def row(self, org: Org, name: str) -> Row | None:
        return org.permission_set_by_name(name)

    def names(self, org: Org) -> list[str]:
        return [str(r["Name"]) for r in org.tables["PermissionSet"].values()
                if not r.get("IsOwnedByProfile")]

    def exists(self, org: Org, name: str) -> bool:
        return self.row(org, name) is not None

    def read(self, org: Org, name: str) -> Component | None:
        ps = self.row(org, name)
        if ps is None:
            return None
        comp: Component = {"fullName": ps["Name"], "label": ps.get("Label") or ps["Name"],
                           "hasActivationRequired": bool(ps.get("HasActivationRequired"))}
        if ps.get("Description"):
            comp["description"] = ps["Description"]
        license_name = _license_label(org, ps.get("LicenseId"))
        if license_name:
            comp["license"] = license_name
        perms = _user_permissions(ps)
        if perms:
            comp["userPermissions"] = perms
        from remediate.sandbox import objectaccess

        visibilities = objectaccess.record_type_visibilities(ps)
        if visibilities:
            comp["recordTypeVisibilities"] = visibilities
        return comp

    def validate(self, org: Org, comp: Component, creating: bool) -> list[SaveError]:
        from remediate.sandbox import objectaccess

        errors = []
        if creating and not comp.get("label"):
            errors.append(_required("label"))
        items = [_as_dict(i) for i in _as_list(comp.get("recordTypeVisibilities"))]
        errors += [_bad_ref("recordTypeVisibilities", "RecordType", name)
                   for name in objectaccess.unknown_record_types(org, items)]
        lic = comp.get("license")
        if lic and _license_id(org, str(lic)) is None:
            errors.append(_bad_ref("license", "PermissionSetLicense", str(lic)))
        return errors + _permission_errors(comp)

    def write(self, org: Org, comp: Component, creating: bool) -> None:
        values: Row = {}
        if "label" in comp:
            values["Label"] = comp["label"] or comp["fullName"]
        if "description" in comp:
            values["Description"] = comp["description"] or None
        if "license" in comp:
            values["LicenseId"] = _license_id(org, str(comp["license"])) if comp["license"] \
                else None
        if "hasActivationRequired" in comp:
            values["HasActivationRequired"] = comp["hasActivationRequired"] is True
        values.update(_permission_values(comp))
        ps = self.row(org, comp["fullName"])
        if ps is None or creating:
            base: Row = {"Name": comp["fullName"], "Label": comp["fullName"], "Description": None,
                         "IsCustom": True, "IsOwnedByProfile": False, "ProfileId": None,
                         "PermissionSetGroupId": None, "LicenseId": None, "NamespacePrefix": None,
                         "Type": "Regular", "HasActivationRequired": False,
                         **{f"Permissions{f}": False for f in PERMISSION_FLAGS}}
            ps = org.insert("PermissionSet", {**base, **values})
        else:
            org.update("PermissionSet", ps["Id"], values)
        if "recordTypeVisibilities" in comp:
            from remediate.sandbox import objectaccess

            objectaccess.set_record_type_visibilities(
                org, ps, [_as_dict(i) for i in _as_list(comp["recordTypeVisibilities"])])

    def remove(self, org: Org, name: str) -> list[SaveError]:
        ps = self.row(org, name)
        if ps is not None:
            for table, key in (("PermissionSetAssignment", "PermissionSetId"),
                               ("SetupEntityAccess", "ParentId")):
                for r in org.find(table, **{key: ps["Id"]}):
                    org.delete(table, r["Id"])
            org.delete("PermissionSet", ps["Id"])
        return []


def _license_id(org: Org, name: str) -> str | None:
    psl = org.license_by_name(name)
    if psl is not None:
        return str(psl["Id"])
    ul = org.find_one("UserLicense", Name=name)
    return str(ul["Id"]) if ul is not None else None


def _license_label(org: Org, license_id: str | None) -> str | None:
    psl = org.get("PermissionSetLicense", license_id)
    if psl is not None:
        return str(psl["MasterLabel"])
    ul = org.get("UserLicense", license_id)
    return str(ul["Name"]) if ul is not None else None


def _simple(name: str, required: tuple[str, ...] = ()) -> Kind:
    kind = Kind()
    kind.name = name
    kind.required = required
    return kind


ECA_CHILDREN = ("ExtlClntAppOauthSettings", "ExtlClntAppGlobalOauthSettings",
                "ExtlClntAppOauthConfigurablePolicies", "ExtlClntAppConfigurablePolicies")

#: File layout of each supported type (reference 2.1, 2.2, 3.4) and the key prefix of the
#: stable ids listMetadata makes up for components that have no row [I: prefixes].
TYPES: dict[str, TypeInfo] = {
    "ConnectedApp": TypeInfo("connectedApps", "connectedApp", "0H4"),
    "ExternalClientApplication": TypeInfo("externalClientApps", "eca", "0xI"),
    "ExtlClntAppOauthSettings": TypeInfo("extlClntAppOauthSettings", "ecaOauth", "0xS"),
    "ExtlClntAppGlobalOauthSettings": TypeInfo("extlClntAppGlobalOauthSets", "ecaGlblOauth",
                                               "0xG"),
    "ExtlClntAppOauthConfigurablePolicies": TypeInfo("extlClntAppOauthPolicies", "ecaOauthPlcy",
                                                     "0xP"),
    "ExtlClntAppConfigurablePolicies": TypeInfo("extlClntAppPolicies", "ecaPlcy", "0xC"),
    "Profile": TypeInfo("profiles", "profile", "00e"),
    "PermissionSet": TypeInfo("permissionsets", "permissionset", "0PS"),
    "NamedCredential": TypeInfo("namedCredentials", "namedCredential", "0XA"),
    "RemoteSiteSetting": TypeInfo("remoteSiteSettings", "remoteSite", "0rp"),
    "MyDomainSettings": TypeInfo("settings", "settings", "0Md"),
    "ConnectedAppSettings": TypeInfo("settings", "settings", "0Cs"),
}

KINDS: dict[str, Kind] = {
    "ConnectedApp": ConnectedAppKind(),
    "ExternalClientApplication": EcaHeaderKind(),
    "ExtlClntAppOauthSettings": EcaChildKind("ExtlClntAppOauthSettings"),
    "ExtlClntAppGlobalOauthSettings": EcaChildKind("ExtlClntAppGlobalOauthSettings",
                                                   secret_fields=("consumerSecret",)),
    "ExtlClntAppOauthConfigurablePolicies": EcaChildKind(
        "ExtlClntAppOauthConfigurablePolicies", run_as_field="clientCredentialsFlowUser"),
    "ExtlClntAppConfigurablePolicies": EcaChildKind("ExtlClntAppConfigurablePolicies"),
    "Profile": ProfileKind(),
    "PermissionSet": PermissionSetKind(),
    "NamedCredential": NamedCredentialKind(),
    "RemoteSiteSetting": _simple("RemoteSiteSetting", ("url",)),
    "MyDomainSettings": MyDomainKind(),
    "ConnectedAppSettings": ConnectedAppSettingsKind(),
}


# ---- the calls ---------------------------------------------------------------------------------


def kind_of(type_name: str | None) -> Kind:
    """The supported type, or the INVALID_TYPE fault Salesforce answers for others."""
    kind = KINDS.get(type_name or "")
    if kind is None:
        raise _invalid_type()
    return kind


def check_count(count: int, limit: int = MAX_COMPONENTS) -> None:
    if count > limit:
        raise MetadataFault("EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than "
                                                 f"{limit} records in this operation")


#: Fields that exist only from an API version on (platform-truth.md A10): a read at a lower
#: version leaves them out, a write at a lower version carrying them is refused.
FIELD_SINCE: dict[str, dict[str, str]] = {
    "ExtlClntAppOauthConfigurablePolicies": {"isClientCredentialsFlowEnabled": "60.0",
                                             "clientCredentialsFlowUser": "60.0"},
    "ExtlClntAppGlobalOauthSettings": {"isClientCredentialsFlowEnabled": "60.0"},
}


def _newer_fields(type_name: str, version: str | None) -> set[str]:
    if version is None:
        return set()
    return {f for f, since in FIELD_SINCE.get(type_name, {}).items()
            if float(version) < float(since)}


def field_too_new(type_name: str, components: list[Component], version: str) -> str | None:
    """The first field of ``components`` that does not exist at ``version``, if any."""
    newer = _newer_fields(type_name, version)
    for comp in components:
        for key in comp:
            if key in newer:
                return key
    return None


def read(org: Org, type_name: str, names: list[str],
         version: str | None = None) -> list[Component | None]:
    """readMetadata: one entry per name, None where no such component exists; at ``version``
    only the fields that exist at that version."""
    kind = kind_of(type_name)
    check_count(len(names))
    newer = _newer_fields(type_name, version)
    out = []
    for name in names:
        comp = kind.read(org, name)
        if comp is not None and newer:
            comp = {k: v for k, v in comp.items() if k not in newer}
        out.append(comp)
    return out


def save(org: Org, type_name: str, components: list[Component], mode: Mode,
         all_or_none: bool = False) -> list[Result]:
    """createMetadata / updateMetadata / upsertMetadata over components of one type."""
    kind = kind_of(type_name)
    check_count(len(components))
    snapshot = org.snapshot() if all_or_none else None
    results = []
    for comp in components:
        name = str(comp.get("fullName") or "")
        result = Result(name)
        results.append(result)
        if not name:
            result.errors.append(_required("fullName"))
            continue
        exists = kind.exists(org, name)
        if mode == "create" and exists:
            result.errors.append(SaveError(
                "DUPLICATE_VALUE", f"A {type_name} named {name} already exists", ["fullName"]))
            continue
        if mode == "update" and not exists:
            result.errors.append(_missing(type_name, name))
            continue
        creating = not exists
        refused = managed_refusal(org, type_name, name, kind.record_id(org, name)) \
            if exists else None
        if refused:  # a component installed from a managed package (A1)
            result.errors.append(SaveError(REFUSAL_CODE, refused))
            continue
        result.errors.extend(kind.validate(org, comp, creating))
        if result.errors:
            continue
        kind.write(org, comp, creating)
        result.created = creating
    return _settle(org, results, snapshot)


def delete(org: Org, type_name: str, names: list[str], all_or_none: bool = False) -> list[Result]:
    """deleteMetadata."""
    kind = kind_of(type_name)
    check_count(len(names))
    snapshot = org.snapshot() if all_or_none else None
    results = []
    for name in names:
        result = Result(name)
        results.append(result)
        if not kind.exists(org, name):
            result.errors.append(_missing(type_name, name))
            continue
        refused = managed_refusal(org, type_name, name, kind.record_id(org, name))
        if refused:
            result.errors.append(SaveError(REFUSAL_CODE, refused))
            continue
        result.errors.extend(kind.remove(org, name))
    return _settle(org, results, snapshot)


def _settle(org: Org, results: list[Result],
            snapshot: Snapshot | None,
            ) -> list[Result]:
    """With allOrNone, a failure anywhere undoes every change of the call."""
    if snapshot is None or all(r.success for r in results):
        return results
    org.restore(snapshot)
    for r in results:
        if r.success:
            r.created = False
            r.errors.append(SaveError("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK_MESSAGE))
    return results


def _api_date(value: Any) -> str:
    """Row timestamps (2026-01-01T00:00:00.000+0000) as xsd:dateTime."""
    if not value:
        return DEFAULT_DATE
    text = str(value)
    return text[:-5] + "Z" if text.endswith("+0000") else text


def _admin(org: Org) -> Row | None:
    users = sorted(org.tables["User"].values(), key=lambda u: str(u["Id"]))
    for user in users:
        if access.is_admin(org, user["Id"]):
            return user
    return users[0] if users else None


def list_metadata(org: Org, types: list[str]) -> list[dict[str, Any]]:
    """listMetadata: FileProperties for every component of the queried types."""
    check_count(len(types), MAX_LIST_QUERIES)
    kinds = [kind_of(t) for t in types]
    admin = _admin(org)
    admin_id = str(admin["Id"]) if admin else ""
    admin_name = str(admin.get("Name") or admin.get("Username")) if admin else ""
    out = []
    for kind in kinds:
        info = TYPES[kind.name]
        for name in kind.names(org):
            row = kind.row(org, name)
            created = _api_date(row.get("CreatedDate")) if row else DEFAULT_DATE
            modified = _api_date(row.get("LastModifiedDate")) if row else DEFAULT_DATE
            out.append({
                "createdById": admin_id, "createdByName": admin_name, "createdDate": created,
                "fileName": f"{info.directory}/{name}.{info.suffix}", "fullName": name,
                "id": kind.record_id(org, name), "lastModifiedById": admin_id,
                "lastModifiedByName": admin_name, "lastModifiedDate": modified,
                "manageableState": "installed" if is_managed(org, kind.name, name)
                else "unmanaged",
                "namespacePrefix": namespace_of(org, kind.name, name), "type": kind.name,
            })
    return out


def describe() -> dict[str, Any]:
    """describeMetadata: the types this sandbox serves. The settings types (MyDomainSettings)
    are one entry, ``Settings`` in ``settings/`` with suffix ``settings``, as a real org lists
    them (force-dev-tool's stored describeMetadata result, tests/conformance)."""
    objects: list[dict[str, Any]] = []
    for name, info in TYPES.items():
        xml_name = "Settings" if info.directory == "settings" else name
        if any(o["xmlName"] == xml_name for o in objects):
            continue
        objects.append({"directoryName": info.directory, "inFolder": False, "metaFile": False,
                        "suffix": info.suffix, "xmlName": xml_name})
    return {"metadataObjects": objects, "organizationNamespace": "",
            "partialSaveAllowed": True, "testRequired": False}


# ---- components installed from a managed package (platform-truth A1, A3) -------------------
# A connected app installed from a managed package carries its namespace (``ns__Name``); the
# subscriber org cannot change it through the Metadata API, only its policies, in Setup. A
# managed component is stored like any other, with two internal keys (never returned):
# ``_namespace`` (the package's namespace) and ``_managed`` (True).

#: The refusal of a Metadata write to a managed component. The status code is one of the
#: API's StatusCode values; the message follows the wording deploys report for managed
#: components in the field. Both are the sandbox's choice (docs/sandbox.md, assumptions).
REFUSAL_CODE = "CANNOT_MODIFY_MANAGED_OBJECT"
REFUSAL_MESSAGE = "Cannot modify managed object: entity={type}, component={id}, state=installed"


def namespace_of(org: Org, type_name: str, full_name: str) -> str | None:
    """The package namespace of a stored component, None for a local one."""
    comp = org.metadata.get(type_name, {}).get(full_name) or {}
    ns = comp.get("_namespace")
    return str(ns) if ns else None


def is_managed(org: Org, type_name: str, full_name: str) -> bool:
    comp = org.metadata.get(type_name, {}).get(full_name) or {}
    return bool(comp.get("_managed"))


def managed_refusal(org: Org, type_name: str, full_name: str, record_id: str) -> str | None:
    """The message a Metadata write (create, update, upsert, delete, deploy) of a managed
    component fails with, or None when the component may be written."""
    if not is_managed(org, type_name, full_name):
        return None
    return REFUSAL_MESSAGE.format(type=type_name, id=record_id)


# ---- Setup → Apps → Connected Apps → Manage Connected Apps → app → Edit Policies -----------

#: The policies an admin may edit on any connected app, installed or local (A1): the name
#: ``remediate sandbox setup-change --set NAME=VALUE`` takes, the component path it changes,
#: and the values it accepts (Setup's choices, as the Metadata API spells them).
POLICIES: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "permitted_users": ("oauthConfig.isAdminApproved", ("admin_approved", "all_users")),
    "ip_relaxation": ("oauthPolicy.ipRelaxation",
                      ("ENFORCE", "BYPASS_2FACTOR", "BYPASS", "ENFORCE_RELAXREFRESH")),
    "client_credentials": ("oauthConfig.isClientCredentialEnabled", ("true", "false")),
    "run_as": ("oauthConfig.oauthClientCredentialUser", None),  # a username of the org
    "handler_run_as": ("pluginExecutionUser", None),
    "refresh_token_policy": ("oauthPolicy.refreshTokenPolicy",
                             ("infinite", "immediately", "zero", "specific_lifetime")),
    "high_assurance": ("sessionPolicy.sessionLevel", ("true", "false")),
}


class SetupError(ValueError):
    """A Setup change the org refuses; the message names the app and the field."""


def setup_change(org: Org, app: str, settings: dict[str, str]) -> list[tuple[str, Any, Any]]:
    """Play an admin's Save on the app's Edit Policies page: each ``name=value`` of
    ``settings`` (names of ``POLICIES``). Returns (path, before, after) per field changed;
    nothing is changed when any setting is refused."""
    store = org.metadata.get("ConnectedApp", {})
    comp = store.get(app)
    if comp is None:
        known = ", ".join(sorted(store)) or "none"
        raise SetupError(f"no connected app {app!r} in the org (connected apps: {known})")
    planned: list[tuple[str, Any]] = []
    for name, raw in settings.items():
        if name not in POLICIES:
            raise SetupError(f"{app}: {name!r} is not a policy on Edit Policies (known: "
                             f"{', '.join(POLICIES)})")
        path, allowed = POLICIES[name]
        if allowed is not None and raw not in allowed:
            raise SetupError(f"{app}: {name}={raw!r}: choose one of {', '.join(allowed)}")
        value: Any = raw
        if name == "permitted_users":
            value = raw == "admin_approved"
        elif name == "client_credentials":
            value = raw == "true"
        elif name == "high_assurance":
            value = "HIGH_ASSURANCE" if raw == "true" else "STANDARD"
        elif name in ("run_as", "handler_run_as") and org.user_by_username(raw) is None:
            raise SetupError(f"{app}: {name}={raw!r}: no user with that username in the org")
        planned.append((path, value))
    out = []
    for path, value in planned:
        *parents, leaf = path.split(".")
        cur = comp
        for part in parents:
            cur = cur.setdefault(part, {})
        before = cur.get(leaf)
        cur[leaf] = value
        if before != value:
            out.append((path, before, value))
    return out
