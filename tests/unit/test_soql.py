"""The sandbox SOQL engine, run directly against an org built from the healthy scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediate.sandbox import scenario, soql
from remediate.sandbox.state import Org

V = "/services/data/v59.0"


@pytest.fixture(scope="module")
def org() -> Org:
    """Read-only healthy org shared by the tests that do not change it."""
    return scenario.build_org(scenario.load("healthy"))


@pytest.fixture
def fresh_org() -> Org:
    return scenario.build_org(scenario.load("healthy"))


def records(query: str, org: Org, **kw: Any) -> list[dict[str, Any]]:
    result = soql.run(query, org, **kw)
    assert not result.is_count
    assert result.total_size == len(result.records)
    return result.records


def usernames(query: str, org: Org) -> list[str]:
    return [r["Username"] for r in records(query, org)]


def error(query: str, org: Org, **kw: Any) -> soql.SoqlError:
    with pytest.raises(soql.SoqlError) as info:
        soql.run(query, org, **kw)
    return info.value


ALL_USERS = ["admin@acme.example.com", "copilot.integration@acme.example.com",
             "workato.integration@acme.example.com", "jo.sales@acme.example.com"]


# ---- field list and record shape -----------------------------------------------------------


def test_record_has_attributes_then_selected_fields_in_select_order(org: Org) -> None:
    rec = records("SELECT Username, Id FROM User WHERE Username = 'admin@acme.example.com'",
                  org)[0]
    assert list(rec) == ["attributes", "Username", "Id"]
    assert rec["attributes"] == {"type": "User", "url": f"{V}/sobjects/User/{rec['Id']}"}
    assert len(rec["Id"]) == 18


def test_fields_not_selected_are_absent(org: Org) -> None:
    rec = records("SELECT Id FROM User LIMIT 1", org)[0]
    assert set(rec) == {"attributes", "Id"}


def test_names_and_keywords_are_case_insensitive_and_keys_use_canonical_spelling(
        org: Org) -> None:
    recs = records("select ID, userNAME from USER where ISACTIVE = TRUE order by USERNAME limit 1",
                   org)
    assert list(recs[0]) == ["attributes", "Id", "Username"]
    assert recs[0]["attributes"]["type"] == "User"


def test_version_appears_in_record_urls(org: Org) -> None:
    rec = records("SELECT Id FROM Organization", org, version="62.0")[0]
    assert rec["attributes"]["url"] == f"/services/data/v62.0/sobjects/Organization/{rec['Id']}"


def test_relationship_field_nests_as_object_with_its_own_attributes(org: Org) -> None:
    rec = records("SELECT Id, Profile.Name, Profile.UserType FROM User "
                  "WHERE Username = 'jo.sales@acme.example.com'", org)[0]
    profile = rec["Profile"]
    assert profile["attributes"]["type"] == "Profile"
    assert profile["attributes"]["url"].startswith(f"{V}/sobjects/Profile/00e")
    assert profile["Name"] == "Standard User"
    assert profile["UserType"] == "Standard"
    assert "ProfileId" not in rec


def test_multi_level_relationship_paths_are_followed(org: Org) -> None:
    recs = records("SELECT Assignee.Username, Assignee.Profile.Name FROM PermissionSetAssignment "
                   "WHERE PermissionSet.Name = 'Workato_API_Access'", org)
    assert len(recs) == 1
    assignee = recs[0]["Assignee"]
    assert assignee["Username"] == "workato.integration@acme.example.com"
    assert assignee["Profile"]["Name"] == "Workato Integration"
    assert assignee["Profile"]["attributes"]["type"] == "Profile"


def test_empty_lookup_is_none(org: Org) -> None:
    recs = records("SELECT Parent.Name, Parent.Profile.Name FROM SetupEntityAccess "
                   "WHERE Parent.IsOwnedByProfile = false", org)
    assert recs
    for rec in recs:
        assert rec["Parent"]["Profile"] is None
        assert rec["Parent"]["Name"] == "Copilot_for_Sales_Integration"


def test_profile_permissions_come_from_the_profile_owned_permission_set(fresh_org: Org) -> None:
    query = "SELECT Name, PermissionsApiEnabled FROM Profile ORDER BY Name"
    flags = {r["Name"]: r["PermissionsApiEnabled"] for r in records(query, fresh_org)}
    assert flags["Standard User"] is True
    assert flags["Minimum Access - Salesforce"] is False
    profile = fresh_org.profile_by_name("Standard User")
    assert profile is not None
    owned = fresh_org.profile_permission_set(profile["Id"])
    assert owned is not None
    owned["PermissionsApiEnabled"] = False
    flags = {r["Name"]: r["PermissionsApiEnabled"] for r in records(query, fresh_org)}
    assert flags["Standard User"] is False


def test_profile_permission_reachable_through_user_relationship(org: Org) -> None:
    recs = records("SELECT Username, Profile.PermissionsApiEnabled FROM User "
                   "WHERE Profile.PermissionsApiEnabled = false", org)
    assert [r["Username"] for r in recs] == ["workato.integration@acme.example.com"]
    assert recs[0]["Profile"]["PermissionsApiEnabled"] is False


def test_count_returns_no_records_and_the_count(org: Org) -> None:
    result = soql.run("SELECT COUNT() FROM User WHERE IsActive = true", org)
    assert result == soql.Result([], 4, True)


def test_count_honours_limit(org: Org) -> None:
    assert soql.run("SELECT count() FROM User LIMIT 2", org).total_size == 2


# ---- child subqueries ----------------------------------------------------------------------


def test_child_subquery_nests_query_result_and_is_none_when_empty(org: Org) -> None:
    recs = records("SELECT Username, (SELECT Id, PermissionSet.Name FROM PermissionSetAssignments"
                   " WHERE PermissionSet.IsOwnedByProfile = false) FROM User ORDER BY Username",
                   org)
    by_user = {r["Username"]: r["PermissionSetAssignments"] for r in recs}
    assert by_user["admin@acme.example.com"] is None
    nested = by_user["copilot.integration@acme.example.com"]
    assert nested["totalSize"] == 1
    assert nested["done"] is True
    child = nested["records"][0]
    assert child["attributes"]["type"] == "PermissionSetAssignment"
    assert child["PermissionSet"]["Name"] == "Copilot_for_Sales_Integration"


def test_child_subquery_without_filter_includes_profile_owned_assignment(org: Org) -> None:
    rec = records("SELECT Id, (SELECT PermissionSet.IsOwnedByProfile FROM "
                  "permissionsetassignments ORDER BY PermissionSet.IsOwnedByProfile) FROM User "
                  "WHERE Username = 'copilot.integration@acme.example.com'", org)[0]
    flags = [c["PermissionSet"]["IsOwnedByProfile"]
             for c in rec["PermissionSetAssignments"]["records"]]
    assert flags == [False, True]


def test_child_subquery_honours_limit(org: Org) -> None:
    rec = records("SELECT Id, (SELECT Id FROM PermissionSetAssignments LIMIT 1) FROM User "
                  "WHERE Username = 'copilot.integration@acme.example.com'", org)[0]
    assert rec["PermissionSetAssignments"]["totalSize"] == 1


# ---- WHERE ---------------------------------------------------------------------------------


def test_and_or_not_and_parentheses(org: Org) -> None:
    assert usernames("SELECT Username FROM User WHERE (Username = 'jo.sales@acme.example.com' "
                     "OR Username = 'admin@acme.example.com') AND NOT Profile.Name = "
                     "'Standard User'", org) == ["admin@acme.example.com"]
    assert usernames("SELECT Username FROM User WHERE NOT (IsActive = true)", org) == []


def test_mixing_and_with_or_without_parentheses_is_malformed(org: Org) -> None:
    err = error("SELECT Id FROM User WHERE IsActive = true AND Name = 'x' OR Name = 'y'", org)
    assert (err.code, err.message) == ("MALFORMED_QUERY", "unexpected token: 'OR'")


@pytest.mark.parametrize(("op", "expected"), [
    ("=", ["jo.sales@acme.example.com"]),
    ("!=", ["admin@acme.example.com", "copilot.integration@acme.example.com",
            "workato.integration@acme.example.com"]),
    ("<>", ["admin@acme.example.com", "copilot.integration@acme.example.com",
            "workato.integration@acme.example.com"]),
    ("<", ["admin@acme.example.com", "copilot.integration@acme.example.com"]),
    ("<=", ["admin@acme.example.com", "copilot.integration@acme.example.com",
            "jo.sales@acme.example.com"]),
    (">", ["workato.integration@acme.example.com"]),
    (">=", ["jo.sales@acme.example.com", "workato.integration@acme.example.com"]),
])
def test_comparison_operators_on_strings(org: Org, op: str, expected: list[str]) -> None:
    got = usernames(f"SELECT Username FROM User WHERE Username {op} 'jo.sales@acme.example.com' "
                    "ORDER BY Username", org)
    assert got == expected


def test_string_equality_is_case_insensitive(org: Org) -> None:
    assert usernames("SELECT Username FROM User WHERE Username = 'JO.SALES@ACME.EXAMPLE.COM'",
                     org) == ["jo.sales@acme.example.com"]


def test_numeric_comparisons(org: Org) -> None:
    recs = records("SELECT DeveloperName FROM PermissionSetLicense WHERE TotalLicenses >= 10 "
                   "AND UsedLicenses > 1.5", org)
    assert [r["DeveloperName"] for r in recs] == ["SalesforceAPIIntegrationPsl"]
    assert records("SELECT Id FROM PermissionSetLicense WHERE UsedLicenses < 2", org) == []


def test_like_wildcards_are_case_insensitive(org: Org) -> None:
    assert usernames("SELECT Username FROM User WHERE Username LIKE '%INTEGRATION@%'", org) == [
        "copilot.integration@acme.example.com", "workato.integration@acme.example.com"]
    assert usernames("SELECT Username FROM User WHERE Username LIKE 'j_.sales%'", org) == [
        "jo.sales@acme.example.com"]
    assert usernames("SELECT Username FROM User WHERE Username LIKE 'jo'", org) == []


def test_like_escaped_underscore_matches_only_an_underscore(org: Org) -> None:
    names = [r["Name"] for r in records(
        "SELECT Name FROM PermissionSet WHERE Name LIKE '%\\_API\\_%'", org)]
    assert names == ["Workato_API_Access"]
    assert records("SELECT Name FROM PermissionSet WHERE Name LIKE 'Workato\\_API\\_Acces_'",
                   org)
    assert not records("SELECT Name FROM PermissionSet WHERE Name LIKE 'Workato\\_API\\_Acces\\_'",
                       org)


def test_in_and_not_in_lists(org: Org) -> None:
    assert usernames("SELECT Username FROM User WHERE Profile.Name IN ('Standard User', "
                     "'System Administrator') ORDER BY Username", org) == [
        "admin@acme.example.com", "jo.sales@acme.example.com"]
    assert usernames("SELECT Username FROM User WHERE Profile.Name NOT IN ('Standard User', "
                     "'System Administrator') ORDER BY Username", org) == [
        "copilot.integration@acme.example.com", "workato.integration@acme.example.com"]


def test_semi_join_and_anti_join(org: Org) -> None:
    inner = ("SELECT AssigneeId FROM PermissionSetAssignment "
             "WHERE PermissionSet.Name = 'Copilot_for_Sales_Integration'")
    assert usernames(f"SELECT Username FROM User WHERE Id IN ({inner})", org) == [
        "copilot.integration@acme.example.com"]
    assert "copilot.integration@acme.example.com" not in usernames(
        f"SELECT Username FROM User WHERE Id NOT IN ({inner})", org)
    assert len(usernames(f"SELECT Username FROM User WHERE Id NOT IN ({inner})", org)) == 3


def test_null_comparisons_and_null_fields_satisfy_not_equal(org: Org) -> None:
    assert usernames("SELECT Username FROM User WHERE FirstName = null ORDER BY Username",
                     org) == ["copilot.integration@acme.example.com",
                              "workato.integration@acme.example.com"]
    assert usernames("SELECT Username FROM User WHERE FirstName != null ORDER BY Username",
                     org) == ["admin@acme.example.com", "jo.sales@acme.example.com"]
    # SOQL: a null field is different from every value.
    assert len(usernames("SELECT Username FROM User WHERE FirstName != 'Jo'", org)) == 3
    assert usernames("SELECT Username FROM User WHERE FirstName < 'Z'", org) == [
        "admin@acme.example.com", "jo.sales@acme.example.com"]


def test_string_literal_escapes(fresh_org: Org) -> None:
    fresh_org.insert("PermissionSet", {"Name": "Odd", "Label": "It's a \"quoted\" \\ label",
                                       "IsOwnedByProfile": False})
    recs = records("SELECT Name FROM PermissionSet WHERE Label = 'It\\'s a \\\"quoted\\\" \\\\ "
                   "label'", fresh_org)
    assert [r["Name"] for r in recs] == ["Odd"]


def test_invalid_escape_is_malformed(org: Org) -> None:
    assert error("SELECT Id FROM User WHERE Name = 'a\\qb'", org).code == "MALFORMED_QUERY"


def test_ids_compare_equal_in_15_and_18_character_forms(org: Org) -> None:
    user = org.user_by_username("jo.sales@acme.example.com")
    assert user is not None
    id18 = user["Id"]
    for literal in (id18, id18[:15]):
        assert usernames(f"SELECT Username FROM User WHERE Id = '{literal}'", org) == [
            "jo.sales@acme.example.com"]
        assert usernames(f"SELECT Username FROM User WHERE Id IN ('{literal}')", org) == [
            "jo.sales@acme.example.com"]
    assert len(usernames(f"SELECT Username FROM User WHERE Id != '{id18[:15]}'", org)) == 3
    profile_id = user["ProfileId"]
    assert "jo.sales@acme.example.com" in usernames(
        f"SELECT Username FROM User WHERE ProfileId = '{profile_id[:15]}'", org)


def test_stored_15_character_reference_matches_in_semi_join_and_relationship(
        fresh_org: Org) -> None:
    user = fresh_org.user_by_username("jo.sales@acme.example.com")
    ps = fresh_org.permission_set_by_name("Workato_API_Access")
    assert user is not None and ps is not None
    fresh_org.insert("PermissionSetAssignment", {"AssigneeId": user["Id"][:15],
                                                 "PermissionSetId": ps["Id"][:15]})
    assert usernames("SELECT Username FROM User WHERE Id IN (SELECT AssigneeId FROM "
                     "PermissionSetAssignment WHERE PermissionSet.Name = 'Workato_API_Access') "
                     "ORDER BY Username", fresh_org) == [
        "jo.sales@acme.example.com", "workato.integration@acme.example.com"]
    recs = records("SELECT Assignee.Username FROM PermissionSetAssignment "
                   f"WHERE AssigneeId = '{user['Id']}' AND PermissionSet.IsOwnedByProfile = false",
                   fresh_org)
    assert [r["Assignee"]["Username"] for r in recs] == ["jo.sales@acme.example.com"]


def _login(org: Org, when: str, login_type: str = "Remote Access 2.0") -> None:
    user = org.user_by_username("copilot.integration@acme.example.com")
    assert user is not None
    org.insert("LoginHistory", {"UserId": user["Id"], "LoginTime": when, "LoginType": login_type,
                                "Status": "Success", "SourceIp": "198.51.100.10",
                                "Application": "Copilot_for_Sales"})


@pytest.mark.parametrize("literal", [
    "2026-11-23T10:00:00Z", "2026-11-23T10:00:00+00:00", "2026-11-23T10:00:00.000+0000",
    "2026-11-23T11:00:00+01:00",
])
def test_datetime_literal_forms(fresh_org: Org, literal: str) -> None:
    _login(fresh_org, "2026-11-23T09:59:59.000+0000")
    _login(fresh_org, "2026-11-23T10:00:00.000+0000")
    _login(fresh_org, "2026-11-23T10:00:01.000+0000")
    times = [r["LoginTime"] for r in records(
        f"SELECT LoginTime FROM LoginHistory WHERE LoginTime >= {literal} ORDER BY LoginTime",
        fresh_org)]
    assert times == ["2026-11-23T10:00:00.000+0000", "2026-11-23T10:00:01.000+0000"]
    assert len(records(f"SELECT Id FROM LoginHistory WHERE LoginTime = {literal}",
                       fresh_org)) == 1


def test_date_literals_today_yesterday_last_n_days(fresh_org: Org,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(soql, "_now", lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    _login(fresh_org, "2026-11-23T01:00:00.000+0000")  # today
    _login(fresh_org, "2026-11-22T23:59:59.000+0000")  # yesterday
    _login(fresh_org, "2026-11-20T12:00:00.000+0000")  # three days ago
    _login(fresh_org, "2026-11-10T12:00:00.000+0000")  # thirteen days ago

    def days(where: str) -> list[str]:
        return [r["LoginTime"][:10] for r in records(
            f"SELECT LoginTime FROM LoginHistory WHERE {where} ORDER BY LoginTime DESC",
            fresh_org)]

    assert days("LoginTime = TODAY") == ["2026-11-23"]
    assert days("LoginTime = yesterday") == ["2026-11-22"]
    assert days("LoginTime < YESTERDAY") == ["2026-11-20", "2026-11-10"]
    assert days("LoginTime = LAST_N_DAYS:1") == ["2026-11-23", "2026-11-22"]
    assert days("LoginTime = LAST_N_DAYS:3") == ["2026-11-23", "2026-11-22", "2026-11-20"]
    assert days("LoginTime > LAST_N_DAYS:3") == []
    assert days("LoginTime >= LAST_N_DAYS:30") == ["2026-11-23", "2026-11-22", "2026-11-20",
                                                   "2026-11-10"]


def test_filterable_login_history_fields_can_be_filtered(fresh_org: Org) -> None:
    _login(fresh_org, "2026-11-23T01:00:00.000+0000")
    _login(fresh_org, "2026-11-23T02:00:00.000+0000", login_type="Application")
    recs = records("SELECT Status, SourceIp, Application FROM LoginHistory "
                   "WHERE LoginType = 'Remote Access 2.0'", fresh_org)
    assert [r["Application"] for r in recs] == ["Copilot_for_Sales"]


def test_date_field_compares_with_date_literal(fresh_org: Org) -> None:
    lic = fresh_org.license_by_name("SalesforceAPIIntegrationPsl")
    assert lic is not None
    lic["ExpirationDate"] = "2027-01-31"
    assert records("SELECT Id FROM PermissionSetLicense WHERE ExpirationDate > 2027-01-30",
                   fresh_org)
    assert not records("SELECT Id FROM PermissionSetLicense WHERE ExpirationDate > 2027-01-31",
                       fresh_org)


# ---- ORDER BY, LIMIT, OFFSET ---------------------------------------------------------------


def test_order_by_several_fields_with_directions(org: Org) -> None:
    recs = records("SELECT Username, Profile.UserType, Profile.Name FROM User "
                   "ORDER BY Profile.UserType ASC, Username DESC", org)
    assert [r["Username"] for r in recs] == sorted(ALL_USERS, reverse=True)


def test_order_by_puts_nulls_first_ascending_and_last_descending_by_default(org: Org) -> None:
    assert usernames("SELECT Username FROM User ORDER BY FirstName", org)[:2] == [
        "copilot.integration@acme.example.com", "workato.integration@acme.example.com"]
    assert usernames("SELECT Username FROM User ORDER BY FirstName DESC", org) == [
        "jo.sales@acme.example.com", "admin@acme.example.com",
        "copilot.integration@acme.example.com", "workato.integration@acme.example.com"]


def test_order_by_nulls_last_and_nulls_first(org: Org) -> None:
    assert usernames("SELECT Username FROM User ORDER BY FirstName ASC NULLS LAST, Username",
                     org) == ["admin@acme.example.com", "jo.sales@acme.example.com",
                              "copilot.integration@acme.example.com",
                              "workato.integration@acme.example.com"]
    assert usernames("SELECT Username FROM User ORDER BY FirstName DESC NULLS FIRST, Username",
                     org)[:2] == ["copilot.integration@acme.example.com",
                                  "workato.integration@acme.example.com"]


def test_limit_and_offset(org: Org) -> None:
    ordered = sorted(ALL_USERS)
    assert usernames("SELECT Username FROM User ORDER BY Username LIMIT 2", org) == ordered[:2]
    assert usernames("SELECT Username FROM User ORDER BY Username LIMIT 2 OFFSET 1",
                     org) == ordered[1:3]
    assert usernames("SELECT Username FROM User ORDER BY Username OFFSET 3", org) == ordered[3:]
    assert usernames("SELECT Username FROM User LIMIT 0", org) == []


# ---- Tooling and visibility ----------------------------------------------------------------


def test_tooling_objects_use_tooling_urls(org: Org) -> None:
    rec = records("SELECT Id, SubscriberPackage.NamespacePrefix, SubscriberPackageVersion.Name "
                  "FROM InstalledSubscriberPackage", org, tooling=True)[0]
    assert rec["attributes"]["url"].startswith(f"{V}/tooling/sobjects/InstalledSubscriberPackage/")
    assert rec["SubscriberPackage"]["NamespacePrefix"] == "workato"
    assert rec["SubscriberPackage"]["attributes"]["url"].startswith(
        f"{V}/tooling/sobjects/SubscriberPackage/")
    assert rec["SubscriberPackageVersion"]["Name"] == "2.4.0.1"


def test_tooling_objects_are_unknown_on_the_rest_api(org: Org) -> None:
    err = error("SELECT Id FROM InstalledSubscriberPackage", org)
    assert err.code == "INVALID_TYPE"
    assert err.message.startswith("sObject type 'InstalledSubscriberPackage' is not supported.")


def test_every_object_is_visible_on_the_tooling_api(org: Org) -> None:
    assert records("SELECT Id FROM User", org, tooling=True)[0]["attributes"]["url"].startswith(
        f"{V}/tooling/sobjects/User/")


def test_invisible_object_fails_like_a_missing_one(org: Org) -> None:
    hidden = error("SELECT Id FROM PermissionSet", org, visible=lambda n: n != "PermissionSet")
    missing = error("SELECT Id FROM PermissionSetX", org)
    assert hidden.code == missing.code == "INVALID_TYPE"
    assert hidden.message == missing.message.replace("PermissionSetX", "PermissionSet")


def test_invisible_relationship_target_is_not_understood(org: Org) -> None:
    err = error("SELECT PermissionSet.Name FROM PermissionSetAssignment", org,
                visible=lambda n: n != "PermissionSet")
    assert err.code == "INVALID_FIELD"
    assert err.message.startswith("Didn't understand relationship 'PermissionSet' in field path.")


def test_run_does_not_change_the_org(fresh_org: Org) -> None:
    before = {name: {k: dict(v) for k, v in table.items()}
              for name, table in fresh_org.tables.items()}
    records("SELECT Name, PermissionsApiEnabled, (SELECT Username FROM Users) FROM Profile",
            fresh_org)
    assert fresh_org.tables == before


# ---- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_malformed(org: Org, query: str) -> None:
    err = error(query, org)
    assert (err.code, err.message) == ("MALFORMED_QUERY", "SOQL statements cannot be empty or null")


@pytest.mark.parametrize(("query", "token"), [
    ("SELECT Id FORM User", "FORM"),
    ("SELECT Id FROM User WHERE", "<EOF>"),
    ("SELECT FROM User", "FROM"),
    ("SELECT Id FROM User LIMIT x", "x"),
    ("SELECT Id FROM User WHERE Name = 'a' ORDER Name", "Name"),
    ("SELECT Id FROM User GROUP BY Name", "GROUP"),
    ("SELECT Id FROM User WHERE Name ~ 'a'", "~"),
    ("SELECT COUNT(), Id FROM User", ","),
])
def test_garbled_query_names_the_unexpected_token(org: Org, query: str, token: str) -> None:
    err = error(query, org)
    assert (err.code, err.message) == ("MALFORMED_QUERY", f"unexpected token: '{token}'")


def test_unterminated_string_is_malformed(org: Org) -> None:
    err = error("SELECT Id FROM User WHERE Name = 'abc", org)
    assert err.code == "MALFORMED_QUERY"
    assert "unterminated string" in err.message


@pytest.mark.parametrize("literal", ["2026-13-01T00:00:00Z", "2026-02-30"])
def test_impossible_date_literal_is_malformed(org: Org, literal: str) -> None:
    err = error(f"SELECT Id FROM User WHERE CreatedDate > {literal}", org)
    assert (err.code, err.message[:8]) == ("MALFORMED_QUERY", "invalid ")


def test_unsupported_aggregate_function_is_malformed_and_named(org: Org) -> None:
    err = error("SELECT MAX(LastLoginDate) FROM User", org)
    assert err.code == "MALFORMED_QUERY"
    assert "'MAX'" in err.message


def test_unknown_object_is_invalid_type(org: Org) -> None:
    err = error("SELECT Id FROM Foo", org)
    assert err.code == "INVALID_TYPE"
    assert err.message == (
        "sObject type 'Foo' is not supported. If you are attempting to use a custom object, be "
        "sure to append the '__c' after the entity name. Please reference your WSDL or the "
        "describe call for the appropriate names.")


@pytest.mark.parametrize(("query", "column", "entity"), [
    ("SELECT Id, Foo FROM User", "Foo", "User"),
    ("SELECT Id FROM User WHERE Foo = 'x'", "Foo", "User"),
    ("SELECT Id FROM User ORDER BY Foo", "Foo", "User"),
    ("SELECT Profile.Foo FROM User", "Foo", "Profile"),
    ("SELECT Id, (SELECT Foo FROM PermissionSetAssignments) FROM User", "Foo",
     "PermissionSetAssignment"),
])
def test_unknown_field_is_invalid_field(org: Org, query: str, column: str, entity: str) -> None:
    err = error(query, org)
    assert err.code == "INVALID_FIELD"
    assert err.message == (
        f"No such column '{column}' on entity '{entity}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names.")


def test_unknown_relationship_in_path_is_invalid_field(org: Org) -> None:
    err = error("SELECT Manager.Name FROM User", org)
    assert err.code == "INVALID_FIELD"
    assert err.message.startswith("Didn't understand relationship 'Manager' in field path.")


def test_unknown_child_relationship_is_invalid_type(org: Org) -> None:
    err = error("SELECT Id, (SELECT Id FROM Contacts) FROM User", org)
    assert err.code == "INVALID_TYPE"
    assert err.message.startswith(
        "Didn't understand relationship 'Contacts' in FROM part of query call.")


@pytest.mark.parametrize("field", ["Status", "Application", "SourceIp"])
def test_non_filterable_login_history_field_is_refused_in_where(org: Org, field: str) -> None:
    err = error(f"SELECT Id FROM LoginHistory WHERE {field} = 'x'", org)
    assert (err.code, err.message) == (
        "INVALID_FIELD", f"field '{field}' can not be filtered in a query call")


def test_non_filterable_field_may_still_be_selected(org: Org) -> None:
    assert soql.run("SELECT Status, SourceIp FROM LoginHistory", org).total_size == 0


@pytest.mark.parametrize(("where", "message"), [
    ("IsActive = 'true'", "value of filter criterion for field 'IsActive' must be of type "
                          "boolean and should not be enclosed in quotes"),
    ("Username = 5", "value of filter criterion for field 'Username' must be of type string "
                     "and should be enclosed in quotes"),
    ("LastLoginDate > 5", "value of filter criterion for field 'LastLoginDate' must be of type "
                          "dateTime"),
])
def test_literal_of_wrong_type_is_invalid_field(org: Org, where: str, message: str) -> None:
    err = error(f"SELECT Id FROM User WHERE {where}", org)
    assert (err.code, err.message) == ("INVALID_FIELD", message)


def test_duplicate_field_is_malformed(org: Org) -> None:
    err = error("SELECT Id, Name, id FROM User", org)
    assert (err.code, err.message) == ("MALFORMED_QUERY", "duplicate field selected: id")


def test_semi_join_must_select_one_id_field(org: Org) -> None:
    err = error("SELECT Id FROM User WHERE Id IN (SELECT Name FROM PermissionSet)", org)
    assert err.code == "MALFORMED_QUERY"


def test_error_carries_code_and_message_attributes(org: Org) -> None:
    err = error("SELECT Id FROM Foo", org)
    assert isinstance(err, Exception)
    assert str(err).startswith("INVALID_TYPE: sObject type 'Foo'")


_FRAGMENTS = ["SELECT", "Id", "Name", "Profile.Name", "COUNT()", "FROM", "User", "WHERE", "AND",
              "OR", "NOT", "IN", "LIKE", "=", "<", "!=", "(", ")", ",", "'a%'", "'x", "true",
              "null", "5", "2026-11-23T10:00:00Z", "2026-11-23", "TODAY", "LAST_N_DAYS", ":",
              "ORDER", "BY", "DESC", "NULLS", "LAST", "LIMIT", "OFFSET", "\\", "~", "LoginHistory",
              "Status", "(SELECT Id FROM PermissionSetAssignments)"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=14))
def test_any_token_soup_either_answers_or_raises_soql_error(org: Org, words: list[str]) -> None:
    try:
        soql.run("SELECT Id FROM User WHERE " + " ".join(words), org)
        soql.run(" ".join(words), org)
    except soql.SoqlError as exc:
        assert exc.code in {"MALFORMED_QUERY", "INVALID_FIELD", "INVALID_TYPE"}


def test_a_query_text_is_parsed_once_and_answers_the_same_every_time(
        org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet sends the same queries thousands of times: the tree is kept by text (issue 17)
    and evaluating it again changes neither it nor the answer."""
    tokenized: list[str] = []
    real = soql.tokenize
    def counting(text: str) -> list[soql.Token]:
        tokenized.append(text)
        return real(text)

    monkeypatch.setattr(soql, "tokenize", counting)
    query = ("SELECT Username, (SELECT PermissionSet.Name FROM PermissionSetAssignments) "
             "FROM User WHERE IsActive = true ORDER BY Username LIMIT 5")
    soql._parsed.pop(query, None)
    first = records(query, org)
    second = records(query, org)
    assert first == second and first
    assert tokenized == [query]


def test_rows_a_query_sees_are_copies_down_to_nested_values(fresh_org: Org) -> None:
    user = next(iter(fresh_org.tables["User"].values()))
    user["Nested"] = {"list": [1, 2]}
    seen = next(r for r in fresh_org.rows("User") if r["Id"] == user["Id"])
    seen["Nested"]["list"].append(3)
    seen["Username"] = "changed@example.com"
    assert user["Nested"] == {"list": [1, 2]}
    assert user["Username"] != "changed@example.com"
