"""``remediate doctor``: through the CLI and the real client stack against sandbox orgs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import registry
from cliharness import lab_config, run, writes

from remediate import doctor
from remediate.builtin import open_on_sandbox
from remediate.salesforce.gateway import Credentials, Gateway, TimeoutSession
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import mount
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread
from remediate.steps.base import kinds

pytestmark = pytest.mark.e2e

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "doctor.schema.json").read_text())
JO = "jo.sales@acme.example.com"  # Standard User: API Enabled and nothing else


def _valid(data: Any) -> None:
    jsonschema.validate(data, SCHEMA)


def test_doctor_on_demo_exits_0_and_lists_every_check() -> None:
    result = run("doctor", "--org", "demo")
    assert result.code == 0, result.out + result.err
    for section in ("sign-in", "api version", "permissions of the signed-in user",
                    "objects, fields and relationships the reads use",
                    "metadata types the reads use", "apps", "limits", "platform probes"):
        assert f"\n{section}" in result.out, section
    assert "client_credentials at https://acme.my.salesforce.com as admin@acme.example.com" \
        in result.out
    assert "Everything remediate needs is there." in result.out
    for fact in ("U5", "A11", "A13", "U4", "A4"):
        assert f" {fact} " in result.out


def test_doctor_json_on_demo_validates_and_reads_every_part() -> None:
    result = run("doctor", "--org", "demo", "--format", "json")
    assert result.code == 0, result.err
    data = result.json()
    _valid(data)
    assert data["ok"] is True and data["missing"] == [] and data["errors"] == []
    assert data["sign_in"]["username"] == "admin@acme.example.com"
    assert data["api_version"]["served"] is True
    assert {a["name"] for a in data["apps"]} >= {"Remediate_Admin", "Copilot_for_Sales", "Workato"}
    assert data["limits"]["DailyApiRequests"]["remaining"] > 0
    perms = {p["permission"]: p for p in data["permissions"]}
    assert perms["PermissionsManageProfilesPermissionsets"]["needed_by"] == _needing(
        "PermissionsManageProfilesPermissionsets", "demo")
    assert all(p["held"] for p in perms.values())
    assert {o["object"] for o in data["objects"]} >= {"User", "Profile", "PermissionSet",
                                                      "Organization"}


def _needing(permission: str, scenario: str) -> list[str]:
    """The bound step kinds that declare ``permission`` (from the registry, not by hand)."""
    return sorted({s.kind.name for s in registry.bound_steps(scenario)
                   if permission in s.kind.permissions})


def test_doctor_is_read_only() -> None:
    run("audit", "--org", "demo")
    before = writes("demo")
    assert run("doctor", "--org", "demo").code == 0
    assert writes("demo") == before


def test_admin_lacking_a_permission_exits_2_naming_the_permission_and_the_step_kinds() -> None:
    result = run("doctor", "--org", "sandbox:admin-lacks-permission")
    assert result.code == 2, result.out + result.err
    line = next(m for m in result.out.splitlines() if "PermissionsManageProfilesPermissionsets"
                in m and m.lstrip().startswith("- "))
    needing = _needing("PermissionsManageProfilesPermissionsets", "admin-lacks-permission")
    assert "app.access" in needing and f"needed by {', '.join(needing)}" in line
    assert "admin@acme.example.com does not hold it" in line
    assert "System Permissions" in line and "Manage Profiles and Permission Sets" in line
    data = run("doctor", "--org", "sandbox:admin-lacks-permission", "--format", "json").json()
    _valid(data)
    assert data["exit_code"] == 2 and len(data["missing"]) == 1
    row = next(p for p in data["permissions"]
               if p["permission"] == "PermissionsManageProfilesPermissionsets")
    assert row["held"] is False and row["exists"] is True


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, str]]:
    sandbox = Sandbox([scenarios.build_org(scenarios.load("healthy"))])
    with serve_in_thread(sandbox) as srv:
        yield srv.url, str(srv.ca_bundle)


def test_doctor_that_cannot_sign_in_exits_1_and_says_so(
        tmp_path: Path, lab: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, ca = lab
    cfg = lab_config(tmp_path, url, ca)
    monkeypatch.setenv("LAB_TOKEN", "00Dnot-a-real-session-token")
    result = run("--config", str(cfg), "doctor", "--org", "lab", "--format", "json")
    assert result.code == 1, result.err
    data = result.json()
    _valid(data)
    assert data["sign_in"]["ok"] is False and "HTTP 401" in data["sign_in"]["error"]
    assert "00Dnot-a-real-session-token" not in result.out + result.err
    text = run("--config", str(cfg), "doctor", "--org", "lab")
    assert text.code == 1 and "Cannot connect" in text.out


def test_doctor_without_org_is_bad_input() -> None:
    result = run("doctor")
    assert result.code == 64
    assert "doctor needs --org" in result.err


# ---- the shipped permission set -----------------------------------------------------------


def test_print_permission_set_prints_the_shipped_file() -> None:
    result = run("doctor", "--print-permission-set")
    assert result.code == 0
    assert result.out == doctor.permission_set_xml()
    assert result.out.startswith("<?xml") and "<PermissionSet" in result.out


def test_shipped_permission_set_grants_every_permission_a_kind_declares() -> None:
    granted = {f"Permissions{p['name']}" for p in doctor.permission_set_component()
               ["userPermissions"] if p["enabled"]}
    declared = {p for kind in kinds().values() for p in kind.permissions}
    assert declared
    assert declared | set(doctor.BASE_PERMISSIONS) <= granted
    assert granted - declared - set(doctor.BASE_PERMISSIONS) == {"PermissionsViewAllData"}


def _gateway_as(sandbox: Sandbox, username: str) -> Gateway:
    org = sandbox.org
    user = org.user_by_username(username)
    assert user is not None
    token = org.new_session(user["Id"], None, ("api",), "test").token
    session = mount(TimeoutSession(), sandbox)
    session.trust_env = False
    return Gateway(Credentials("access_token", org.my_domain_url, access_token=token,
                               instance_url=org.my_domain_url), session=session,
                   org_label=f"org as {username}")


def test_shipped_permission_set_deploys_and_makes_doctor_pass_for_its_user() -> None:
    spec = scenarios.load("healthy")
    sandbox = Sandbox([scenarios.build_org(spec)])
    handle = open_on_sandbox("sandbox:healthy", spec, sandbox)
    admin = handle.gateway
    admin.upsert_metadata("PermissionSet", [doctor.permission_set_component()])  # Metadata API
    deployed = admin.read_metadata("PermissionSet", [doctor.PERMISSION_SET_NAME])[0]
    assert deployed is not None and deployed["label"] == "remediate admin"

    handle.gateway = _gateway_as(sandbox, JO)
    before = doctor.run(handle)
    assert before.exit_code == 2
    assert any("PermissionsModifyAllData" in m and JO in m for m in before.missing)

    jo = admin.query(f"SELECT Id FROM User WHERE Username = '{JO}'")[0]["Id"]
    ps = admin.query("SELECT Id FROM PermissionSet WHERE Name = "
                     f"'{doctor.PERMISSION_SET_NAME}'")[0]["Id"]
    admin.insert_rows("PermissionSetAssignment", [{"AssigneeId": jo, "PermissionSetId": ps}])

    handle.gateway = _gateway_as(sandbox, JO)
    after = doctor.run(handle)
    assert after.missing == [], after.missing
    assert after.exit_code == 0
    assert all(f"permission set {doctor.PERMISSION_SET_NAME}" in p["via"]
               for p in after.permissions if p["permission"] != "PermissionsApiEnabled")
    _valid(after.data())


# ---- doctor checks what the reads really use ------------------------------------------------


@pytest.mark.parametrize("scenario", ["demo", "eca-healthy"])
def test_doctor_checks_every_object_field_and_relationship_an_audit_queries(
        scenario: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.sandbox import schema, soql

    seen: list[str] = []
    real = soql.run

    def recording(text: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(soql, "run", recording)
    spec = scenarios.load(scenario)
    handle = open_on_sandbox(f"sandbox:{scenario}", spec,
                             Sandbox([scenarios.build_org(spec)]))
    from remediate import engine

    engine.assess(handle)
    assert seen
    reads = [r for step in handle.steps for r in step.kind.reads(step.params)]
    needs = doctor.object_needs(reads, [])

    def covered(sobject: str, items: list[Any]) -> None:
        need = needs[sobject]
        obj = schema.OBJECTS[sobject]
        for item in items:
            if isinstance(item, soql.Query):
                assert item.sobject in need.children, (sobject, item.sobject)
                child = next(c.child for c in obj.children if c.name == item.sobject)
                covered(child, item.items)
                continue
            *path, last = item.parts
            current = sobject
            for rel in path:
                assert rel in needs[current].references, (current, rel)
                ref = schema.OBJECTS[current].reference(rel)
                assert ref is not None
                current = ref.target
            assert last in needs[current].fields, (current, last)

    for text in seen:
        query = soql.parse(text)
        covered(query.sobject, query.items)


@pytest.mark.parametrize(("org", "code"), [("demo", 0), ("sandbox:admin-lacks-permission", 2)])
def test_without_user_permission_access_the_profile_and_permission_sets_answer(
        org: str, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.sandbox import schema

    monkeypatch.delitem(schema.OBJECTS, "UserPermissionAccess")  # an org without the object
    data = run("doctor", "--org", org, "--format", "json").json()
    _valid(data)
    assert data["exit_code"] == code, data["missing"]
    upa = next(o for o in data["objects"] if o["object"] == "UserPermissionAccess")
    assert upa["exists"] is False
    row = next(p for p in data["permissions"]
               if p["permission"] == "PermissionsManageProfilesPermissionsets")
    assert row["held"] is (code == 0)


def test_probes_on_an_eca_org_report_policy_names_and_permission_set_form() -> None:
    data = run("doctor", "--org", "sandbox:eca-healthy", "--format", "json").json()
    _valid(data)
    probes = {p["fact"]: p for p in data["probes"] if p["fact"]}
    assert probes["A11"]["settled"] and "Copilot_for_Sales_oauthPlcy (<App>_oauthPlcy)" in \
        probes["A11"]["answer"]
    assert probes["A13"]["settled"] and probes["A13"]["answer"].endswith("holds API names")
    assert probes["U5"]["answer"].startswith("yes: Profile.LoginIpRanges -> LoginIpRange")
    assert {"name": "Copilot_for_Sales", "type": "external_client_app"}.items() <= \
        next(a for a in data["apps"] if a["name"] == "Copilot_for_Sales").items()


def test_probes_on_a_connected_app_org_stay_open_where_there_is_nothing_to_compare() -> None:
    probes = {p["fact"]: p for p in run("doctor", "--org", "demo", "--format", "json")
              .json()["probes"] if p["fact"]}
    assert probes["A11"]["settled"] is False and probes["A13"]["settled"] is False
    assert "nothing to compare" in probes["A11"]["answer"]


def test_a_garbled_app_listing_is_reported_as_unread_not_as_installed_apps() -> None:
    """An answer of another shape to listMetadata is not "no components": doctor says the apps
    could not be read and lists none, instead of calling every app installed."""
    spec = scenarios.load("demo")
    sandbox = Sandbox([scenarios.build_org(spec)])
    sandbox.inject("bad_soap_body", operation="listMetadata")
    report = doctor.run(open_on_sandbox("sandbox:demo", spec, sandbox))
    assert report.apps == []
    assert any(e.startswith("apps: ") and "listing ConnectedApp metadata: unexpected answer"
               in e for e in report.errors), report.errors
