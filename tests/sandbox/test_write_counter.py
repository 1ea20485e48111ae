"""The org's write counter (``Org.generation``, docs/adr/0047) moves on every change, however it
is made, so the permission checks kept for one generation (``Org.derived``) are never stale.

Each write kind the sandbox serves is made between two reads of a user's permissions through
the wire (``UserPermissionAccess``, answered by the cached ``access.has_permission``): the first
read fills the cache, the second must show the change. Writes that do not change a permission
(a package install, a licence) show their change through the read they affect.
"""

from __future__ import annotations

import base64
import copy
import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
import requests
from test_rest import ADMIN, JO, Client, client_for, plain_permission_set, psl_id, uid

from remediate.sandbox import access, packages
from remediate.sandbox.state import Org, TrackedDict, TrackedList

MD_NS = "http://soap.sforce.com/2006/04/metadata"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
FLAGS = "SELECT PermissionsModifyAllData, PermissionsViewAllData FROM UserPermissionAccess"
#: An admin's view of the permission tables, answered from the shared query rows.
TABLES = ("SELECT Name, PermissionsModifyAllData, PermissionsViewAllData, "
          "(SELECT AssigneeId FROM Assignments) FROM PermissionSet ORDER BY Name")


def _flags(jo: Client) -> dict[str, bool]:
    """Jo's effective permissions, read through the REST query path (the cached checks)."""
    response = jo.query(FLAGS)
    assert response.status_code == 200, response.text
    [row] = response.json()["records"]
    return {"ModifyAllData": row["PermissionsModifyAllData"],
            "ViewAllData": row["PermissionsViewAllData"]}


def _metadata(http: requests.Session, org: Org, operation: str, inner: str) -> str:
    """One Metadata API call over SOAP on an admin session; the answer's text."""
    token = org.new_session(uid(org, ADMIN), None, ("api",), "test").token
    body = (f'<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="{SOAP_NS}" '
            f'xmlns:met="{MD_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<env:Header><met:SessionHeader><met:sessionId>{token}</met:sessionId>"
            "</met:SessionHeader></env:Header>"
            f"<env:Body><met:{operation}>{inner}</met:{operation}></env:Body></env:Envelope>")
    response = http.post(f"{org.my_domain_url}/services/Soap/m/59.0/", data=body.encode(),
                         headers={"Content-Type": "text/xml; charset=utf-8",
                                  "SOAPAction": '""'})
    assert response.status_code == 200, response.text
    assert "<success>true</success>" in response.text, response.text
    return response.text


def _permission_set_xml(name: str, flag: str) -> str:
    return (f'<met:metadata xsi:type="met:PermissionSet"><met:fullName>{name}</met:fullName>'
            f"<met:label>{name}</met:label><met:userPermissions><met:enabled>true</met:enabled>"
            f"<met:name>{flag}</met:name></met:userPermissions></met:metadata>")


class World:
    """The healthy org with Jo holding ``Held_Set`` (View All Data) and an unassigned
    ``Spare_Set`` (Modify All Data), an admin client and Jo's client."""

    def __init__(self, http: requests.Session, org: Org) -> None:
        self.http, self.org = http, org
        self.held = plain_permission_set(org, "Held_Set", ViewAllData=True)
        self.spare = plain_permission_set(org, "Spare_Set", ModifyAllData=True)
        self.held_assignment = org.insert("PermissionSetAssignment", {
            "AssigneeId": uid(org, JO), "PermissionSetId": self.held, "IsActive": True,
            "IsRevoked": False})["Id"]
        self.admin = client_for(http, org, ADMIN)
        self.jo = client_for(http, org, JO)

    def jo_assignment(self, permission_set_id: str) -> dict[str, Any]:
        return {"AssigneeId": uid(self.org, JO), "PermissionSetId": permission_set_id}


@pytest.fixture
def world(http: requests.Session, org: Org) -> World:
    return World(http, org)


def _ok(response: requests.Response) -> None:
    assert response.status_code < 300, response.text


