"""The unmodified Salesforce CLI works against `remediate sandbox serve` (issue 14).

One served `healthy` org per module; the CLI logs in with `org login access-token` (which
reads /services/oauth2/userinfo and the User record on v51.0), then each test runs one more
command the way a person looking around would. A test fails when the sandbox answers a shape
the CLI cannot read (as it did before: no v51.0, no columns=true, no Metadata retrieve).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sfharness import Served

pytestmark = pytest.mark.e2e

LOOK_AROUND = """<?xml version="1.0" encoding="UTF-8"?>
<PermissionSet xmlns="http://soap.sforce.com/2006/04/metadata">
    <hasActivationRequired>false</hasActivationRequired>
    <label>Look Around</label>
</PermissionSet>
"""


def test_sf_org_login_access_token_reaches_the_org_on_api_51(served: Served) -> None:
    assert served.login is not None
    assert served.login.returncode == 0, served.login.stdout + served.login.stderr
    result = json.loads(served.login.stdout)["result"]
    assert result["orgId"] == served.org_id
    assert result["username"] == "admin@acme.example.com"
    assert result["instanceApiVersion"] == "67.0"


def test_sf_org_display_shows_a_connected_org(served: Served) -> None:
    out = served.sf_json("org", "display", "--target-org", "box")
    assert out["status"] == 0, out
    assert out["result"]["connectedStatus"] == "Connected"
    assert out["result"]["id"] == served.org_id


def test_sf_data_query_prints_relationship_and_child_columns(served: Served) -> None:
    soql = ("SELECT Id, Username, Profile.Name, (SELECT PermissionSet.Name FROM "
            "PermissionSetAssignments) FROM User WHERE Username = "
            "'copilot.integration@acme.example.com'")
    # The human table is built from the columns=true answer: its headers prove it was read.
    table = served.sf_run("data", "query", "--target-org", "box", "--query", soql)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "PROFILE.NAME" in table.stdout
    assert "PERMISSIONSETASSIGNMENTS.PERMISSIONSET.NAME" in table.stdout
    assert "Copilot_for_Sales_Integration" in table.stdout
    out = served.sf_json("data", "query", "--target-org", "box", "--query", soql)
    assert out["result"]["totalSize"] == 1
    assert out["result"]["records"][0]["Profile"]["Name"] == \
        "CopilotForSalesIntegrationProfile"


def test_sf_data_query_on_the_tooling_api_reads_installed_packages(served: Served) -> None:
    out = served.sf_json("data", "query", "--target-org", "box", "--use-tooling-api",
                         "--query", "SELECT Id, SubscriberPackageId FROM "
                                    "InstalledSubscriberPackage")
    assert out["status"] == 0, out
    assert out["result"]["totalSize"] >= 1
    assert out["result"]["records"][0]["Id"].startswith("0A3")


def test_sf_org_list_metadata_lists_the_connected_apps(served: Served) -> None:
    out = served.sf_json("org", "list", "metadata", "--target-org", "box",
                         "--metadata-type", "ConnectedApp")
    assert out["status"] == 0, out
    names = {row["fullName"] for row in out["result"]}
    assert {"Copilot_for_Sales", "Workato"} <= names


def test_sf_retrieve_then_deploy_changes_the_org_and_assign_permset_uses_it(
        served: Served) -> None:
    retrieved = served.sf_json("project", "retrieve", "start", "--target-org", "box",
                               "--metadata", "ConnectedApp:Copilot_for_Sales")
    assert retrieved["status"] == 0, retrieved
    app = served.project / "force-app/main/default/connectedApps/" \
        "Copilot_for_Sales.connectedApp-meta.xml"
    text = app.read_text()
    assert "<permissionSetName>Copilot_for_Sales_Integration</permissionSetName>" in text
    assert "<isClientCredentialEnabled>true</isClientCredentialEnabled>" in text

    folder = served.project / "force-app/main/default/permissionsets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Look_Around.permissionset-meta.xml").write_text(LOOK_AROUND)
    deployed = served.sf_json("project", "deploy", "start", "--target-org", "box",
                              "--metadata", "PermissionSet:Look_Around")
    assert deployed["status"] == 0, deployed
    assert deployed["result"]["success"] is True
    query = served.sf_json("data", "query", "--target-org", "box", "--query",
                           "SELECT Label FROM PermissionSet WHERE Name = 'Look_Around'")
    assert [r["Label"] for r in query["result"]["records"]] == ["Look Around"]

    assigned = served.sf_json("org", "assign", "permset", "--target-org", "box", "--name",
                              "Look_Around", "--on-behalf-of", "jo.sales@acme.example.com")
    assert assigned["status"] == 0, assigned
    assert assigned["result"]["successes"] == [
        {"name": "jo.sales@acme.example.com", "value": "Look_Around"}]
    again = served.sf_json("org", "assign", "permset", "--target-org", "box", "--name",
                           "Look_Around", "--on-behalf-of", "jo.sales@acme.example.com")
    # A second assignment is the platform's duplicate, which the CLI reports as a failure.
    assert again["result"]["failures"], again


def test_remediate_audit_with_sf_cli_auth_reads_the_org_through_the_real_cli(
        served: Served, tmp_path: Path) -> None:
    config = tmp_path / "remediate.toml"
    config.write_text(f"""
[orgs.box]
login_url = "{served.url}"
auth = "sf_cli"
sf_alias = "box"
ca_bundle = "{served.ca_bundle}"

[orgs.box.playbooks.copilot-for-sales]
integration_user = "copilot.integration@acme.example.com"
""")
    env = {**served.env, "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("REMEDIATE_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "remediate", "--config", str(config), "audit",
                           "--org", "box"], capture_output=True, text=True, env=env,
                          cwd=served.project, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "client-credentials-on" in done.stdout
    assert "DRIFT" not in done.stdout
    assert f"Org box ({served.org_id}" in done.stdout
    assert served.token not in done.stdout + done.stderr
