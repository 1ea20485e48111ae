"""The sandbox's REST and Tooling API over plain requests: status codes and raw bodies."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from remediate.sandbox.app import Sandbox
from remediate.sandbox.ids import to18
from remediate.sandbox.state import Org

ADMIN = "admin@acme.example.com"
COPILOT = "copilot.integration@acme.example.com"
WORKATO = "workato.integration@acme.example.com"
JO = "jo.sales@acme.example.com"
ROLLED_BACK = ("Record rolled back because not all records were valid and the request was "
               "using AllOrNone header")


class Client:
    """A thin REST client for one session: relative paths under /services/data/v59.0."""

    def __init__(self, http: requests.Session, org: Org, token: str) -> None:
        self.http = http
        self.org = org
        self.token = token
        self.root = org.my_domain_url
        self.base = f"{self.root}/services/data/v59.0"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else (
            self.root + path if path.startswith("/services") else f"{self.base}/{path}")
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, url, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.call("POST", path, json=body)

    def patch(self, path: str, body: Any) -> requests.Response:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def query(self, soql: str, tooling: bool = False) -> requests.Response:
        return self.get(("tooling/" if tooling else "") + "query/", params={"q": soql})


def missing_id(prefix: str) -> str:
    """A well-formed id of the prefix's object that the org does not hold."""
    return to18(f"{prefix}000000000999")


def uid(org: Org, username: str) -> str:
    user = org.user_by_username(username)
    assert user is not None
    return str(user["Id"])


def ps_id(org: Org, name: str) -> str:
    ps = org.permission_set_by_name(name)
    assert ps is not None
    return str(ps["Id"])


def profile_set_id(org: Org, profile_name: str) -> str:
    profile = org.profile_by_name(profile_name)
    assert profile is not None
    owned = org.profile_permission_set(profile["Id"])
    assert owned is not None
    return str(owned["Id"])


def psl_id(org: Org) -> str:
    psl = org.license_by_name("SalesforceAPIIntegrationPsl")
    assert psl is not None
    return str(psl["Id"])


def client_for(http: requests.Session, org: Org, username: str) -> Client:
    token = org.new_session(uid(org, username), None, ("api",), "test").token
    return Client(http, org, token)


def plain_permission_set(org: Org, name: str = "Plain_Set", **flags: bool) -> str:
    row = org.insert("PermissionSet", {
        "Name": name, "Label": name, "IsCustom": True, "IsOwnedByProfile": False,
        "ProfileId": None, "LicenseId": None, "Type": "Regular",
        **{f"Permissions{k}": v for k, v in flags.items()}})
    return str(row["Id"])


def assign(org: Org, username: str, permission_set_id: str) -> None:
    org.insert("PermissionSetAssignment", {"AssigneeId": uid(org, username),
                                           "PermissionSetId": permission_set_id,
                                           "IsActive": True, "IsRevoked": False})


@pytest.fixture
def admin(http: requests.Session, org: Org) -> Client:
    return client_for(http, org, ADMIN)


def error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, list) and len(body) == 1
    item: dict[str, Any] = body[0]
    return item


# ---- versions, auth, API enabled ----------------------------------------------------------


def test_versions_list_needs_no_auth_with_or_without_slash(http: requests.Session,
                                                           org: Org) -> None:
    for path in ("/services/data", "/services/data/"):
        response = http.get(org.my_domain_url + path)
        assert response.status_code == 200
        assert {"label": "Winter '24", "url": "/services/data/v59.0",
                "version": "59.0"} in response.json()


def test_version_root_lists_resources(admin: Client) -> None:
    response = admin.get("/services/data/v59.0/")
    assert response.status_code == 200
    assert response.json()["query"] == "/services/data/v59.0/query"
    assert response.json()["tooling"] == "/services/data/v59.0/tooling"


def test_missing_or_unknown_token_is_401_list_body(http: requests.Session, org: Org) -> None:
    url = f"{org.my_domain_url}/services/data/v59.0/limits/"
    for headers in ({}, {"Authorization": "Bearer 00Dnope!nope"}):
        response = http.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json() == [{"message": "Session expired or invalid",
                                    "errorCode": "INVALID_SESSION_ID"}]


def test_oauth_scheme_is_accepted_like_bearer(admin: Client) -> None:
    response = admin.get("limits/", headers={"Authorization": f"OAuth {admin.token}"})
    assert response.status_code == 200