# ---- the writes: each returns the permissions Jo must hold after it ---------------------------

def rest_create(w: World) -> dict[str, bool]:
    _ok(w.admin.post("sobjects/PermissionSetAssignment/", w.jo_assignment(w.spare)))
    return {"ModifyAllData": True, "ViewAllData": True}


def rest_update(w: World) -> dict[str, bool]:
    _ok(w.admin.patch(f"sobjects/PermissionSet/{w.held}", {"PermissionsViewAllData": False}))
    return {"ModifyAllData": False, "ViewAllData": False}


def rest_delete(w: World) -> dict[str, bool]:
    _ok(w.admin.delete(f"sobjects/PermissionSetAssignment/{w.held_assignment}"))
    return {"ModifyAllData": False, "ViewAllData": False}


def rest_user_profile_change(w: World) -> dict[str, bool]:
    profile = w.org.profile_by_name("System Administrator")
    assert profile is not None
    _ok(w.admin.patch(f"sobjects/User/{uid(w.org, JO)}", {"ProfileId": profile["Id"]}))
    return {"ModifyAllData": True, "ViewAllData": True}


def composite(w: World) -> dict[str, bool]:
    answer = w.admin.post("composite", {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/PermissionSetAssignment",
         "referenceId": "grant", "body": w.jo_assignment(w.spare)}]})
    _ok(answer)
    assert answer.json()["compositeResponse"][0]["httpStatusCode"] == 201, answer.text
    return {"ModifyAllData": True, "ViewAllData": True}


def collections_create(w: World) -> dict[str, bool]:
    answer = w.admin.post("composite/sobjects", {"allOrNone": True, "records": [
        {"attributes": {"type": "PermissionSetAssignment"}, **w.jo_assignment(w.spare)}]})
    _ok(answer)
    assert answer.json()[0]["success"] is True, answer.text
    return {"ModifyAllData": True, "ViewAllData": True}


def collections_delete(w: World) -> dict[str, bool]:
    answer = w.admin.delete("composite/sobjects", params={"ids": w.held_assignment})
    _ok(answer)
    assert answer.json()[0]["success"] is True, answer.text
    return {"ModifyAllData": False, "ViewAllData": False}


def metadata_update_profile(w: World) -> dict[str, bool]:
    _metadata(w.http, w.org, "updateMetadata",
              '<met:metadata xsi:type="met:Profile"><met:fullName>Standard</met:fullName>'
              "<met:userPermissions><met:enabled>true</met:enabled>"
              "<met:name>ModifyAllData</met:name></met:userPermissions></met:metadata>")
    return {"ModifyAllData": True, "ViewAllData": True}


def metadata_upsert_permission_set(w: World) -> dict[str, bool]:
    _metadata(w.http, w.org, "upsertMetadata", _permission_set_xml("Held_Set", "ModifyAllData"))
    return {"ModifyAllData": True, "ViewAllData": True}


def metadata_delete_permission_set(w: World) -> dict[str, bool]:
    _metadata(w.http, w.org, "deleteMetadata",
              "<met:type>PermissionSet</met:type><met:fullNames>Held_Set</met:fullNames>")
    return {"ModifyAllData": False, "ViewAllData": False}


def metadata_deploy(w: World) -> dict[str, bool]:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("package.xml", f'<Package xmlns="{MD_NS}"/>')
        z.writestr("permissionsets/Spare_Set.permissionset",
                   f'<PermissionSet xmlns="{MD_NS}"><label>Spare_Set</label><userPermissions>'
                   "<enabled>false</enabled><name>ModifyAllData</name></userPermissions>"
                   "</PermissionSet>")
        z.writestr("permissionsets/Held_Set.permissionset",
                   f'<PermissionSet xmlns="{MD_NS}"><label>Held_Set</label><userPermissions>'
                   "<enabled>true</enabled><name>ModifyAllData</name></userPermissions>"
                   "</PermissionSet>")
    job = packages.deploy(w.org, base64.b64encode(out.getvalue()).decode(), {})
    status = packages.check_deploy_status(w.org, job["id"], include_details=True)
    assert status["success"] is True, status
    return {"ModifyAllData": True, "ViewAllData": True}


