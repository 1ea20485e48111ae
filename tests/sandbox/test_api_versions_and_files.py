"""Every path serves API 31.0 .. 67.0, an org can be held a release behind (max_api_version),
query?columns=true describes the select list, and the Metadata API's file-based calls
(retrieve, deploy) round-trip a zip through the org state."""

from __future__ import annotations

import base64
import io
import zipfile

import requests

from remediate.sandbox import packages
from remediate.sandbox.app import API_VERSIONS, api_versions, release_name
from remediate.sandbox.state import Org
from tests.conftest import admin_token


def _get(http: requests.Session, org: Org, path: str) -> requests.Response:
    return http.get(f"{org.my_domain_url}{path}",
                    headers={"Authorization": f"Bearer {admin_token(org)}"})


def test_versions_run_from_31_to_67_with_release_names() -> None:
    assert API_VERSIONS[0] == "31.0" and API_VERSIONS[-1] == "67.0"
    assert len(API_VERSIONS) == 37
    assert release_name("31.0") == "Summer '14"
    assert release_name("51.0") == "Spring '21"
    assert release_name("59.0") == "Winter '24"
    assert release_name("67.0") == "Summer '26"


def test_services_data_lists_every_version_and_v51_answers_queries(
        http: requests.Session, org: Org) -> None:
    listed = [v["version"] for v in _get(http, org, "/services/data/").json()]
    assert listed == list(API_VERSIONS)
    answer = _get(http, org, "/services/data/v51.0/query?q=SELECT+Id+FROM+Organization")
    assert answer.status_code == 200
    assert _get(http, org, "/services/data/v31.0/tooling/query?q=SELECT+Id+FROM+"
                           "InstalledSubscriberPackage").status_code == 200


def test_max_api_version_hides_later_versions(http: requests.Session, org: Org) -> None:
    org.max_api_version = "62.0"
    assert api_versions("62.0")[-1] == "62.0"
    listed = [v["version"] for v in _get(http, org, "/services/data/").json()]
    assert listed[-1] == "62.0"
    assert _get(http, org, "/services/data/v63.0/limits").status_code == 404
    assert _get(http, org, "/services/data/v62.0/limits").status_code == 200


def test_columns_true_describes_relationship_and_child_columns(
        http: requests.Session, org: Org) -> None:
    soql = ("SELECT Id, Profile.Name, (SELECT PermissionSetId FROM PermissionSetAssignments) "
            "FROM User")
    body = _get(http, org, f"/services/data/v51.0/query?q={soql}&columns=true").json()
    assert body["entityName"] == "User" and body["idSelected"] is True
    cols = body["columnMetadata"]
    assert [c["columnName"] for c in cols] == ["Id", "Profile", "PermissionSetAssignments"]
    assert cols[1]["joinColumns"][0]["displayName"] == "Profile.Name"
    assert cols[2]["aggregate"] is True
    assert cols[2]["joinColumns"][0]["columnName"] == "PermissionSetId"
    assert "records" not in body


def test_retrieve_zips_the_component_and_deploy_applies_a_changed_file(org: Org) -> None:
    started = packages.retrieve(org, {"unpackaged": {"types": [
        {"members": ["Workato_API_Access"], "name": "PermissionSet"}]}, "apiVersion": "67.0"})
    assert started["done"] is False and started["id"].startswith("09S")
    result = packages.check_retrieve_status(org, started["id"], include_zip=True)
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(result["zipFile"])))
    assert sorted(archive.namelist()) == [
        "unpackaged/package.xml", "unpackaged/permissionsets/Workato_API_Access.permissionset"]
    text = archive.read("unpackaged/permissionsets/Workato_API_Access.permissionset").decode()
    changed = text.replace("<label>Workato API Access</label>", "<label>Changed</label>")
    assert changed != text
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("package.xml", archive.read("unpackaged/package.xml"))
        z.writestr("permissionsets/Workato_API_Access.permissionset", changed)
    job = packages.deploy(org, base64.b64encode(out.getvalue()).decode(), {})
    status = packages.check_deploy_status(org, job["id"], include_details=True)
    assert status["success"] is True and status["numberComponentsDeployed"] == 1
    labels = [r["Label"] for r in org.rows("PermissionSet") if r["Name"] == "Workato_API_Access"]
    assert labels == ["Changed"]


def test_deploy_with_a_failing_component_rolls_back_the_others(org: Org) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("package.xml", '<Package xmlns="http://soap.sforce.com/2006/04/metadata"/>')
        z.writestr("permissionsets/New_Set.permissionset",
                   '<PermissionSet xmlns="http://soap.sforce.com/2006/04/metadata">'
                   "<label>New</label></PermissionSet>")
        z.writestr("profiles/No_Such_Profile.profile",
                   '<Profile xmlns="http://soap.sforce.com/2006/04/metadata"/>')
    job = packages.deploy(org, base64.b64encode(out.getvalue()).decode(), {})
    status = packages.check_deploy_status(org, job["id"], include_details=True)
    assert status["success"] is False and status["status"] == "Failed"
    assert status["details"]["componentFailures"][0]["fullName"] == "No_Such_Profile"
    assert not [r for r in org.rows("PermissionSet") if r["Name"] == "New_Set"]