def test_app_session_without_api_scope_is_not_valid_for_rest(http: requests.Session,
                                                             org: Org) -> None:
    token = org.new_session(uid(org, COPILOT), "Copilot_for_Sales", ("id", "refresh_token"),
                            "test").token
    response = Client(http, org, token).get("limits/")
    assert response.status_code == 401
    assert error(response) == {"errorCode": "INVALID_SESSION_ID",
                               "message": "This session is not valid for use with the REST API"}


def test_inactive_users_session_is_invalid(http: requests.Session, org: Org) -> None:
    jo = client_for(http, org, JO)
    org.update("User", uid(org, JO), {"IsActive": False})
    assert error(jo.query("SELECT Id FROM Organization"))["errorCode"] == "INVALID_SESSION_ID"


def test_user_without_api_enabled_gets_403_api_currently_disabled(http: requests.Session,
                                                                  org: Org) -> None:
    org.update("PermissionSet", profile_set_id(org, "Standard User"),
               {"PermissionsApiEnabled": False})
    jo = client_for(http, org, JO)
    for response in (jo.query("SELECT Id FROM Organization"), jo.get("limits/"),
                     jo.get("sobjects/"), jo.query("SELECT Id FROM OrgDomainLog", tooling=True)):
        assert response.status_code == 403
        assert response.json() == [{"message": "API is disabled for this User",
                                    "errorCode": "API_CURRENTLY_DISABLED"}]


def test_minimum_access_user_is_refused_with_api_disabled(http: requests.Session,
                                                          org: Org) -> None:
    profile = org.profile_by_name("Minimum Access - Salesforce")
    assert profile is not None
    org.insert("User", {"Username": "min@acme.example.com", "LastName": "Min",
                        "Email": "min@acme.example.com", "ProfileId": profile["Id"],
                        "IsActive": True})
    response = client_for(http, org, "min@acme.example.com").get("limits/")
    assert response.status_code == 403
    assert error(response)["errorCode"] == "API_CURRENTLY_DISABLED"


# ---- visibility ----------------------------------------------------------------------------


def test_integration_user_without_view_setup_cannot_query_permission_sets(
        http: requests.Session, org: Org) -> None:
    copilot = client_for(http, org, COPILOT)
    response = copilot.query("SELECT Id, Name FROM PermissionSet")
    assert response.status_code == 400
    assert error(response)["errorCode"] == "INVALID_TYPE"
    assert copilot.get(f"sobjects/PermissionSet/{ps_id(org, 'Workato_API_Access')}") \
        .status_code == 404


def test_integration_user_can_query_organization(http: requests.Session, org: Org) -> None:
    response = client_for(http, org, COPILOT).query("SELECT Id, Name FROM Organization")
    assert response.status_code == 200
    assert response.json()["records"][0]["Name"] == "Acme Corporation"


def test_non_admin_sees_only_own_login_history(http: requests.Session, org: Org) -> None:
    for username in (ADMIN, COPILOT):
        org.insert("LoginHistory", {"UserId": uid(org, username), "Status": "Success",
                                    "LoginTime": "2026-01-01T00:00:00.000+0000"})
    own = client_for(http, org, COPILOT).query("SELECT Id, UserId FROM LoginHistory").json()
    assert [r["UserId"] for r in own["records"]] == [uid(org, COPILOT)]
    everyone = client_for(http, org, ADMIN).query("SELECT Id FROM LoginHistory").json()
    assert everyone["totalSize"] == 2


# ---- query ---------------------------------------------------------------------------------


def test_bad_soql_is_400_malformed_query(admin: Client) -> None:
    response = admin.query("SELECT FROM")
    assert response.status_code == 400
    assert error(response)["errorCode"] == "MALFORMED_QUERY"
    assert error(admin.get("query/"))["message"] == "SOQL statements cannot be empty or null"


def test_count_query_returns_size_and_no_records(admin: Client) -> None:
    response = admin.get("query", params={"q": "SELECT COUNT() FROM User"})
    assert response.json() == {"totalSize": 4, "done": True, "records": []}


def test_query_all_resource_answers_like_query(admin: Client) -> None:
    response = admin.get("queryAll/", params={"q": "SELECT Id FROM User"})
    assert response.status_code == 200
    assert response.json()["totalSize"] == 4


