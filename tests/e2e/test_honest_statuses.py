"""Never claim what was not checked (issue 11): statuses ok/drift/manual/unknown through the CLI,
each step reporting its own status, verify naming every integration, snapshot refusing drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cliharness import run

from remediate import builtin, orgs
from remediate.builtin import sandbox_state_path
from remediate.sandbox import persist

pytestmark = pytest.mark.e2e
C9 = "sandbox:c9-app-not-installed"


def test_steps_on_a_missing_app_are_unknown_and_only_app_installed_reports_it() -> None:
    result = run("audit", "--org", C9)
    assert result.code == 2, result.err
    assert "MANUAL app-installed [C9]" in result.out
    assert "UNKNOWN admin-approved-access [C3]" in result.out
    assert "UNKNOWN ip-relaxation [C11]" in result.out
    assert "UNKNOWN session-policy [C16]" in result.out
    assert "not checked: playbook 'workato', step 'ip-relaxation': the connected app " \
           "'Workato' is not in this org" in result.out
    assert "3 could not be checked." in result.out


def test_json_audit_never_says_ok_for_a_step_that_was_not_checked() -> None:
    result = run("audit", "--org", C9, "--format", "json")
    assert result.code == 2
    data = result.json()
    by_step = {(f["playbook"], f["step"]): f for f in data["findings"]}
    for step in ("admin-approved-access", "ip-relaxation", "session-policy"):
        f = by_step[("workato", step)]
        assert f["status"] == "unknown" and f["checked"] is False
        assert "'Workato' is not in this org" in f["reason"]
    assert by_step[("workato", "app-installed")]["status"] == "manual"
    assert all(f["checked"] for f in data["findings"] if f["status"] == "ok")
    assert data["summary"]["unknown"] == 3 and data["clean"] is False


def test_markdown_audit_shows_unknown_steps_with_the_reason() -> None:
    result = run("audit", "--org", C9, "--format", "markdown")
    assert "| workato | ip-relaxation | C11 | unknown | not checked: playbook 'workato'" \
        in result.out
    assert "3 could not be checked." in result.out


def test_plan_names_the_steps_it_could_not_check() -> None:
    result = run("plan", "--org", C9, "--detailed-exitcode")
    assert result.code == 2
    assert "3 step(s) could not be checked (the plan may be incomplete):" in result.out
    assert "? workato/ip-relaxation: playbook 'workato'" in result.out


def test_a_check_shared_by_two_playbooks_drifts_under_both_and_is_planned_once(
        tmp_path: Path) -> None:
    org = "sandbox:healthy"
    out = tmp_path / "baseline.yaml"
    assert run("snapshot", "--org", org, "--out", str(out)).code == 0
    path = sandbox_state_path("healthy")
    state, extra = persist.load(path)
    state.metadata["ConnectedApp"]["Workato"]["oauthPolicy"]["ipRelaxation"] = "BYPASS"
    persist.save(path, state, extra)
    # both the workato playbook and the baseline pin the app's IP relaxation at ENFORCE
    audit = run("audit", "--org", org, "--playbook", "workato", "--playbook", str(out),
                "--format", "json")
    assert audit.code == 2
    drifting = [(f["playbook"], f["kind"]) for f in audit.json()["findings"]
                if f["status"] == "drift"]
    assert ("baseline", "app.ip_relaxation") in drifting
    assert ("workato", "app.ip_relaxation") in drifting
    plan = run("plan", "--org", org, "--playbook", "workato", "--playbook", str(out),
               "--format", "json")
    relax = [c for c in plan.json()["changes"] if c["kind"] == "app.ip_relaxation"]
    assert len(relax) == 1


def test_verify_without_sign_in_is_not_verified_unless_reread_only() -> None:
    org = "sandbox:healthy"
    assert run("verify", "--org", org).code == 0
    result = run("verify", "--org", org, "--reread-only")
    assert result.code == 0
    assert "Sign-in not tried (--reread-only)" in result.out
    assert "Token request for" not in result.out


def test_a_token_answer_without_an_access_token_is_a_failed_sign_in_naming_the_endpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened = builtin.open_on_sandbox

    def with_fault(*args: Any, **kwargs: Any) -> orgs.OrgHandle:
        handle = opened(*args, **kwargs)
        # the first token request is remediate's own sign-in; the second an integration's
        handle.sandbox.inject("bad_soap_body", api="oauth", operation="token", calls=2)
        return handle

    monkeypatch.setattr(builtin, "open_on_sandbox", with_fault)
    result = run("verify", "--org", "sandbox:healthy")
    assert result.code == 4, result.out + result.err
    assert "FAILED: no_access_token: https://acme.my.salesforce.com/services/oauth2/token " \
           "answered HTTP 200 without an access_token" in result.out
    assert "NOT verified." in result.out


def test_snapshot_refuses_a_drifting_org_unless_asked_and_never_overwrites(
        tmp_path: Path) -> None:
    out = tmp_path / "baseline.yaml"
    refused = run("snapshot", "--org", "sandbox:c1-client-credentials-off", "--out", str(out))
    assert refused.code == 3
    assert "does not match its bound playbooks" in refused.err
    assert "copilot-for-sales/client-credentials-on (drift)" in refused.err
    assert "--capture-drift" in refused.err
    assert not out.exists()
    assert run("snapshot", "--org", "sandbox:c1-client-credentials-off", "--out", str(out),
               "--capture-drift").code == 0
    before = out.read_text()
    again = run("snapshot", "--org", "sandbox:healthy", "--out", str(out))
    assert again.code == 3 and "already exists" in again.err and "--force" in again.err
    assert out.read_text() == before
    assert run("snapshot", "--org", "sandbox:healthy", "--out", str(out), "--force").code == 0
    assert out.read_text() != before


@pytest.mark.parametrize("name", ["demo", "sandbox:healthy"])
def test_a_configuration_defining_a_reserved_org_name_is_an_error(tmp_path: Path,
                                                                  name: str) -> None:
    cfg = tmp_path / "remediate.toml"
    cfg.write_text(f'[orgs."{name}"]\nlogin_url = "https://x.my.salesforce.com"\n'
                   'auth = "access_token"\naccess_token_env = "X"\n')
    result = run("--config", str(cfg), "audit", "--org", name)
    assert result.code == 64
    assert f"orgs.{name}: the org name {name!r} is reserved" in result.err


def test_an_unreachable_token_endpoint_is_a_failed_sign_in_and_the_others_are_listed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened = builtin.open_on_sandbox

    def with_fault(*args: Any, **kwargs: Any) -> orgs.OrgHandle:
        handle = opened(*args, **kwargs)
        handle.sandbox.inject("drop_connection", api="oauth", operation="token", calls=2)
        return handle

    monkeypatch.setattr(builtin, "open_on_sandbox", with_fault)
    result = run("verify", "--org", "sandbox:healthy")
    assert result.code == 4, result.out + result.err
    assert "FAILED: request_failed: " in result.out
    assert result.out.count("Token request for ") == 2  # both integrations are listed
    assert "NOT verified." in result.out


def test_snapshot_with_capture_drift_leaves_out_and_names_the_steps_it_could_not_check(
        tmp_path: Path) -> None:
    out = tmp_path / "baseline.yaml"
    result = run("snapshot", "--org", C9, "--out", str(out), "--capture-drift")
    assert result.code == 0, result.err
    assert "Not captured (could not be checked): workato/admin-approved-access, " \
           "workato/ip-relaxation, workato/session-policy." in result.out
    captured = out.read_text()
    assert "was workato/ip-relaxation" not in captured
    assert "was workato/ip-ranges" in captured
