"""Step kinds are pure: diff and capture on plain inventory data, no org involved."""

from __future__ import annotations

from typing import Any

import pytest

from remediate.errors import NotFound
from remediate.plan import MetadataWrite, RecordWrite
from remediate.steps.base import (
    AppInfo,
    AppRead,
    AssignedSet,
    Inventory,
    LicenseInfo,
    LicenseRead,
    MetadataRead,
    OrgInfo,
    OrgRead,
    PackageRead,
    PermissionSetInfo,
    PermissionSetRead,
    ProfileInfo,
    ProfileRead,
    StepContext,
    UserInfo,
    UserRead,
    kinds,
)

CTX = StepContext("pb", "step", "C0")
USER = "int@acme.com"


def user(**kw: Any) -> UserInfo:
    base: dict[str, Any] = dict(id="005A", username=USER, active=True, profile_id="00eA",
                                profile_name="Integration", profile_api_enabled=False)
    base.update(kw)
    return UserInfo(**base)


def inventory(extra: dict[Any, Any] | None = None) -> Inventory:
    results: dict[Any, Any] = {
        OrgRead(): OrgInfo("00DA", "Acme", False, "USA1", "https://acme.my.salesforce.com"),
        UserRead(USER): user(),
        PermissionSetRead("PS"): PermissionSetInfo("0PSA", "PS", "PS", None, True),
        PermissionSetRead("NoApi"): PermissionSetInfo("0PSB", "NoApi", "NoApi", None, False),
        LicenseRead("Psl"): LicenseInfo("0PLA", "Psl", "Licence", 10, 1),
        ProfileRead("Integration"): ProfileInfo("00eA", "Integration", False),
        ProfileRead("Other"): ProfileInfo("00eB", "Other", False),
        PackageRead("ns"): None,
        MetadataRead("ConnectedApp", "App"): {
            "fullName": "App",
            "oauthConfig": {"isClientCredentialEnabled": False, "isAdminApproved": True,
                            "oauthClientCredentialUser": "old@acme.com"},
            "oauthPolicy": {"ipRelaxation": "ENFORCE"}, "permissionSetName": ["Other_PS"]},
        MetadataRead("ConnectedApp", "Gone"): None,
        AppRead("connected_app", ("App",)): AppInfo("connected_app", "App", "App", "0H4A", None,
                                                    "unmanaged", "'App' by its API name"),
        AppRead("connected_app", ("Gone",)): None,
        MetadataRead("Profile", "Integration"): {
            "fullName": "Integration",
            "loginIpRanges": [{"startAddress": "10.0.0.0", "endAddress": "10.0.0.255"}]},
        MetadataRead("RemoteSiteSetting", "Self"): {"fullName": "Self",
                                                     "url": "https://usa1.salesforce.com/x"},
    }
    results[UserRead("nobody@x")] = None
    results[PermissionSetRead("Nope")] = None
    results.update(extra or {})
    return Inventory(results)


def diff(kind: str, **params: Any) -> list[Any]:
    k = kinds()[kind]
    return k.diff(k.params.model_validate(params), inventory(), CTX)


def test_every_kind_has_an_example_that_validates_and_describes_itself() -> None:
    for name, kind in kinds().items():
        assert kind.params.model_validate(kind.example), name
        assert kind.summary and kind.causes, name
        assert isinstance(kind.permissions, tuple), name


def test_client_credentials_off_becomes_a_metadata_set_to_true() -> None:
    [c] = diff("app.client_credentials", app="App")
    assert (c.before, c.after) == (False, True)
    assert c.write == MetadataWrite(type="ConnectedApp", full_name="App",
                                    path="oauthConfig.isClientCredentialEnabled", value=True)


def test_missing_app_is_a_manual_change_of_app_installed_only() -> None:
    [c] = diff("app.installed", app="Gone")
    assert not c.automatic and "not in this org" in (c.manual or "")


def test_other_steps_on_a_missing_app_cannot_be_checked() -> None:
    with pytest.raises(NotFound, match="connected app 'Gone' is not in this org"):
        diff("app.client_credentials", app="Gone")