def test_paging_serves_every_record_once_then_forgets_the_locator(sandbox: Sandbox,
                                                                  admin: Client) -> None:
    sandbox.page_size = 3
    page = admin.query("SELECT Id FROM PermissionSetAssignment").json()
    total, seen, urls = page["totalSize"], list(page["records"]), []
    while not page["done"]:
        urls.append(page["nextRecordsUrl"])
        page = admin.get(page["nextRecordsUrl"]).json()
        seen += page["records"]
    assert len(seen) == total == len({r["Id"] for r in seen})
    assert len(urls) == (total - 1) // 3
    assert urls[0].endswith("-3")
    again = admin.get(urls[-1])
    assert again.status_code == 400
    assert error(again)["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_tooling_query_pages_under_the_tooling_path(sandbox: Sandbox, admin: Client) -> None:
    sandbox.page_size = 1
    page = admin.query("SELECT Id FROM PermissionSetLicense", tooling=True).json()
    assert page["totalSize"] == 1
    page = admin.query("SELECT Id, Name FROM User", tooling=True).json()
    assert page["nextRecordsUrl"].startswith("/services/data/v59.0/tooling/query/01g")


def test_tooling_query_reads_package_versions_and_domain_log(admin: Client, org: Org) -> None:
    org.insert("OrgDomainLog", {"MyDomainName": "acme-old", "DomainPartition": "none"})
    body = admin.query("SELECT SubscriberPackageVersion.MajorVersion FROM "
                       "InstalledSubscriberPackage", tooling=True).json()
    assert body["records"][0]["SubscriberPackageVersion"]["MajorVersion"] == 2
    logs = admin.query("SELECT MyDomainName FROM OrgDomainLog", tooling=True).json()
    assert [r["MyDomainName"] for r in logs["records"]] == ["acme-old"]


def test_tooling_objects_are_not_on_the_rest_api(admin: Client) -> None:
    response = admin.query("SELECT Id FROM InstalledSubscriberPackage")
    assert error(response)["errorCode"] == "INVALID_TYPE"


# ---- sObject reads -------------------------------------------------------------------------


def test_get_record_with_fields_has_attributes(admin: Client, org: Org) -> None:
    user_id = uid(org, COPILOT)
    response = admin.get(f"sobjects/User/{user_id}", params={"fields": "Username,IsActive"})
    assert response.json() == {
        "attributes": {"type": "User", "url": f"/services/data/v59.0/sobjects/User/{user_id}"},
        "Username": COPILOT, "IsActive": True}


def test_get_profile_record_shows_view_permission_fields(admin: Client, org: Org) -> None:
    profile = org.profile_by_name("System Administrator")
    assert profile is not None
    body = admin.get(f"sobjects/Profile/{profile['Id']}").json()
    assert body["PermissionsModifyAllData"] is True


def test_bad_ids_are_malformed_or_not_found(admin: Client, org: Org) -> None:
    wrong_prefix = admin.get(f"sobjects/PermissionSet/{uid(org, ADMIN)}")
    assert wrong_prefix.status_code == 400
    assert error(wrong_prefix)["errorCode"] == "MALFORMED_ID"
    assert error(wrong_prefix)["message"] == (
        f"PermissionSet ID: id value of incorrect type: {uid(org, ADMIN)}")
    assert error(admin.delete("sobjects/PermissionSet/nonsense"))["errorCode"] == "MALFORMED_ID"
    missing = admin.get(f"sobjects/PermissionSet/{missing_id('0PS')}")
    assert missing.status_code == 404
    assert error(missing) == {"errorCode": "NOT_FOUND",
                              "message": "The requested resource does not exist"}


def test_unknown_type_is_404_not_found(admin: Client) -> None:
    for response in (admin.get("sobjects/Invoice__c/describe"), admin.post("sobjects/Invoice__c/", {}),
                     admin.get("sobjects/Nope/001000000000001AAA")):
        assert response.status_code == 404
        assert error(response)["errorCode"] == "NOT_FOUND"


def test_describe_lists_fields_with_filterable(admin: Client) -> None:
    body = admin.get("sobjects/LoginHistory/describe/").json()
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["Status"]["filterable"] is False
    assert fields["UserId"]["filterable"] is True
    assert body["createable"] is False
    assert admin.get("sobjects/PermissionSetAssignment/describe").json()["createable"] is True


def test_describe_global_hides_setup_objects_from_integration_user(
        http: requests.Session, org: Org, admin: Client) -> None:
    names = {o["name"] for o in admin.get("sobjects/").json()["sobjects"]}
    assert {"PermissionSet", "Organization", "User"} <= names
    assert "InstalledSubscriberPackage" not in names
    limited = {o["name"] for o in client_for(http, org, COPILOT).get("sobjects")
               .json()["sobjects"]}
    assert "Organization" in limited
    assert "PermissionSet" not in limited


def test_limits_reports_remaining_from_api_usage(admin: Client, org: Org) -> None:
    org.api_usage = 100
    body = admin.get("limits/").json()
    assert body["DailyApiRequests"] == {"Max": 15000, "Remaining": 14900}


def test_unsupported_method_is_405(admin: Client) -> None:
    assert admin.call("PUT", "sobjects/PermissionSet/").status_code == 405


# ---- sObject writes and business rules -----------------------------------------------------


def test_create_returns_201_and_stores_defaults(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSet", {"Name": "New_Set", "Label": "New Set",
                                                     "PermissionsApiEnabled": True})
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["errors"] == []
    row = org.get("PermissionSet", body["id"])
    assert row is not None
    assert (row["IsOwnedByProfile"], row["Type"], row["PermissionsViewSetup"]) == \
        (False, "Regular", False)