def in_place_row_change(w: World) -> dict[str, bool]:
    """A test or fault hook changing a row ``Org.get`` handed out, with no Org.update."""
    row = w.org.get("PermissionSet", w.spare)
    assert row is not None
    row["PermissionsModifyAllData"] = False
    held = w.org.get("PermissionSet", w.held)
    assert held is not None
    held.update(PermissionsModifyAllData=True)
    return {"ModifyAllData": True, "ViewAllData": True}


def in_place_table_change(w: World) -> dict[str, bool]:
    del w.org.tables["PermissionSetAssignment"][w.held_assignment]
    return {"ModifyAllData": False, "ViewAllData": False}


def rolled_back_composite(w: World) -> dict[str, bool]:
    """An allOrNone composite whose second part fails: the first part's grant is undone."""
    answer = w.admin.post("composite", {"allOrNone": True, "compositeRequest": [
        {"method": "POST", "url": "/services/data/v59.0/sobjects/PermissionSetAssignment",
         "referenceId": "grant", "body": w.jo_assignment(w.spare)},
        {"method": "DELETE", "referenceId": "gone",
         "url": f"/services/data/v59.0/sobjects/PermissionSetAssignment/{w.held_assignment}"},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/PermissionSet",
         "referenceId": "bad", "body": {"Name": "No label"}}]})
    _ok(answer)
    assert answer.json()["compositeResponse"][2]["httpStatusCode"] == 400, answer.text
    return {"ModifyAllData": False, "ViewAllData": True}


PERMISSION_WRITES: list[Callable[[World], dict[str, bool]]] = [
    rest_create, rest_update, rest_delete, rest_user_profile_change, composite,
    collections_create, collections_delete, metadata_update_profile,
    metadata_upsert_permission_set, metadata_delete_permission_set, metadata_deploy,
    in_place_row_change, in_place_table_change, rolled_back_composite,
]


@pytest.mark.parametrize("write", PERMISSION_WRITES, ids=lambda f: f.__name__)
def test_a_permission_read_after_each_write_kind_sees_the_write(
        world: World, write: Callable[[World], dict[str, bool]]) -> None:
    assert _flags(world.jo) == {"ModifyAllData": False, "ViewAllData": True}
    assert access.is_admin(world.org, uid(world.org, JO)) is False  # cached now too
    tables = world.admin.query(TABLES).json()
    before = world.org.generation
    expected = write(world)
    assert world.org.generation > before
    assert _flags(world.jo) == expected
    assert access.is_admin(world.org, uid(world.org, JO)) is expected["ModifyAllData"]
    answered = world.admin.query(TABLES).json()
    world.org.touch()  # nothing kept: the same query answered from the tables themselves
    assert answered == world.admin.query(TABLES).json()
    if write is not rolled_back_composite:
        assert answered != tables


def test_a_query_bound_for_one_session_is_not_reused_for_a_session_that_may_not_see_it(
        world: World) -> None:
    soql = "SELECT Id, Name FROM PermissionSet"
    assert world.admin.query(soql).status_code == 200
    refused = world.jo.query(soql)
    assert refused.status_code == 400 and refused.json()[0]["errorCode"] == "INVALID_TYPE"
    granted = world.admin.post("sobjects/PermissionSetAssignment/", world.jo_assignment(
        plain_permission_set(world.org, "Setup_Viewer", ViewSetup=True)))
    _ok(granted)
    assert world.jo.query(soql).status_code == 200
    _ok(world.admin.delete(f"sobjects/PermissionSetAssignment/{granted.json()['id']}"))
    assert world.jo.query(soql).status_code == 400


