"""The composite resource as one transaction (REST API Developer Guide, "Composite Request
Body"; "allOrNone Parameters in Composite and Collections Requests"; "Create Records Using
sObject Collections"), and the sandbox's switch for the undocumented fact of whether a
permission set assignment sees a licence assigned by an earlier subrequest
(``Org.licence_in_composite``, docs/sandbox.md)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from test_rest import COPILOT, Client, client_for, psl_id, uid

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org

SET = "Copilot_for_Sales_Integration"  # requires the API integration licence (demo: not held)


@pytest.fixture
def demo() -> tuple[Sandbox, Org]:
    sandbox = Sandbox([scenarios.build_org(scenarios.load("demo"))])
    return sandbox, sandbox.org


def _client(demo: tuple[Sandbox, Org]) -> tuple[Client, Org]:
    sandbox, org = demo
    http: requests.Session = session_for(sandbox)
    return client_for(http, org, "admin@acme.example.com"), org


def _pair(client: Client, org: Org, *, third: dict[str, Any] | None = None) -> Any:
    user = uid(org, COPILOT)
    ps = org.permission_set_by_name(SET)
    assert ps is not None and ps.get("LicenseId")
    url = "/services/data/v59.0/composite/sobjects"
    subs = [
        {"method": "POST", "url": url, "referenceId": "licence", "body": {"allOrNone": True,
         "records": [{"attributes": {"type": "PermissionSetLicenseAssign"},
                      "AssigneeId": user, "PermissionSetLicenseId": psl_id(org)}]}},
        {"method": "POST", "url": url, "referenceId": "assignment", "body": {"allOrNone": True,
         "records": [{"attributes": {"type": "PermissionSetAssignment"},
                      "AssigneeId": user, "PermissionSetId": ps["Id"]}]}},
        *([third] if third else [])]
    answer = client.post("composite", {"allOrNone": True, "collateSubrequests": False,
                                       "compositeRequest": subs})
    assert answer.status_code == 200
    return answer.json()["compositeResponse"]


def _codes(part: dict[str, Any]) -> list[str]:
    body = part["body"]
    out = []
    for item in body if isinstance(body, list) else []:
        out += [e["statusCode"] for e in item.get("errors") or []] if "errors" in item else \
            [item.get("errorCode")]
    return out


def _held(org: Org) -> int:
    return len([a for a in org.find("PermissionSetLicenseAssign")
                if str(a["AssigneeId"])[:15] == uid(org, COPILOT)[:15]])


def test_an_assignment_sees_the_licence_an_earlier_subrequest_assigned(
        demo: tuple[Sandbox, Org]) -> None:
    client, org = _client(demo)
    lic, psa = _pair(client, org)
    assert lic["httpStatusCode"] == 200 and psa["httpStatusCode"] == 200
    assert all(r["success"] for part in (lic, psa) for r in part["body"])
    assert _held(org) == 1


def test_on_the_other_reading_the_assignment_is_refused_and_all_is_rolled_back(
        demo: tuple[Sandbox, Org]) -> None:
    client, org = _client(demo)
    org.licence_in_composite = False
    lic, psa = _pair(client, org)
    assert _codes(psa) == ["FIELD_INTEGRITY_EXCEPTION"]
    assert _codes(lic) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert _held(org) == 0  # the composite's allOrNone overrode nothing committed


def test_a_licence_held_before_the_composite_counts_on_either_reading(
        demo: tuple[Sandbox, Org]) -> None:
    client, org = _client(demo)
    org.licence_in_composite = False
    client.post("composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "PermissionSetLicenseAssign"},
         "AssigneeId": uid(org, COPILOT), "PermissionSetLicenseId": psl_id(org)}]})
    ps = org.permission_set_by_name(SET)
    assert ps is not None
    answer = client.post("composite", {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/composite/sobjects",
         "referenceId": "a", "body": {"allOrNone": True, "records": [
             {"attributes": {"type": "PermissionSetAssignment"},
              "AssigneeId": uid(org, COPILOT), "PermissionSetId": ps["Id"]}]}}]})
    assert answer.json()["compositeResponse"][0]["body"][0]["success"] is True


def test_a_failing_later_subrequest_rolls_back_both_and_halts_nothing_before_it(
        demo: tuple[Sandbox, Org]) -> None:
    client, org = _client(demo)
    bad = {"method": "POST", "url": "/services/data/v59.0/composite/sobjects",
           "referenceId": "bad", "body": {"allOrNone": True, "records": [
               {"attributes": {"type": "PermissionSetLicenseAssign"},
                "AssigneeId": uid(org, COPILOT), "PermissionSetLicenseId": "0PL000000000999"}]}}
    lic, psa, third = _pair(client, org, third=bad)
    assert _codes(lic) == _codes(psa) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert _codes(third) and _codes(third)[0] != "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert _held(org) == 0


def test_one_collections_create_may_not_mix_two_setup_objects(
        demo: tuple[Sandbox, Org]) -> None:
    client, org = _client(demo)
    ps = org.permission_set_by_name(SET)
    assert ps is not None
    answer = client.post("composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "PermissionSetLicenseAssign"},
         "AssigneeId": uid(org, COPILOT), "PermissionSetLicenseId": psl_id(org)},
        {"attributes": {"type": "PermissionSetAssignment"},
         "AssigneeId": uid(org, COPILOT), "PermissionSetId": ps["Id"]}]})
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "MIXED_DML_OPERATION"
    assert _held(org) == 0