def test_unknown_field_in_body_is_invalid_field(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSetAssignment/",
                          {"AssigneeId": uid(org, JO), "Bogus__c": 1})
    assert response.status_code == 400
    assert error(response) == {  # recorded traffic: no fields (tests/conformance)
        "errorCode": "INVALID_FIELD",
        "message": "No such column 'Bogus__c' on sobject of type PermissionSetAssignment"}


def test_missing_required_field_names_it(admin: Client) -> None:
    response = admin.post("sobjects/PermissionSetLicenseAssign/", {})
    assert error(response) == {
        "errorCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [AssigneeId, PermissionSetLicenseId]",
        "fields": ["AssigneeId", "PermissionSetLicenseId"]}


def test_read_only_field_cannot_be_written(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSet/", {"Name": "X", "Label": "X",
                                                      "IsOwnedByProfile": True})
    assert error(response)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    patch = admin.patch(f"sobjects/PermissionSet/{ps_id(org, 'Workato_API_Access')}",
                        {"Name": "Renamed"})
    assert error(patch)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_object_without_create_is_refused(admin: Client) -> None:
    response = admin.post("sobjects/LoginHistory/", {"UserId": "005000000000001AAA"})
    assert response.status_code == 400
    assert error(response)["errorCode"] == "INVALID_TYPE_FOR_OPERATION"


def test_patch_and_delete_answer_204(admin: Client, org: Org) -> None:
    set_id = plain_permission_set(org)
    assert admin.patch(f"sobjects/PermissionSet/{set_id}/", {"Label": "Renamed"}) \
        .status_code == 204
    assert org.get("PermissionSet", set_id)["Label"] == "Renamed"  # type: ignore[index]
    response = admin.delete(f"sobjects/PermissionSet/{set_id}")
    assert response.status_code == 204 and response.content == b""
    assert org.get("PermissionSet", set_id) is None


def test_duplicate_assignment_is_duplicate_value(admin: Client, org: Org) -> None:
    assignee, ps = uid(org, COPILOT), ps_id(org, "Copilot_for_Sales_Integration")
    response = admin.post("sobjects/PermissionSetAssignment/",
                          {"AssigneeId": assignee, "PermissionSetId": ps})
    assert response.status_code == 400
    assert error(response)["errorCode"] == "DUPLICATE_VALUE"
    assert error(response)["message"] == (
        f"Duplicate PermissionSetAssignment. Assignee: {assignee}; Permission Set: {ps}")


def test_assignment_needs_the_permission_set_license(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": uid(org, JO), "PermissionSetId": ps_id(org, "Copilot_for_Sales_Integration")})
    assert response.status_code == 400
    assert error(response) == {
        "errorCode": "FIELD_INTEGRITY_EXCEPTION", "fields": ["PermissionSetId"],
        "message": "The user license doesn't allow the permission: API Enabled"}


def test_license_then_permission_set_succeeds(admin: Client, org: Org) -> None:
    jo = uid(org, JO)
    assert admin.post("sobjects/PermissionSetLicenseAssign/", {
        "AssigneeId": jo, "PermissionSetLicenseId": psl_id(org)}).status_code == 201
    assert admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": jo, "PermissionSetId": ps_id(org, "Copilot_for_Sales_Integration")}
    ).status_code == 201