def test_shared_query_rows_refuse_changes_and_copies_of_them_are_plain(org: Org) -> None:
    [row, *_] = org.query_rows("User")
    for change in (lambda r: r.__setitem__("LastName", "x"), lambda r: r.update(LastName="x"),
                   lambda r: r.pop("LastName"), lambda r: r.clear(),
                   lambda r: r.setdefault("New", 1), lambda r: r.__delitem__("LastName")):
        with pytest.raises(TypeError, match="read-only"):
            change(row)
    assert type(copy.deepcopy(row)) is dict and type(copy.copy(row)) is dict
    assert org.query_rows("User")[0] is row  # shared until the next change
    org.touch()
    assert org.query_rows("User")[0] is not row


def test_a_metadata_create_moves_the_counter_and_the_new_set_is_assignable(
        world: World) -> None:
    _flags(world.jo)
    before = world.org.generation
    _metadata(world.http, world.org, "createMetadata",
              _permission_set_xml("Made_Set", "ModifyAllData"))
    assert world.org.generation > before
    made = world.org.permission_set_by_name("Made_Set")
    assert made is not None
    _ok(world.admin.post("sobjects/PermissionSetAssignment/", world.jo_assignment(made["Id"])))
    assert _flags(world.jo)["ModifyAllData"] is True


def test_a_licence_assigned_then_removed_is_seen_by_each_read(world: World) -> None:
    org, jo = world.org, uid(world.org, JO)
    assert access.holds_license(org, jo, psl_id(org)) is False
    before = org.generation
    created = world.admin.post("sobjects/PermissionSetLicenseAssign/", {
        "AssigneeId": jo, "PermissionSetLicenseId": psl_id(org)})
    _ok(created)
    assert org.generation > before
    assert access.holds_license(org, jo, psl_id(org)) is True
    before = org.generation
    _ok(world.admin.delete(f"sobjects/PermissionSetLicenseAssign/{created.json()['id']}"))
    assert org.generation > before
    assert access.holds_license(org, jo, psl_id(org)) is False


def test_a_tooling_package_install_moves_the_counter(world: World) -> None:
    org = world.org
    package = org.find_one("SubscriberPackage", Name="Workato Connector")
    assert package is not None
    version = org.insert("SubscriberPackageVersion", {
        "Name": "2.5.0.1", "SubscriberPackageId": package["Id"], "MajorVersion": 2,
        "MinorVersion": 5, "PatchVersion": 0, "BuildNumber": 1})
    soql = "SELECT SubscriberPackageVersionId FROM InstalledSubscriberPackage"
    first = world.admin.query(soql, tooling=True).json()["records"]
    before = org.generation
    _ok(world.admin.post("tooling/sobjects/PackageInstallRequest/",
                         {"SubscriberPackageVersionKey": version["Id"]}))
    assert org.generation > before
    before = org.generation
    world.admin.get("tooling/query/", params={"q": "SELECT Status FROM PackageInstallRequest"})
    assert org.generation > before  # a poll advances the install: a change too
    after = world.admin.query(soql, tooling=True).json()["records"]
    assert version["Id"] in [r["SubscriberPackageVersionId"] for r in after]
    assert after != first


def test_reads_leave_the_counter_and_the_memo_alone(world: World) -> None:
    _flags(world.jo)
    before, memo = world.org.generation, world.org.derived()
    assert memo  # filled by the read
    _flags(world.jo)
    world.admin.query("SELECT Id, Name FROM PermissionSet")
    world.org.get("PermissionSet", world.held)
    world.org.rows("Profile")
    world.org.snapshot()
    assert world.org.generation == before
    assert world.org.derived() is memo


def test_a_sign_in_or_a_counted_call_is_not_a_configuration_change(world: World) -> None:
    org = world.org
    before = org.generation
    org.new_session(uid(org, JO), None, ("api",), "test")
    org.count_api_call()
    org.open_cursor([], 0)
    assert org.generation == before


# ---- the containers: every mutating method counts ------------------------------------------


