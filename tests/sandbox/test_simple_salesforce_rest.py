"""The sandbox's REST and Tooling API driven by unmodified simple-salesforce."""

from __future__ import annotations

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from remediate.sandbox.adapter import session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org

ADMIN = "admin@acme.example.com"
COPILOT = "copilot.integration@acme.example.com"


@pytest.fixture
def admin_sf(sandbox: Sandbox, org: Org) -> Salesforce:
    """Like the shared ``admin_sf`` but REST only: these tests never touch ``sf.mdapi``, and
    skipping ``attach`` saves parsing the Metadata WSDL (about a second) per test."""
    token = org.new_session(_user_id(org, ADMIN), None, ("api",), "test").token
    return Salesforce(session_id=token, instance_url=org.my_domain_url,
                      session=session_for(sandbox))


def _user_id(org: Org, username: str) -> str:
    user = org.user_by_username(username)
    assert user is not None
    return str(user["Id"])


def _permission_set_id(org: Org, name: str) -> str:
    ps = org.permission_set_by_name(name)
    assert ps is not None
    return str(ps["Id"])


def test_query_all_follows_next_records_url_across_pages(sandbox: Sandbox,
                                                          admin_sf: Salesforce) -> None:
    sandbox.page_size = 2
    result = admin_sf.query_all("SELECT Id, Username FROM User ORDER BY Username")
    usernames = [r["Username"] for r in result["records"]]
    assert usernames == sorted(u["Username"] for u in sandbox.org.tables["User"].values())
    assert len(usernames) == 4
    assert result["totalSize"] == 4


def test_query_then_query_more_returns_the_second_page(sandbox: Sandbox,
                                                       admin_sf: Salesforce) -> None:
    sandbox.page_size = 2
    first = admin_sf.query("SELECT Id FROM User")
    assert first["done"] is False
    assert first["totalSize"] == 4
    assert len(first["records"]) == 2
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/01g")
    second = admin_sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["done"] is True
    assert "nextRecordsUrl" not in second
    ids = {r["Id"] for r in first["records"] + second["records"]}
    assert len(ids) == 4


def test_create_and_delete_permission_set_assignment(org: Org, admin_sf: Salesforce) -> None:
    assignee = _user_id(org, COPILOT)
    ps = _permission_set_id(org, "Workato_API_Access")
    created = admin_sf.PermissionSetAssignment.create({"AssigneeId": assignee,
                                                       "PermissionSetId": ps})
    assert created["success"] is True
    assert created["errors"] == []
    assert created["id"].startswith("0Pa")
    assert org.get("PermissionSetAssignment", created["id"]) is not None
    assert admin_sf.PermissionSetAssignment.delete(created["id"]) == 204
    assert org.get("PermissionSetAssignment", created["id"]) is None


def test_duplicate_assignment_raises_malformed_request_with_duplicate_value(
        org: Org, admin_sf: Salesforce) -> None:
    assignee = _user_id(org, COPILOT)
    ps = _permission_set_id(org, "Copilot_for_Sales_Integration")
    with pytest.raises(SalesforceMalformedRequest) as raised:
        admin_sf.PermissionSetAssignment.create({"AssigneeId": assignee, "PermissionSetId": ps})
    error = raised.value.content[0]
    assert error["errorCode"] == "DUPLICATE_VALUE"
    assert error["message"] == (f"Duplicate PermissionSetAssignment. Assignee: {assignee}; "
                                f"Permission Set: {ps}")


def test_restful_composite_sobjects_creates_records_in_order(org: Org,
                                                             admin_sf: Salesforce) -> None:
    assignee = _user_id(org, COPILOT)
    payload = {"allOrNone": False, "records": [
        {"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": assignee,
         "PermissionSetId": _permission_set_id(org, "Workato_API_Access")},
        {"attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": assignee,
         "PermissionSetId": _permission_set_id(org, "Copilot_for_Sales_Integration")},
    ]}
    results = admin_sf.restful("composite/sobjects", method="POST", json=payload)
    assert results[0]["success"] is True
    assert org.get("PermissionSetAssignment", results[0]["id"]) is not None
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"


def test_toolingexecute_query_reads_installed_packages(admin_sf: Salesforce) -> None:
    result = admin_sf.toolingexecute(
        "query/?q=SELECT+Id,SubscriberPackage.Name,SubscriberPackage.NamespacePrefix"
        "+FROM+InstalledSubscriberPackage")
    assert result["totalSize"] == 1
    package = result["records"][0]["SubscriberPackage"]
    assert (package["Name"], package["NamespacePrefix"]) == ("Workato Connector", "workato")


def test_limits_reports_daily_api_requests(org: Org, admin_sf: Salesforce) -> None:
    admin_sf.query("SELECT Id FROM Organization")
    limits = admin_sf.limits()
    assert limits["DailyApiRequests"]["Max"] == 15000
    assert limits["DailyApiRequests"]["Remaining"] == 15000 - 1
    assert admin_sf.api_usage["api-usage"].used == org.api_usage


def test_expired_session_without_credentials_raises_expired_session(sandbox: Sandbox,
                                                                    org: Org) -> None:
    sf = Salesforce(session_id=f"{org.org_id[:15]}!not-a-live-session",
                    instance_url=org.my_domain_url, session=session_for(sandbox))
    with pytest.raises(SalesforceExpiredSession) as raised:
        sf.query("SELECT Id FROM Organization")
    assert raised.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