def test_run_as_user_compares_usernames_case_insensitively() -> None:
    k = kinds()["app.run_as_user"]
    inv = inventory({UserRead("OLD@acme.com"): user(username="old@acme.com")})
    params = k.params.model_validate({"app": "App", "username": "OLD@acme.com"})
    assert k.diff(params, inv, CTX) == []
    [c] = diff("app.run_as_user", app="App", username=USER)
    assert (c.before, c.after) == ("old@acme.com", USER)


def test_run_as_user_that_does_not_exist_is_not_found() -> None:
    with pytest.raises(NotFound, match="no user with username 'nobody@x'"):
        diff("app.run_as_user", app="App", username="nobody@x")


def test_access_grants_the_permission_set_with_a_setup_entity_access_row() -> None:
    [c] = diff("app.access", app="App", via="permission_set", permission_set="PS")
    assert c.after == ["Other_PS", "PS"]
    assert c.write == RecordWrite(sobject="SetupEntityAccess",
                                  fields={"ParentId": "0PSA", "SetupEntityId": "0H4A"})


def test_access_already_granted_through_setup_entity_access_is_ok() -> None:
    k = kinds()["app.access"]
    inv = inventory({PermissionSetRead("PS"): PermissionSetInfo(
        "0PSA", "PS", "PS", None, True, setup_entities=("0H4A",))})
    params = k.params.model_validate({"app": "App", "permission_set": "PS"})
    assert k.diff(params, inv, CTX) == []


def _installed(extra: dict[Any, Any] | None = None) -> Inventory:
    return inventory({AppRead("connected_app", ("App",)): AppInfo(
        "connected_app", "ns__App", "The App", "0H4A", "ns", "installed", "by label"),
        MetadataRead("ConnectedApp", "ns__App"): {
            "fullName": "ns__App", "oauthConfig": {"isAdminApproved": False},
            "oauthPolicy": {"ipRelaxation": "BYPASS"}}, **(extra or {})})


def test_an_installed_apps_policies_are_manual_changes_with_the_setup_path() -> None:
    k = kinds()["app.access"]
    changes = k.diff(k.params.model_validate({"app": "App", "permission_set": "PS"}),
                     _installed(), CTX)
    policy, grant = changes
    assert policy.write is None and policy.field == "oauthConfig.isAdminApproved"
    assert ("Manage Connected Apps → The App → Edit Policies → OAuth Policies → Permitted "
            "Users: Admin approved users are pre-authorized") in (policy.manual or "")
    assert grant.write == RecordWrite(sobject="SetupEntityAccess",
                                      fields={"ParentId": "0PSA", "SetupEntityId": "0H4A"})
    ip = kinds()["app.ip_relaxation"]
    [c] = ip.diff(ip.params.model_validate({"app": "App", "policy": "ENFORCE"}), _installed(),
                  CTX)
    assert c.write is None and "IP Relaxation: 'Enforce IP restrictions'" in (c.manual or "")


def test_the_custom_handler_run_as_is_pluginexecutionuser_and_named_in_setup_terms() -> None:
    k = kinds()["app.run_as_user"]
    [c] = k.diff(k.params.model_validate({"app": "App", "username": USER,
                                          "setting": "custom_handler"}), _installed(), CTX)
    assert c.field == "pluginExecutionUser"
    assert "Custom Connected App Handler → Run As" in (c.manual or "")
    [local] = k.diff(k.params.model_validate({"app": "App", "username": USER,
                                              "setting": "custom_handler"}), inventory(), CTX)
    assert local.write == MetadataWrite(type="ConnectedApp", full_name="App",
                                        path="pluginExecutionUser", value=USER)


def test_access_through_a_profile_that_is_not_named_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="via: profile needs 'profile'"):
        kinds()["app.access"].params.model_validate({"app": "App", "via": "profile"})


def test_wrong_profile_becomes_a_user_update() -> None:
    [c] = diff("user.profile", username=USER, profile="Other")
    assert c.write == RecordWrite(sobject="User", record_id="005A", fields={"ProfileId": "00eB"})
    assert diff("user.profile", username=USER, profile="Integration") == []


def test_missing_permission_set_becomes_an_assignment_insert() -> None:
    [c] = diff("user.permission_set", username=USER, permission_set="PS")
    assert c.write == RecordWrite(sobject="PermissionSetAssignment",
                                  fields={"AssigneeId": "005A", "PermissionSetId": "0PSA"})


def test_unknown_permission_set_is_not_found() -> None:
    with pytest.raises(NotFound, match="no permission set with API name or label 'Nope'"):
        diff("user.permission_set", username=USER, permission_set="Nope")


