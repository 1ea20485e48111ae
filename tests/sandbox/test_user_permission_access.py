"""The sandbox's UserPermissionAccess: the session user's effective permissions, for any user."""

from __future__ import annotations

from urllib.parse import quote

import requests

from remediate.sandbox.state import Org

SOQL = ("SELECT PermissionsApiEnabled, PermissionsModifyAllData, "
        "PermissionsManageProfilesPermissionsets FROM UserPermissionAccess")


def _query(http: requests.Session, org: Org, username: str) -> requests.Response:
    user = org.user_by_username(username)
    assert user is not None
    token = org.new_session(user["Id"], None, ("api",), "test").token
    return http.get(f"{org.my_domain_url}/services/data/v59.0/query/?q={quote(SOQL)}",
                    headers={"Authorization": f"Bearer {token}"})


def test_user_permission_access_answers_one_row_of_the_session_users_permissions(
        http: requests.Session, org: Org) -> None:
    admin = _query(http, org, "admin@acme.example.com").json()["records"]
    assert len(admin) == 1
    assert admin[0]["PermissionsModifyAllData"] is True
    assert admin[0]["PermissionsManageProfilesPermissionsets"] is True


def test_a_user_without_view_setup_reads_its_own_permissions(http: requests.Session,
                                                              org: Org) -> None:
    response = _query(http, org, "jo.sales@acme.example.com")
    assert response.status_code == 200, response.text
    [row] = response.json()["records"]
    assert row["PermissionsApiEnabled"] is True
    assert row["PermissionsModifyAllData"] is False


def test_an_assigned_permission_set_counts(http: requests.Session, org: Org) -> None:
    jo = org.user_by_username("jo.sales@acme.example.com")
    assert jo is not None
    ps = org.insert("PermissionSet", {"Name": "Extra", "Label": "Extra", "IsOwnedByProfile": False,
                                      "PermissionsModifyAllData": True})
    org.insert("PermissionSetAssignment", {"AssigneeId": jo["Id"], "PermissionSetId": ps["Id"]})
    [row] = _query(http, org, "jo.sales@acme.example.com").json()["records"]
    assert row["PermissionsModifyAllData"] is True