def _dict_mutations() -> list[Callable[[dict[str, Any]], object]]:
    return [lambda d: d.__setitem__("k", 1), lambda d: d.__delitem__("a"),
            lambda d: d.update(k=1), lambda d: d.setdefault("k", 1), lambda d: d.pop("a"),
            lambda d: d.popitem(), lambda d: d.clear(), lambda d: d.__ior__({"k": 1})]


def _list_mutations() -> list[Callable[[list[Any]], object]]:
    return [lambda v: v.__setitem__(0, 9), lambda v: v.__setitem__(slice(0, 1), [9]),
            lambda v: v.__delitem__(0), lambda v: v.append(9), lambda v: v.extend([9]),
            lambda v: v.insert(0, 9), lambda v: v.pop(), lambda v: v.remove(1),
            lambda v: v.clear(), lambda v: v.sort(), lambda v: v.reverse(),
            lambda v: v.__iadd__([9]), lambda v: v.__imul__(2)]


def test_every_dict_and_list_method_that_changes_state_is_counted() -> None:
    mutating = {"__setitem__", "__delitem__", "__ior__", "update", "setdefault", "pop",
                "popitem", "clear"}
    assert mutating <= set(TrackedDict.__dict__)
    assert {"__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
            "insert", "pop", "remove", "clear", "sort", "reverse"} <= set(TrackedList.__dict__)


@pytest.mark.parametrize("change", range(len(_dict_mutations())))
def test_a_change_to_a_stored_component_at_any_depth_moves_the_counter(org: Org,
                                                                       change: int) -> None:
    org.metadata.setdefault("RemoteSiteSetting", {})["Probe"] = {
        "fullName": "Probe", "nested": {"a": 1, "b": 2}, "items": [1, 2, 3]}
    stored = org.metadata["RemoteSiteSetting"]["Probe"]
    before = org.generation
    _dict_mutations()[change](stored["nested"])
    assert org.generation > before


@pytest.mark.parametrize("change", range(len(_list_mutations())))
def test_a_change_to_a_list_inside_a_stored_value_moves_the_counter(org: Org,
                                                                    change: int) -> None:
    org.metadata.setdefault("RemoteSiteSetting", {})["Probe"] = {
        "fullName": "Probe", "items": [3, 1, 2]}
    stored = org.metadata["RemoteSiteSetting"]["Probe"]["items"]
    before = org.generation
    _list_mutations()[change](stored)
    assert org.generation > before


def test_a_scenario_switch_or_a_replaced_table_moves_the_counter(org: Org) -> None:
    before = org.generation
    org.licence_in_composite = False
    assert org.generation > before
    before = org.generation
    org.tables["LoginIpRange"] = {}
    org.tables["LoginIpRange"]["x"] = {"Id": "x"}
    assert org.generation > before + 1
    before = org.generation
    org.passwords[uid(org, JO)] = "changed"
    assert org.generation > before


def test_copies_of_stored_rows_are_plain_and_changing_them_changes_nothing(org: Org) -> None:
    row = org.get("User", uid(org, JO))
    assert row is not None
    before = org.generation
    for duplicate in (copy.copy(row), copy.deepcopy(row), dict(row), org.snapshot().tables):
        assert type(duplicate) is dict
    mine = copy.deepcopy(row)
    mine["LastName"] = "Changed"
    assert org.generation == before
    assert row["LastName"] == "Sales"


def test_a_deep_copy_of_an_org_counts_its_own_changes_and_keeps_no_memo(world: World) -> None:
    _flags(world.jo)
    twin = copy.deepcopy(world.org)
    assert type(twin.tables["PermissionSetAssignment"]) is TrackedDict
    assert twin.derived() == {}
    before, original = twin.generation, world.org.generation
    del twin.tables["PermissionSetAssignment"][world.held_assignment]
    assert twin.generation > before and world.org.generation == original
    assert access.has_permission(twin, uid(twin, JO), "ViewAllData") is False
    assert access.has_permission(world.org, uid(world.org, JO), "ViewAllData") is True