def test_licence_is_assigned_when_missing_and_left_alone_when_held() -> None:
    [c] = diff("user.license", username=USER, license="Psl")
    assert c.write is not None and c.write.sobject == "PermissionSetLicenseAssign"  # type: ignore[union-attr]
    k = kinds()["user.license"]
    inv = inventory({UserRead(USER): user(licenses=("Psl",))})
    assert k.diff(k.params.model_validate({"username": USER, "license": "Psl"}), inv, CTX) == []


def test_api_enabled_through_a_set_that_lacks_it_needs_a_person() -> None:
    [c] = diff("user.api_enabled", username=USER, permission_set="NoApi")
    assert not c.automatic and "does not grant API Enabled" in (c.manual or "")


def test_api_enabled_needs_the_named_set_even_when_another_grant_gives_it_today() -> None:
    k = kinds()["user.api_enabled"]
    params = k.params.model_validate({"username": USER, "permission_set": "PS"})
    other = user(profile_api_enabled=True,
                 permission_sets=(AssignedSet("0PaA", "0PSZ", "Z", True),))
    [c] = k.diff(params, inventory({UserRead(USER): other}), CTX)
    assert c.write == RecordWrite(sobject="PermissionSetAssignment",
                                  fields={"AssigneeId": "005A", "PermissionSetId": "0PSA"})
    held = user(permission_sets=(AssignedSet("0PaB", "0PSA", "PS", True),))
    assert k.diff(params, inventory({UserRead(USER): held}), CTX) == []


def test_inactive_user_is_reactivated_only_when_allowed() -> None:
    k = kinds()["user.active"]
    inv = inventory({UserRead(USER): user(active=False)})
    [manual] = k.diff(k.params.model_validate({"username": USER}), inv, CTX)
    assert not manual.automatic
    [auto] = k.diff(k.params.model_validate({"username": USER, "allow_reactivation": True}),
                    inv, CTX)
    assert auto.write == RecordWrite(sobject="User", record_id="005A",
                                     fields={"IsActive": True})


def test_missing_package_is_installed_only_with_a_version_id() -> None:
    [manual] = diff("package.installed", namespace="ns")
    assert not manual.automatic
    [auto] = diff("package.installed", namespace="ns", version_id="04tA")
    assert auto.write is not None and auto.write.api == "tooling"


@pytest.mark.parametrize(("url", "flow", "drift"), [
    ("https://acme.my.salesforce.com", "client_credentials", False),
    ("https://login.salesforce.com", "client_credentials", True),
    ("https://usa1.salesforce.com", "client_credentials", True),
    ("https://login.salesforce.com", "jwt_bearer", False),
    ("https://usa1.salesforce.com", "jwt_bearer", True),
])
def test_login_url_must_be_the_my_domain_for_client_credentials(url: str, flow: str,
                                                                drift: bool) -> None:
    found = diff("org.login_url", integration="X", flow=flow, login_url=url)
    assert bool(found) is drift
    assert all(not c.automatic for c in found)


def test_stored_url_is_rebased_on_the_my_domain_keeping_its_path() -> None:
    [c] = diff("org.stored_urls", remote_sites=["Self"])
    assert c.after == "https://acme.my.salesforce.com/x"


def test_login_ip_ranges_adds_only_the_missing_range() -> None:
    [c] = diff("profile.login_ip_ranges", profile="Integration",
               ranges=[{"start": "10.0.0.0", "end": "10.0.0.255"},
                       {"start": "203.0.113.0", "end": "203.0.113.255"}])
    assert c.write is not None
    assert c.write.value == [{"startAddress": "203.0.113.0",  # type: ignore[union-attr]
                              "endAddress": "203.0.113.255"}]


def _eca(policy: dict[str, Any], *, global_settings: bool = True) -> Inventory:
    parts = (("ExtlClntAppOauthSettings", None),
             ("ExtlClntAppGlobalOauthSettings", "E_glbl_by_deploy" if global_settings else None),
             ("ExtlClntAppOauthConfigurablePolicies", "E_oauth_defaultPolicy"))
    return inventory({
        AppRead("external_client_app", ("E",)): AppInfo(
            "external_client_app", "E", "E", "0xIA", None, "unmanaged", "'E' by its API name",
            parts, "Local"),
        MetadataRead("ExtlClntAppGlobalOauthSettings", "E_glbl_by_deploy"): {
            "fullName": "E_glbl_by_deploy", "externalClientApplication": "E",
            "isClientCredentialsFlowEnabled": True},
        MetadataRead("ExtlClntAppOauthConfigurablePolicies", "E_oauth_defaultPolicy"): {
            "fullName": "E_oauth_defaultPolicy", "externalClientApplication": "E", **policy}})


