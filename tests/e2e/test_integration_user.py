"""The integration user, its profile, permission sets and licences as Salesforce has them
(platform-truth U1-U8): names from the guides, labels as well as API names, licences a profile
change would cross, login IP ranges under a profile's metadata API name, child result pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cliharness import run

from remediate import engine, orgs
from remediate.builtin import open_on_sandbox
from remediate.errors import NotFound, PlaybookError, SalesforceError
from remediate.journal import Journal
from remediate.orgs import OrgHandle
from remediate.plan import Approval, MetadataWrite
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.steps.base import (
    MetadataRead,
    OrgRead,
    PermissionSetRead,
    ProfileRead,
    Read,
    ReadFailed,
    UserRead,
)

pytestmark = pytest.mark.e2e

APPROVAL = Approval(by="test", how="flag", at="2025-01-01T00:00:00+00:00")
COPILOT = "copilot.integration@acme.example.com"
WORKATO = "workato.integration@acme.example.com"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def handle_on(name: str, *, sandbox: Sandbox | None = None,
              bindings: dict[str, dict[str, Any]] | None = None) -> tuple[OrgHandle, Sandbox]:
    spec = scenarios.load(name)
    sandbox = sandbox or Sandbox([scenarios.build_org(spec)])
    handle = open_on_sandbox(f"sandbox:{name}", spec, sandbox)
    if bindings:
        for playbook, values in bindings.items():
            handle.config.playbooks[playbook].update(values)
        handle.steps, handle.digest = orgs.bind_playbooks(handle.config.playbooks, None)
    return handle, sandbox


def status(assessment: engine.Assessment, step: str) -> str:
    [finding] = [f for f in assessment.findings if f.step == step
                 and f.playbook == "copilot-for-sales"] or \
        [f for f in assessment.findings if f.step == step]
    return finding.status


def test_copilot_playbook_defaults_are_the_names_microsofts_guide_gives() -> None:
    variables = yaml.safe_load((PLAYBOOKS / "copilot-for-sales.yaml").read_text())["variables"]
    assert variables["integration_profile"]["default"] == "CopilotForSalesIntegrationProfile"
    assert variables["permission_set"]["default"] == \
        "Copilot for Sales connected app permission set"
    assert variables["license"]["default"] == "Salesforce API Integration"


def test_the_guides_names_bind_on_an_org_whose_profile_and_permission_set_carry_them() -> None:
    """healthy: the profile is named CopilotForSalesIntegrationProfile, the permission set is
    labelled as the guide says (its API name is the org's own), the licence labelled
    'Salesforce API Integration': every default resolves and nothing drifts."""
    handle, _ = handle_on("healthy")
    current = engine.assess(handle)
    for step in ("integration-profile", "api-integration-license", "app-permission-set",
                 "admin-approved-access"):
        assert status(current, step) == "ok", step
    ps = current.inventory.results[
        PermissionSetRead("Copilot for Sales connected app permission set")]
    assert ps.name == "Copilot_for_Sales_Integration"
    profile = current.inventory.results[ProfileRead("CopilotForSalesIntegrationProfile")]
    assert profile.name == "CopilotForSalesIntegrationProfile"


def test_a_label_two_permission_sets_carry_is_an_error_naming_both() -> None:
    handle, sandbox = handle_on("healthy")
    sandbox.org.insert("PermissionSet", {
        "Name": "Copilot_Copy", "Label": "Copilot for Sales connected app permission set",
        "IsCustom": True, "IsOwnedByProfile": False, "ProfileId": None, "LicenseId": None,
        "Type": "Regular", "HasActivationRequired": False})
    with pytest.raises(PlaybookError) as err:
        engine.assess(handle)
    assert "'Copilot for Sales connected app permission set' is the label of 2 permission " \
           "sets (Copilot_Copy, Copilot_for_Sales_Integration)" in err.value.message
    assert err.value.exit_code == 64


def test_an_api_name_wins_over_another_sets_label() -> None:
    handle, sandbox = handle_on("healthy", bindings={
        "copilot-for-sales": {"permission_set": "Copilot_for_Sales_Integration"}})
    sandbox.org.insert("PermissionSet", {
        "Name": "Other", "Label": "Copilot_for_Sales_Integration", "IsCustom": True,
        "IsOwnedByProfile": False, "ProfileId": None, "LicenseId": None, "Type": "Regular",
        "HasActivationRequired": False})
    current = engine.assess(handle)
    assert current.inventory.results[PermissionSetRead("Copilot_for_Sales_Integration")].name \
        == "Copilot_for_Sales_Integration"


def test_a_licence_named_by_developer_name_or_label_resolves_to_the_same_row() -> None:
    handle, _ = handle_on("c6-missing-license", bindings={
        "workato": {}, "copilot-for-sales": {"license": "SalesforceAPIIntegrationPsl"}})
    by_name = engine.assess(handle).plan.automatic
    handle, _ = handle_on("c6-missing-license")
    by_label = engine.assess(handle).plan.automatic
    assert [c.write for c in by_name] == [c.write for c in by_label]
    assert any(c.field == "permission set license SalesforceAPIIntegrationPsl" for c in by_label)


def test_a_profile_of_another_licence_is_a_manual_change_saying_why_and_apply_writes_none(
        tmp_path: Path) -> None:
    handle, sandbox = handle_on("c4-profile-other-license")
    current = engine.assess(handle)
    [change] = [c for c in current.plan.changes if c.kind == "user.profile"]
    assert not change.automatic
    assert change.manual is not None
    assert "belongs to the 'Salesforce Integration' licence" in change.manual
    assert "'Standard User'" in change.manual
    assert "Setup > Users > Users" in change.manual
    before = dict(sandbox.org.user_by_username(WORKATO) or {})
    engine.apply(handle, current, APPROVAL, Journal(tmp_path / "j.jsonl"))
    after = sandbox.org.user_by_username(WORKATO) or {}
    assert after["ProfileId"] == before["ProfileId"]


def test_the_cli_audit_of_a_profile_across_licences_shows_the_manual_change() -> None:
    result = run("audit", "--org", "sandbox:c4-profile-other-license", "--playbook", "workato")
    assert result.code == 2, result.err
    assert "MANUAL" in result.out and "integration-profile" in result.out


def test_a_profile_of_the_same_licence_is_still_written() -> None:
    handle, _ = handle_on("c4-wrong-profile")
    [change] = [c for c in engine.assess(handle).plan.changes if c.kind == "user.profile"]
    assert change.automatic


def test_the_sandbox_refuses_a_profile_change_across_licences() -> None:
    handle, sandbox = handle_on("c4-profile-other-license")
    user = sandbox.org.user_by_username(WORKATO)
    target = sandbox.org.profile_by_name("Workato Integration")
    assert user is not None and target is not None
    with pytest.raises(SalesforceError) as err:
        handle.gateway.update_rows("User", [{"Id": user["Id"], "ProfileId": target["Id"]}])
    assert err.value.code == "FIELD_INTEGRITY_EXCEPTION"
    assert "compatible with the user's license" in err.value.message


def test_login_ip_ranges_of_a_standard_profile_are_written_under_its_api_name(
        tmp_path: Path) -> None:
    """Standard User's metadata API name is Standard (platform-truth U4): the Profile write
    addresses it so, and carries only fullName and loginIpRanges (U3)."""
    handle, sandbox = handle_on("healthy", bindings={"workato": {
        "integration_profile": "Standard User"}})
    current = engine.assess(handle)
    [change] = [c for c in current.plan.automatic if c.kind == "profile.login_ip_ranges"]
    assert isinstance(change.write, MetadataWrite)
    assert change.write.full_name == "Standard"
    sent: list[tuple[str, list[dict[str, Any]]]] = []
    upsert = handle.gateway.upsert_metadata

    def spy(type_: str, components: list[dict[str, Any]]) -> None:
        sent.append((type_, components))
        upsert(type_, components)

    handle.gateway.upsert_metadata = spy  # type: ignore[method-assign]
    engine.apply(handle, current, APPROVAL, Journal(tmp_path / "j.jsonl"),
                 only=lambda c: c.kind == "profile.login_ip_ranges")
    assert [(t, sorted(c)) for t, [c] in sent] == [("Profile", ["fullName", "loginIpRanges"])]
    assert sent[0][1][0]["fullName"] == "Standard"
    profile = sandbox.org.profile_by_name("Standard User")
    assert profile is not None
    ranges = {(r["StartAddress"], r["EndAddress"])
              for r in sandbox.org.find("LoginIpRange", ProfileId=profile["Id"])}
    assert ("203.0.113.0", "203.0.113.255") in ranges
    again = engine.assess(handle)
    assert [f.status for f in again.findings if f.kind == "profile.login_ip_ranges"] == ["ok"]


def test_a_profile_named_by_its_api_name_resolves() -> None:
    handle, _ = handle_on("healthy", bindings={"workato": {"integration_profile": "Standard"}})
    current = engine.assess(handle)
    info = current.inventory.results[ProfileRead("Standard")]
    assert info is not None and info.name == "Standard User"


def test_a_failing_profile_metadata_read_fails_alone() -> None:
    """listMetadata(Profile) answering garbage fails the IP-range read only (U5): the rest of
    the inventory is read, and the step that needs the profile meets NotFound (``unknown``)."""
    handle, sandbox = handle_on("healthy")
    sandbox.inject("bad_soap_body", operation="listMetadata")
    reads: set[Read] = {UserRead(WORKATO), ProfileRead("Workato Integration"),
             MetadataRead("Profile", "Workato Integration"), OrgRead()}
    inv = handle.gateway.fetch(reads)
    assert inv.user(WORKATO, where="w").username == WORKATO
    assert inv.profile("Workato Integration", where="w").name == "Workato Integration"
    assert isinstance(inv.results[MetadataRead("Profile", "Workato Integration")], ReadFailed)
    with pytest.raises(NotFound, match="reading profile 'Workato Integration' failed"):
        inv.metadata("Profile", "Workato Integration", where="w")


def test_a_user_with_more_assignments_than_one_child_page_is_read_whole() -> None:
    handle, sandbox = handle_on("healthy")
    sandbox.child_page_size = 2
    org = sandbox.org
    user = org.user_by_username(COPILOT)
    assert user is not None
    for i in range(5):
        ps = org.insert("PermissionSet", {
            "Name": f"Extra_{i}", "Label": f"Extra {i}", "IsCustom": True,
            "IsOwnedByProfile": False, "ProfileId": None, "LicenseId": None, "Type": "Regular",
            "HasActivationRequired": False})
        org.insert("PermissionSetAssignment", {"AssigneeId": user["Id"],
                                               "PermissionSetId": ps["Id"], "IsActive": True,
                                               "IsRevoked": False})
    current = engine.assess(handle)
    info = current.inventory.results[UserRead(COPILOT)]
    names = {s.name for s in info.permission_sets}
    assert names >= {"Copilot_for_Sales_Integration", *(f"Extra_{i}" for i in range(5))}
    assert status(current, "app-permission-set") == "ok"
    assert sum(1 for r in sandbox.requests if r.operation == "query_more"
               or "/query/" in r.path) >= 1


def _package_handle(monkeypatch: pytest.MonkeyPatch, **package: Any
                    ) -> tuple[OrgHandle, Sandbox, list[str]]:
    spec = scenarios.load("c9-app-not-installed")
    for pkg in spec.packages:
        for key, value in package.items():
            setattr(pkg, key, value)
    sandbox = Sandbox([scenarios.build_org(spec)])
    handle = open_on_sandbox("sandbox:c9", spec, sandbox, only=["workato"])
    lines: list[str] = []
    handle.gateway.progress = lines.append
    return handle, sandbox, lines


def test_a_package_install_that_takes_three_polls_ends_installed_and_verified(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, _, lines = _package_handle(monkeypatch, install_polls=3)
    current = engine.assess(handle)
    engine.apply(handle, current, APPROVAL, Journal(tmp_path / "j.jsonl"),
                 only=lambda c: c.kind == "package.installed")
    assert [line.split(": ")[-1].split(" (")[0] for line in lines] == \
        ["IN_PROGRESS", "IN_PROGRESS", "SUCCESS"]
    after = engine.assess(handle)
    assert [f.status for f in after.findings if f.kind == "package.installed"] == ["ok"]


def test_a_package_install_that_ends_in_error_reports_the_platforms_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.errors import ApplyFailed

    handle, _, _ = _package_handle(monkeypatch, install_polls=2,
                                   install_error="Package version is deprecated.")
    current = engine.assess(handle)
    with pytest.raises(ApplyFailed) as err:
        engine.apply(handle, current, APPROVAL, Journal(tmp_path / "j.jsonl"),
                     only=lambda c: c.kind == "package.installed")
    assert "ended in ERROR: Package version is deprecated." in err.value.message


def test_an_installation_key_comes_from_its_variable_and_is_never_written_down(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    handle, sandbox, lines = _package_handle(monkeypatch, installation_key="s3cr3t-key")
    import dataclasses

    handle.steps = [dataclasses.replace(s, params=s.params.model_copy(
        update={"installation_key_env": "WK_KEY"})) if s.kind.name == "package.installed"
        else s for s in handle.steps]
    current = engine.assess(handle)
    journal = Journal(tmp_path / "j.jsonl")
    from remediate.errors import ApplyFailed

    with pytest.raises(ApplyFailed, match="WK_KEY is not set"):
        engine.apply(handle, current, APPROVAL, journal,
                     only=lambda c: c.kind == "package.installed")
    assert not sandbox.org.rows("PackageInstallRequest")  # nothing written
    monkeypatch.setenv("WK_KEY", "s3cr3t-key")
    engine.apply(handle, engine.assess(handle), APPROVAL, journal,
                 only=lambda c: c.kind == "package.installed")
    assert lines[-1].split(": ")[-1].startswith("SUCCESS")
    assert "s3cr3t-key" not in (tmp_path / "j.jsonl").read_text() + "".join(lines) + \
        current.plan.model_dump_json()