def test_profile_owned_permission_set_cannot_be_assigned(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": uid(org, JO), "PermissionSetId": profile_set_id(org, "Standard User")})
    assert error(response)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_profile_owned_permission_set_cannot_be_updated_or_deleted(admin: Client,
                                                                   org: Org) -> None:
    owned = profile_set_id(org, "Standard User")
    for response in (admin.patch(f"sobjects/PermissionSet/{owned}", {"Label": "x"}),
                     admin.delete(f"sobjects/PermissionSet/{owned}")):
        assert response.status_code == 400
        assert error(response)["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"


def test_assigned_permission_set_cannot_be_deleted(admin: Client, org: Org) -> None:
    response = admin.delete(f"sobjects/PermissionSet/{ps_id(org, 'Workato_API_Access')}")
    assert error(response)["errorCode"] == "DELETE_FAILED"


def test_references_must_exist(admin: Client, org: Org) -> None:
    missing_user = admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": missing_id("005"), "PermissionSetId": ps_id(org, "Workato_API_Access")})
    assert error(missing_user) == {"errorCode": "INVALID_CROSS_REFERENCE_KEY",
                                   "message": "invalid cross reference id",
                                   "fields": ["AssigneeId"]}
    missing_set = admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": uid(org, JO), "PermissionSetId": missing_id("0PS")})
    assert error(missing_set)["fields"] == ["PermissionSetId"]


def test_user_profile_must_exist_on_create_and_update(admin: Client, org: Org) -> None:
    created = admin.post("sobjects/User/", {"Username": "x@acme.example.com", "LastName": "X",
                                            "Email": "x@acme.example.com",
                                            "ProfileId": missing_id("00e")})
    assert error(created)["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    updated = admin.patch(f"sobjects/User/{uid(org, JO)}", {"ProfileId": missing_id("00e")})
    assert error(updated)["fields"] == ["ProfileId"]


def test_new_user_gets_its_profile_permission_set_assignment(admin: Client, org: Org) -> None:
    profile = org.profile_by_name("Standard User")
    assert profile is not None
    response = admin.post("sobjects/User/", {"Username": "new@acme.example.com",
                                             "LastName": "New", "Email": "new@acme.example.com",
                                             "ProfileId": profile["Id"]})
    user_id = response.json()["id"]
    assert org.find("PermissionSetAssignment", AssigneeId=user_id,
                    PermissionSetId=profile_set_id(org, "Standard User"))
    assert org.get("User", user_id)["Name"] == "New"  # type: ignore[index]


def test_license_assignment_counts_used_licenses_and_stops_when_none_left(admin: Client,
                                                                          org: Org) -> None:
    psl = org.get("PermissionSetLicense", psl_id(org))
    assert psl is not None
    used = psl["UsedLicenses"]
    created = admin.post("sobjects/PermissionSetLicenseAssign/",
                         {"AssigneeId": uid(org, JO), "PermissionSetLicenseId": psl["Id"]})
    assert psl["UsedLicenses"] == used + 1
    admin.delete(f"sobjects/PermissionSetLicenseAssign/{created.json()['id']}")
    assert psl["UsedLicenses"] == used
    psl["TotalLicenses"] = used
    refused = admin.post("sobjects/PermissionSetLicenseAssign/",
                         {"AssigneeId": uid(org, JO), "PermissionSetLicenseId": psl["Id"]})
    assert error(refused)["errorCode"] == "LICENSE_LIMIT_EXCEEDED"
    assert psl["UsedLicenses"] == used


def test_duplicate_license_assignment_is_duplicate_value(admin: Client, org: Org) -> None:
    response = admin.post("sobjects/PermissionSetLicenseAssign/",
                          {"AssigneeId": uid(org, COPILOT), "PermissionSetLicenseId": psl_id(org)})
    assert error(response)["errorCode"] == "DUPLICATE_VALUE"
    assert error(response)["message"].startswith("Duplicate PermissionSetLicenseAssign.")


def test_license_still_needed_by_a_permission_set_cannot_be_removed(admin: Client,
                                                                    org: Org) -> None:
    row = org.find_one("PermissionSetLicenseAssign", AssigneeId=uid(org, COPILOT))
    assert row is not None
    response = admin.delete(f"sobjects/PermissionSetLicenseAssign/{row['Id']}")
    assert error(response)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"


def test_setup_entity_access_derives_type_and_refuses_duplicates(admin: Client,
                                                                 org: Org) -> None:
    app = org.connected_application("Workato")
    assert app is not None
    set_id = plain_permission_set(org)
    created = admin.post("sobjects/SetupEntityAccess/",
                         {"ParentId": set_id, "SetupEntityId": app["Id"]})
    assert created.status_code == 201
    row = org.get("SetupEntityAccess", created.json()["id"])
    assert row is not None and row["SetupEntityType"] == "ConnectedApplication"
    again = admin.post("sobjects/SetupEntityAccess/",
                       {"ParentId": set_id, "SetupEntityId": app["Id"]})
    assert error(again)["errorCode"] == "DUPLICATE_VALUE"
    unknown = admin.post("sobjects/SetupEntityAccess/",
                         {"ParentId": set_id, "SetupEntityId": missing_id("0H4")})
    assert error(unknown)["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"


def test_dml_without_manage_users_is_403_insufficient_access(http: requests.Session,
                                                             org: Org) -> None:
    assign(org, JO, plain_permission_set(org, "Setup_Viewer", ViewSetup=True))
    jo = client_for(http, org, JO)
    assert jo.query("SELECT Id FROM PermissionSet").status_code == 200
    response = jo.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": uid(org, JO), "PermissionSetId": ps_id(org, "Workato_API_Access")})
    assert response.status_code == 403
    assert error(response)["errorCode"] == "INSUFFICIENT_ACCESS"


def test_package_install_request_installs_a_known_version(admin: Client, org: Org) -> None:
    package = org.find_one("SubscriberPackage", Name="Workato Connector")
    assert package is not None
    version = org.insert("SubscriberPackageVersion", {
        "Name": "2.5.0.1", "SubscriberPackageId": package["Id"], "MajorVersion": 2,
        "MinorVersion": 5, "PatchVersion": 0, "BuildNumber": 1})
    created = admin.post("tooling/sobjects/PackageInstallRequest/",
                         {"SubscriberPackageVersionKey": version["Id"]})
    assert created.status_code == 201
    status = admin.get(f"tooling/sobjects/PackageInstallRequest/{created.json()['id']}")
    assert status.json()["Status"] == "SUCCESS"
    installed = org.find("InstalledSubscriberPackage", SubscriberPackageId=package["Id"])
    assert [r["SubscriberPackageVersionId"] for r in installed] == [version["Id"]]


def test_package_install_request_with_unknown_version_fails(admin: Client) -> None:
    response = admin.post("tooling/sobjects/PackageInstallRequest/",
                          {"SubscriberPackageVersionKey": missing_id("04t")})
    assert response.status_code == 400
    assert error(response)["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert admin.post("sobjects/PackageInstallRequest/", {}).status_code == 404


# ---- sObject collections -------------------------------------------------------------------


def _psa(org: Org, username: str, set_name: str) -> dict[str, Any]:
    return {"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": uid(org, username),
            "PermissionSetId": ps_id(org, set_name)}


def test_collections_partial_success_without_all_or_none(admin: Client, org: Org) -> None:
    before = len(org.tables["PermissionSetAssignment"])
    response = admin.post("composite/sobjects", {"records": [
        _psa(org, COPILOT, "Workato_API_Access"),
        _psa(org, COPILOT, "Copilot_for_Sales_Integration")]})
    assert response.status_code == 200
    ok, bad = response.json()
    assert ok["success"] is True and ok["id"].startswith("0Pa")
    assert bad == {"success": False, "errors": [{
        "statusCode": "DUPLICATE_VALUE", "fields": [],
        "message": f"Duplicate PermissionSetAssignment. Assignee: {uid(org, COPILOT)}; "
                   f"Permission Set: {ps_id(org, 'Copilot_for_Sales_Integration')}"}]}
    assert len(org.tables["PermissionSetAssignment"]) == before + 1


def test_collections_all_or_none_rolls_everything_back(admin: Client, org: Org) -> None:
    before = len(org.tables["PermissionSetAssignment"])
    response = admin.post("composite/sobjects/", {"allOrNone": True, "records": [
        _psa(org, COPILOT, "Workato_API_Access"),
        _psa(org, JO, "Workato_API_Access")]})
    first, second = response.json()
    assert first["success"] is False
    assert first["errors"] == [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": ROLLED_BACK, "fields": []}]
    assert second["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert len(org.tables["PermissionSetAssignment"]) == before


def test_collections_refuse_more_than_200_records(admin: Client, org: Org) -> None:
    records = [_psa(org, JO, "Workato_API_Access")] * 201
    response = admin.post("composite/sobjects", {"records": records})
    assert response.status_code == 400
    assert error(response)["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_collections_record_without_type_fails_alone(admin: Client, org: Org) -> None:
    response = admin.post("composite/sobjects", {"records": [
        {"AssigneeId": uid(org, JO)}, _psa(org, COPILOT, "Workato_API_Access")]})
    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "INVALID_TYPE"
    assert second["success"] is True


def test_collections_update_delete_and_get(admin: Client, org: Org) -> None:
    a, b = plain_permission_set(org, "Set_A"), plain_permission_set(org, "Set_B")
    updated = admin.patch("composite/sobjects", {"records": [
        {"attributes": {"type": "PermissionSet"}, "id": a, "Label": "A!"},
        {"attributes": {"type": "PermissionSet"}, "id": b, "Name": "nope"}]})
    assert [r["success"] for r in updated.json()] == [True, False]
    fetched = admin.get("composite/sobjects/PermissionSet",
                        params={"ids": f"{a},{missing_id('0PS')}", "fields": "Id,Label"})
    assert fetched.json()[0]["Label"] == "A!"
    assert fetched.json()[1] is None
    deleted = admin.delete("composite/sobjects", params={"ids": f"{a},{b}",
                                                         "allOrNone": "false"})
    assert deleted.json() == [{"id": a, "success": True, "errors": []},
                              {"id": b, "success": True, "errors": []}]
    assert org.get("PermissionSet", a) is None and org.get("PermissionSet", b) is None


def test_collections_delete_all_or_none_keeps_records(admin: Client, org: Org) -> None:
    a = plain_permission_set(org, "Set_A")
    owned = profile_set_id(org, "Standard User")
    response = admin.delete("composite/sobjects", params={"ids": f"{a},{owned}",
                                                          "allOrNone": "true"})
    first, second = response.json()
    assert first["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert second["errors"][0]["statusCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert org.get("PermissionSet", a) is not None


# ---- composite -----------------------------------------------------------------------------


def _sub(method: str, url: str, ref: str, body: Any = None) -> dict[str, Any]:
    sub = {"method": method, "url": f"/services/data/v59.0/{url}", "referenceId": ref}
    if body is not None:
        sub["body"] = body
    return sub


def test_composite_resolves_references_from_earlier_bodies(admin: Client, org: Org) -> None:
    response = admin.post("composite", {"compositeRequest": [
        _sub("GET", f"query/?q=SELECT+Id+FROM+User+WHERE+Username='{JO}'", "jo"),
        _sub("POST", "sobjects/PermissionSet/", "set", {"Name": "Jo_Set", "Label": "Jo Set"}),
        _sub("POST", "sobjects/PermissionSetAssignment/", "psa",
             {"AssigneeId": "@{jo.records[0].Id}", "PermissionSetId": "@{set.id}"}),
        _sub("GET", "sobjects/PermissionSetAssignment/@{psa.id}?fields=AssigneeId", "check"),
    ]})
    assert response.status_code == 200
    parts = response.json()["compositeResponse"]
    assert [p["httpStatusCode"] for p in parts] == [200, 201, 201, 200]
    assert [p["referenceId"] for p in parts] == ["jo", "set", "psa", "check"]
    assert parts[3]["body"]["AssigneeId"] == uid(org, JO)
    assert parts[1]["httpHeaders"]["Location"].endswith(parts[1]["body"]["id"])


def test_composite_all_or_none_rolls_back_and_halts(admin: Client, org: Org) -> None:
    before = {name: len(rows) for name, rows in org.tables.items()}
    response = admin.post("composite", {"allOrNone": True, "collateSubrequests": False,
                                        "compositeRequest": [
        _sub("POST", "sobjects/PermissionSet/", "set", {"Name": "Jo_Set", "Label": "Jo Set"}),
        _sub("POST", "sobjects/PermissionSetAssignment/", "bad",
             {"AssigneeId": uid(org, COPILOT),
              "PermissionSetId": ps_id(org, "Copilot_for_Sales_Integration")}),
        _sub("POST", "sobjects/PermissionSet/", "later", {"Name": "Later", "Label": "Later"}),
    ]})
    first, failed, later = response.json()["compositeResponse"]
    assert first["httpStatusCode"] == 400
    assert first["body"] == [{"errorCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                              "message": ROLLED_BACK}]
    assert failed["body"][0]["errorCode"] == "DUPLICATE_VALUE"
    assert later["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert {name: len(rows) for name, rows in org.tables.items()} == before


def test_composite_collated_by_default_runs_independent_subrequests_out_of_order(
        admin: Client, org: Org) -> None:
    """collateSubrequests defaults to true from API 49.0 and then guarantees no order but
    explicit references ("Composite Request Body"): a client relying on order must say false."""
    def body(collate: bool | None, name: str) -> dict[str, object]:
        subs = [_sub("POST", "sobjects/PermissionSet/", "a", {"Name": name, "Label": name}),
                _sub("GET", f"query/?q=SELECT+Id+FROM+PermissionSet+WHERE+Name='{name}'", "b"),
                _sub("POST", "sobjects/PermissionSetAssignment/", "c",
                     {"AssigneeId": uid(org, JO), "PermissionSetId": "@{a.id}"})]
        return {"compositeRequest": subs} if collate is None else {
            "collateSubrequests": collate, "compositeRequest": subs}

    parts = admin.post("composite", body(None, "Set_A")).json()["compositeResponse"]
    assert [p["referenceId"] for p in parts] == ["a", "b", "c"]  # answered in request order
    assert parts[1]["body"]["totalSize"] == 0  # the query ran before the insert it follows
    assert parts[2]["httpStatusCode"] == 201  # the reference still ran after what it names
    ordered = admin.post("composite", body(False, "Set_B")).json()["compositeResponse"]
    assert ordered[1]["body"]["totalSize"] == 1  # uncollated: in the order received


def test_composite_without_all_or_none_keeps_going(admin: Client, org: Org) -> None:
    response = admin.post("composite", {"compositeRequest": [
        _sub("POST", "sobjects/PermissionSet/", "bad", {"Nope": 1}),
        _sub("POST", "sobjects/PermissionSetAssignment/", "uses_bad",
             {"AssigneeId": uid(org, JO), "PermissionSetId": "@{bad.id}"}),
        _sub("POST", "sobjects/PermissionSet/", "good", {"Name": "Good", "Label": "Good"}),
    ]})
    codes = [p["httpStatusCode"] for p in response.json()["compositeResponse"]]
    assert codes == [400, 400, 201]
    assert org.permission_set_by_name("Good") is not None


def test_composite_refuses_more_than_25_subrequests(admin: Client) -> None:
    subs = [_sub("GET", "limits/", f"r{i}") for i in range(26)]
    response = admin.post("composite", {"compositeRequest": subs})
    assert response.status_code == 400
    assert error(response)["errorCode"] == "LIMIT_EXCEEDED"


def test_composite_counts_as_one_request_and_one_write(sandbox: Sandbox, admin: Client,
                                                       org: Org) -> None:
    sandbox.reset_counters()
    admin.post("composite", {"compositeRequest": [
        _sub("GET", "query/?q=SELECT+Id+FROM+User", "users"),
        _sub("POST", "sobjects/PermissionSet/", "set", {"Name": "S1", "Label": "S1"}),
    ]})
    assert sandbox.counts["total"] == 1
    assert sandbox.writes == 1
    admin.post("composite", {"compositeRequest": [
        _sub("GET", "query/?q=SELECT+Id+FROM+User", "users")]})
    assert sandbox.counts["total"] == 2
    assert sandbox.writes == 1


# ---- write counter -------------------------------------------------------------------------


def test_reads_do_not_count_as_writes(sandbox: Sandbox, admin: Client, org: Org) -> None:
    sandbox.reset_counters()
    admin.query("SELECT Id FROM User")
    admin.get(f"sobjects/User/{uid(org, JO)}")
    admin.get("sobjects/PermissionSet/describe")
    admin.get("limits/")
    admin.get("composite/sobjects/User", params={"ids": uid(org, JO), "fields": "Id"})
    assert sandbox.counts["total"] == 5
    assert sandbox.writes == 0


def test_failed_dml_attempts_count_as_writes(sandbox: Sandbox, admin: Client, org: Org) -> None:
    sandbox.reset_counters()
    admin.post("sobjects/PermissionSetAssignment/", {
        "AssigneeId": uid(org, COPILOT),
        "PermissionSetId": ps_id(org, "Copilot_for_Sales_Integration")})
    admin.delete(f"sobjects/PermissionSet/{missing_id('0PS')}")
    admin.post("composite/sobjects", {"records": [{"attributes": {"type": "Nope"}}]})
    assert sandbox.writes == 3