def test_ip_relaxation_maps_to_the_eca_spelling() -> None:
    k = kinds()["app.ip_relaxation"]
    inv = _eca({"ipRelaxationPolicyType": "Enforce"})
    [c] = k.diff(k.params.model_validate({"app": "E", "type": "external_client_app",
                                          "policy": "BYPASS"}), inv, CTX)
    assert c.after == "Bypass"
    assert c.write.full_name == "E_oauth_defaultPolicy"  # type: ignore[union-attr]


def test_an_eca_policy_no_component_names_is_unknown_never_created() -> None:
    k = kinds()["app.ip_relaxation"]
    inv = inventory({AppRead("external_client_app", ("E",)): AppInfo(
        "external_client_app", "E", "E", "0xIA", None, "unmanaged", "", (), "Local")})
    with pytest.raises(NotFound, match="no ExtlClntAppOauthConfigurablePolicies component"):
        k.diff(k.params.model_validate({"app": "E", "type": "external_client_app"}), inv, CTX)


def test_a_local_ecas_unreadable_global_settings_leave_client_credentials_unknown() -> None:
    k = kinds()["app.client_credentials"]
    inv = _eca({"isClientCredentialsFlowEnabled": True}, global_settings=False)
    with pytest.raises(NotFound, match="ExtlClntAppGlobalOauthSettings"):
        k.diff(k.params.model_validate({"app": "E", "type": "external_client_app"}), inv, CTX)


@pytest.mark.parametrize("granted", ["PS", "0PSA", "Other, PS"])
def test_an_eca_grant_in_either_form_of_commaseparatedpermissionset_counts(
        granted: str) -> None:
    k = kinds()["app.access"]
    inv = _eca({"permittedUsersPolicyType": "AdminApprovedPreAuthorized",
                "commaSeparatedPermissionSet": granted})
    params = k.params.model_validate({"app": "E", "type": "external_client_app",
                                      "permission_set": "PS"})
    assert k.diff(params, inv, CTX) == []


def test_an_eca_grant_is_added_in_the_form_the_list_already_uses() -> None:
    k = kinds()["app.access"]
    inv = _eca({"permittedUsersPolicyType": "AdminApprovedPreAuthorized",
                "commaSeparatedPermissionSet": "0PSZ00000000001"})
    params = k.params.model_validate({"app": "E", "type": "external_client_app",
                                      "permission_set": "PS"})
    [c] = k.diff(params, inv, CTX)
    assert c.after == "0PSZ00000000001, 0PSA"


# ---- diagnosis of the 2025-26 token errors (platform-truth.md section 4) -------------------


def test_app_must_be_installed_is_diagnosed_as_c13() -> None:
    from remediate import diagnose

    m = diagnose.match("invalid_client: app must be installed into org")
    assert m is not None and m.causes == ("C13",)


def test_no_valid_scopes_is_diagnosed_as_c14() -> None:
    from remediate import diagnose

    m = diagnose.match("invalid_grant: no valid scopes defined")
    assert m is not None and m.causes == ("C14",)


def test_a_bare_invalid_client_names_both_a_wrong_secret_and_a_blocked_app() -> None:
    from remediate import diagnose

    m = diagnose.match("invalid_client")
    assert m is not None and "C13" in m.causes
    assert "secret" in m.explanation and "not installed" in m.explanation
    wrong_secret = diagnose.match("invalid_client: invalid client credentials")
    assert wrong_secret is not None and wrong_secret.causes == ()
    unknown_app = diagnose.match("invalid_client_id: client identifier invalid")
    assert unknown_app is not None and unknown_app.causes == ("C9",)


def test_copilot_client_credentials_failures_never_point_at_permitted_users() -> None:
    from remediate import diagnose

    m = diagnose.match("Server-to-server authentication failed")
    assert m is not None and "C3" not in m.causes
