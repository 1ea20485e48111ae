"""Diffs of the C15 and C16 step kinds on plain data, and the Login History and error texts
diagnose maps to causes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from remediate import diagnose
from remediate.errors import NotFound
from remediate.plan import METADATA_PHASE, PHASES, MetadataWrite, RecordWrite
from remediate.steps.base import (
    AppInfo,
    AppRead,
    AppRow,
    AppRowRead,
    Inventory,
    MetadataRead,
    ObjectAccessInfo,
    ObjectAccessRead,
    PermissionSetInfo,
    PermissionSetRead,
    StepContext,
    kinds,
)

CTX = StepContext("pb", "step", "C0")
PS = "Api_Access"
DESCRIBED: dict[str, frozenset[str] | None] = {
    "account": frozenset({"id", "name", "industry"}), "contact": frozenset({"id", "email"}),
    "nope__c": None}


def _inv(rows: dict[str, Any] | None = None, field_rows: dict[str, Any] | None = None,
         read: ObjectAccessRead | None = None, found_types: dict[str, str] | None = None,
         component: dict[str, Any] | None = None) -> Inventory:
    results: dict[Any, Any] = {
        PermissionSetRead(PS): PermissionSetInfo("0PSA", PS, "API Access", None, True)}
    if read is not None:
        results[read] = ObjectAccessInfo("0PSA", rows or {}, field_rows or {}, DESCRIBED,
                                         found_types or {})
    results[MetadataRead("PermissionSet", PS)] = component
    return Inventory(results)


def _access(objects: list[dict[str, Any]] | None = None, fields: list[dict[str, Any]] | None
            = None, record_types: list[str] | None = None,
            **inv: Any) -> list[Any]:
    kind = kinds()["permission_set.object_access"]
    p = kind.params.model_validate({"permission_set": PS, "objects": objects or [],
                                    "fields": fields or [], "record_types": record_types or []})
    read = next((r for r in kind.reads(p) if isinstance(r, ObjectAccessRead)), None)
    return kind.diff(p, _inv(read=read, **inv), CTX)


def test_a_missing_object_permission_is_an_insert_with_the_flags_it_needs() -> None:
    [change] = _access([{"object": "Account", "delete": True}])
    assert isinstance(change.write, RecordWrite)
    assert change.write.sobject == "ObjectPermissions" and change.write.record_id is None
    # Delete needs Read and Edit (object reference, ObjectPermissions)
    assert change.write.fields == {"ParentId": "0PSA", "SobjectType": "Account",
                                   "PermissionsRead": True, "PermissionsEdit": True,
                                   "PermissionsDelete": True}


def test_an_existing_row_is_updated_with_only_the_missing_flags_and_none_is_cleared() -> None:
    row = {"Id": "110A", "SobjectType": "Account", "PermissionsRead": True,
           "PermissionsViewAllRecords": True}
    [change] = _access([{"object": "Account", "edit": True}], rows={"account": row})
    assert isinstance(change.write, RecordWrite)
    assert change.write.record_id == "110A"
    assert change.write.fields == {"PermissionsEdit": True}
    # the field's own before and after, so rollback can put it back
    assert (change.field, change.before, change.after) == (
        "ObjectPermissions Account: PermissionsEdit", False, True)


def test_granted_objects_and_fields_are_ok() -> None:
    assert _access([{"object": "Account"}], [{"field": "Account.Industry"}],
                   rows={"account": {"Id": "110A", "PermissionsRead": True}},
                   field_rows={"account.industry": {"Id": "01kA", "PermissionsRead": True}}
                   ) == []


def test_field_edit_asks_for_read_too() -> None:
    [change] = _access(fields=[{"field": "Account.Industry", "read": False, "edit": True}])
    assert isinstance(change.write, RecordWrite)
    assert change.write.fields == {"ParentId": "0PSA", "SobjectType": "Account",
                                   "Field": "Account.Industry", "PermissionsRead": True,
                                   "PermissionsEdit": True}


@pytest.mark.parametrize(("objects", "fields", "record_types", "says"), [
    ([{"object": "Nope__c"}], [], [], "no object 'Nope__c'"),
    ([], [{"field": "Account.Secret__c"}], [], "object Account has no field 'Secret__c'"),
    ([], [], ["Account.Partner"], "no record type 'Account.Partner'"),
])
def test_unknown_objects_fields_and_record_types_cannot_be_checked(
        objects: list[dict[str, Any]], fields: list[dict[str, Any]], record_types: list[str],
        says: str) -> None:
    with pytest.raises(NotFound, match=says):
        _access(objects, fields, record_types)


@pytest.mark.parametrize("params", [
    {"objects": [{"object": "Account.Name"}]},
    {"fields": [{"field": "Industry"}]},
    {"record_types": ["Partner"]},
    {"objects": [{"object": "Account", "reed": True}]},
])
def test_malformed_names_are_refused_by_the_parameters(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        kinds()["permission_set.object_access"].params.model_validate(
            {"permission_set": PS, **params})


def test_a_hidden_record_type_becomes_visible_in_the_whole_component_as_read() -> None:
    component = {"fullName": PS, "label": "API Access",
                 "recordTypeVisibilities": [{"recordType": "Account.Partner", "visible": False},
                                            {"recordType": "Account.Other", "visible": True}]}
    [change] = _access(record_types=["Account.Partner"], component=component,
                       found_types={"account.partner": "012A"})
    assert isinstance(change.write, MetadataWrite)
    assert change.write.type == "PermissionSet" and change.write.mode == "set"
    assert change.write.value == [{"recordType": "Account.Other", "visible": True},
                                  {"recordType": "Account.Partner", "visible": True}]
    assert (change.before, change.after) == (
        [{"recordType": "Account.Other", "visible": True},
         {"recordType": "Account.Partner", "visible": False}], change.write.value)


def test_row_writes_come_after_the_permission_set_metadata_write() -> None:
    # the PermissionSet goes out whole (ADR 0033): rows granted before it could be taken back
    assert PHASES["ObjectPermissions"] > METADATA_PHASE
    assert PHASES["FieldPermissions"] > METADATA_PHASE


# ---- C16 -----------------------------------------------------------------------------------


def _session(app: dict[str, Any] | None, row: AppRow | None = None, **params: Any) -> list[Any]:
    kind = kinds()["app.session_policy"]
    p = kind.params.model_validate({"app": "App", **params})
    installed = bool(params.get("installed"))
    found = AppInfo("connected_app", "App", "App", "0H4A", None,
                    "installed" if installed else "unmanaged", "'App' by its API name")
    inv = Inventory({AppRead("connected_app", ("App",)): found,
                     MetadataRead("ConnectedApp", "App"): app, AppRowRead("App"): row})
    return kind.diff(p, inv, CTX)


HIGH = {"fullName": "App", "sessionPolicy": {"sessionLevel": "HIGH_ASSURANCE"}}


def test_high_assurance_on_a_local_app_is_set_to_standard() -> None:
    [change] = _session(HIGH)
    assert change.write == MetadataWrite(type="ConnectedApp", full_name="App",
                                         path="sessionPolicy.sessionLevel", value="STANDARD")


def test_high_assurance_on_an_installed_app_is_a_manual_change_with_the_setup_path() -> None:
    for change in (*_session(HIGH, installed=True),
                   # metadata not readable: the ConnectedApplication row still tells
                   *_session(None, AppRow("0H4A", "App", True), installed=True)):
        assert change.write is None
        assert "Manage Connected Apps → App → Edit Policies → Session Policies → High " \
               "assurance session required" in (change.manual or "")


def test_a_standard_session_level_is_ok() -> None:
    assert _session({"fullName": "App", "sessionPolicy": {"sessionLevel": "STANDARD"}}) == []
    assert _session({"fullName": "App"}) == []


def _hours(hours: dict[str, str] | None, **params: Any) -> list[Any]:
    kind = kinds()["profile.login_hours"]
    p = kind.params.model_validate({"profile": "Int", **params})
    profile = {"fullName": "Int_api", **({"loginHours": hours} if hours is not None else {})}
    return kind.diff(p, Inventory({MetadataRead("Profile", "Int"): profile}), CTX)


def test_login_hours_that_exclude_the_window_are_widened_only_when_allowed() -> None:
    hours = {"mondayStart": "480", "mondayEnd": "1080"}
    [manual] = _hours(hours, window={"days": ["monday"], "start": "06:00", "end": "20:00"})
    assert manual.write is None
    assert "Setup → Users → Profiles → Int → Login Hours" in (manual.manual or "")
    [change] = _hours(hours, window={"days": ["monday"], "start": "06:00", "end": "20:00"},
                      allow_change=True)
    assert change.write == MetadataWrite(type="Profile", full_name="Int_api", path="loginHours",
                                         value={"mondayStart": "360", "mondayEnd": "1200"})
    assert (change.before, change.after) == (hours, change.write.value)


def test_a_profile_without_login_hours_or_with_covering_ones_is_ok() -> None:
    assert _hours(None) == []
    assert _hours({"mondayStart": "0", "mondayEnd": "1440"}) == []
    # a day without hours is unrestricted
    assert _hours({"tuesdayStart": "0", "tuesdayEnd": "1440"}) == []


def test_unreadable_login_hours_cannot_be_checked() -> None:
    with pytest.raises(NotFound, match="cannot read"):
        _hours({"mondayStart": "8am", "mondayEnd": "6pm"})


@pytest.mark.parametrize("window", [{"start": "08:30"}, {"start": "18:00", "end": "08:00"},
                                    {"days": ["funday"]}])
def test_a_malformed_window_is_refused(window: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        kinds()["profile.login_hours"].params.model_validate({"profile": "P", "window": window})


# ---- Login History and error texts -----------------------------------------------------------


@pytest.mark.parametrize(("text", "cause"), [
    ("Restricted time", "C16"),
    ("invalid_grant: high assurance session required", "C16"),
    ("Two-factor required", "C16"),
    ("invalid_grant: ip restricted or invalid login hours", "C11"),
    ("invalid_grant: ip restricted or invalid login hours", "C16"),
    ("Restricted IP", "C11"),
    ("Failed: IP Address Not Allowed", "C11"),
    ("invalid_grant: user hasn't approved this app", "C3"),
    ("User is frozen", "C8"),
    ("Restricted domain", "C10"),
    ("Failed: Consumer Deleted", "C9"),
    ("Package for this consumer is not installed in your organization", "C9"),
    ("Failed: OAuth API access disabled", "C1"),
    ("Failed: API-only user", "C4"),
    ("INVALID_TYPE: sObject type 'Account' is not supported.", "C15"),
    ("INVALID_FIELD: No such column 'Industry' on entity 'Account'", "C15"),
])
def test_login_history_statuses_and_error_texts_map_to_their_cause(text: str, cause: str) -> None:
    m = diagnose.match(text)
    assert m is not None and cause in m.causes, (text, m)


@pytest.mark.parametrize("text", ["Invalid Password", "Password Lockout", "Login rate exceeded",
                                  "Organization locked", "Failed: Invalid Token",
                                  "Missing Consumer Key Parameter",
                                  "Failed: Client update required"])
def test_statuses_that_are_no_org_setting_give_advice_not_a_cause(text: str) -> None:
    m = diagnose.match(text)
    assert m is not None and m.causes == () and m.not_a_cause


def test_c15_and_c16_are_in_the_catalogue() -> None:
    assert {"C15", "C16"} <= set(diagnose.CAUSES)


def test_high_assurance_on_an_eca_policy_is_set_to_standard() -> None:
    kind = kinds()["app.session_policy"]
    p = kind.params.model_validate({"app": "App", "type": "external_client_app"})
    # the policy component is the one whose externalClientApplication names the app (A11)
    parts = (("ExtlClntAppOauthConfigurablePolicies", "App_oauthPlcy"),)
    inv = Inventory({AppRead("external_client_app", ("App",)): AppInfo(
                         "external_client_app", "App", "App", "0xIA", None, "unmanaged",
                         "'App' by its API name", parts, "Local"),
                     MetadataRead("ExtlClntAppOauthConfigurablePolicies", "App_oauthPlcy"): {
                         "fullName": "App_oauthPlcy", "externalClientApplication": "App",
                         "requiredSessionLevel": "HIGH_ASSURANCE"}})
    [change] = kind.diff(p, inv, CTX)
    assert change.write == MetadataWrite(type="ExtlClntAppOauthConfigurablePolicies",
                                         full_name="App_oauthPlcy", path="requiredSessionLevel",
                                         value="STANDARD")
