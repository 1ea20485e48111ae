"""Apps as an org has them (issue 9): an app installed from a managed package is found under
its namespaced name or its display name, its policies are manual Setup changes that audit and
verify re-check after a person acts, its grant is a SetupEntityAccess row, and the sandbox
refuses Metadata writes to it. Through the CLI and the real client stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliharness import run, writes

from remediate import engine
from remediate.builtin import open_on_sandbox
from remediate.errors import PlaybookError, SalesforceError
from remediate.playbook import BoundStep
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.steps.base import kinds

pytestmark = pytest.mark.e2e

ORG = "sandbox:managed-app-policies"
APP = "workato__Workato_OAuth_Connector"


def _plan(tmp_path: Path) -> list[dict[str, object]]:
    out = tmp_path / "plan.json"
    result = run("plan", "--org", ORG, "-p", "workato", "--out", str(out))
    assert result.code == 0, result.out + result.err
    return list(json.loads(out.read_text())["changes"])


def test_installed_app_policies_are_manual_with_setup_paths_and_only_the_grant_is_written(
        tmp_path: Path) -> None:
    audit = run("audit", "--org", ORG, "-p", "workato")
    assert audit.code == 2, audit.out + audit.err
    assert "installed from the package with namespace 'workato'" in audit.out
    assert ("Setup → Apps → Connected Apps → Manage Connected Apps → Workato OAuth Connector → "
            "Edit Policies → OAuth Policies → Permitted Users: Admin approved users are "
            "pre-authorized") in audit.out
    assert "IP Relaxation: 'Enforce IP restrictions'" in audit.out
    changes = _plan(tmp_path)
    automatic = [c for c in changes if c["write"] is not None]
    manual = [c for c in changes if c["write"] is None]
    assert [c["field"] for c in manual] == ["oauthConfig.isAdminApproved",
                                            "oauthPolicy.ipRelaxation"]
    assert [c["write"] for c in automatic] == [{
        "api": "rest", "sobject": "SetupEntityAccess", "record_id": None,
        "fields": {"ParentId": automatic[0]["write"]["fields"]["ParentId"],  # type: ignore
                   "SetupEntityId": automatic[0]["write"]["fields"]["SetupEntityId"]}}]  # type: ignore

    written = writes(ORG)
    applied = run("apply", "--org", ORG, "-p", "workato", "--yes")
    assert applied.code == 2, applied.out + applied.err  # 2: changes still need a person
    assert "Applied 1 change(s)" in applied.out
    assert writes(ORG) == written + 1  # one request: the SetupEntityAccess insert
    before = run("verify", "--org", ORG, "-p", "workato")
    assert before.code != 0, before.out
    assert "NOT verified" in before.out + before.err

    changed = run("sandbox", "setup-change", "--org", ORG, "--app", APP,
                  "--set", "permitted_users=admin_approved", "--set", "ip_relaxation=ENFORCE")
    assert changed.code == 0, changed.out + changed.err
    after = run("verify", "--org", ORG, "-p", "workato")
    assert after.code == 0, after.out + after.err
    assert "Verified." in after.out


def test_a_metadata_write_to_the_managed_app_is_refused_by_the_sandbox() -> None:
    spec = scenarios.load("managed-app-policies")
    sandbox = Sandbox([scenarios.build_org(spec)])
    handle = open_on_sandbox("managed", spec, sandbox)
    try:
        with pytest.raises(SalesforceError) as caught:
            handle.gateway.upsert_metadata("ConnectedApp", [{
                "fullName": APP, "label": "Workato OAuth Connector",
                "contactEmail": "admin@example.com",
                "oauthConfig": {"callbackUrl": "https://localhost/callback",
                                "isAdminApproved": True}}])
    finally:
        handle.close()
    assert "Cannot modify managed object: entity=ConnectedApp" in caught.value.message
    stored = sandbox.org.metadata["ConnectedApp"][APP]
    assert stored["oauthConfig"]["isAdminApproved"] is False


def test_the_app_is_found_by_its_display_name_and_the_finding_says_where_it_came_from(
        ) -> None:
    result = run("audit", "--org", ORG, "-p", "workato", "--json")
    findings = {f["step"]: f for f in result.json()["findings"]}
    assert findings["app-installed"]["status"] == "ok"
    assert "workato__Workato_OAuth_Connector" in json.dumps(findings["admin-approved-access"])


def test_setup_change_of_an_app_the_org_does_not_have_is_refused_with_exit_64() -> None:
    result = run("sandbox", "setup-change", "--org", ORG, "--app", "Nope",
                 "--set", "permitted_users=admin_approved")
    assert result.code == 64
    assert "no connected app 'Nope'" in result.err


def _assess_app_step(**params: object) -> engine.Assessment:
    spec = scenarios.load("managed-app-policies")
    sandbox = Sandbox([scenarios.build_org(spec)])
    for name in ("Copilot_for_Sales", "Remediate_Admin"):
        sandbox.org.metadata["ConnectedApp"][name]["label"] = "Twin"
    handle = open_on_sandbox("managed", spec, sandbox)
    kind = kinds()["app.installed"]
    handle.steps = [BoundStep("bad", "app-step", kind, "C9", kind.params.model_validate(params),
                              "")]
    try:
        return engine.assess(handle)
    finally:
        handle.close()


def test_an_app_name_that_matches_nothing_is_a_finding_naming_step_and_names() -> None:
    finding = _assess_app_step(app="Nope", candidates=["Also Nope"]).findings[0]
    assert finding.status == "manual"
    text = finding.changes[0].manual or ""
    assert "playbook 'bad', step 'app-step'" in text
    assert "'Nope', 'Also Nope'" in text


def test_a_namespace_no_app_of_the_org_has_is_named_in_the_finding() -> None:
    finding = _assess_app_step(app="Workato OAuth Connector", namespace="nope").findings[0]
    assert "in namespace 'nope' (no connected app of the org is in that namespace)" in \
        (finding.changes[0].manual or "")


def test_a_name_matching_several_apps_is_bad_input_naming_them() -> None:
    with pytest.raises(PlaybookError) as caught:
        _assess_app_step(app="Twin")
    assert "playbook 'bad', step 'app-step'" in caught.value.message
    assert "Copilot_for_Sales, Remediate_Admin" in caught.value.message
    assert caught.value.exit_code == 64


def test_the_installed_app_is_found_by_namespace_and_short_api_name() -> None:
    assessment = _assess_app_step(app="Workato_OAuth_Connector", namespace="workato")
    assert assessment.findings[0].status == "ok"


def test_a_setup_change_of_a_field_that_is_not_a_policy_is_refused_with_exit_64() -> None:
    result = run("sandbox", "setup-change", "--org", ORG, "--app", APP, "--set", "label=x")
    assert result.code == 64
    assert "'label' is not a policy" in result.err


def test_a_bare_invalid_client_with_the_app_in_the_org_is_the_secret() -> None:
    result = run("diagnose", "--org", "sandbox:healthy", "--error", "invalid_client")
    assert result.code == 0, result.err
    assert "consumer secret is wrong" in result.out
    assert "C13:" not in result.out and "C9:" not in result.out


def test_a_bare_invalid_client_with_the_app_missing_is_c13_confirmed_by_the_audit() -> None:
    result = run("diagnose", "--org", "sandbox:c13-uninstalled-app-blocked", "--error",
                 "invalid_client")
    assert result.code == 0, result.err
    assert "  C13: " in result.out
    assert "workato/uninstalled-app-allowed [C13]" in result.out


def test_c13_is_fixed_by_assigning_the_named_permission_set_and_the_block_is_gone() -> None:
    org = "sandbox:c13-uninstalled-app-blocked"
    applied = run("apply", "--org", org, "-p", "workato", "--yes")
    assert "PermissionSetAssignment Approve_Uninstalled_Apps" in applied.out
    verified = run("verify", "--org", org, "-p", "workato")
    # past the block; nobody approved Workato's own app in this org (JWT needs approval)
    assert "FAILED: invalid_client: app must be installed into org" not in verified.out
    assert "FAILED: invalid_grant: user hasn't approved this consumer" in verified.out
