"""A configured org (remediate.toml) reached over HTTPS, and the bad inputs a user can give."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cliharness import lab_config, run

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, str, str]]:
    """The c1 scenario served over HTTPS: (url, admin token, CA bundle path)."""
    sandbox = Sandbox([scenarios.build_org(scenarios.load("c1-client-credentials-off"))])
    org = sandbox.org
    admin = org.user_by_username("admin@acme.example.com")
    assert admin is not None
    token = org.new_session(admin["Id"], None, ("api",), "test").token
    with serve_in_thread(sandbox) as srv:
        yield srv.url, token, str(srv.ca_bundle)


def config(tmp_path: Path, url: str, ca: str, playbook: str = "copilot-for-sales",
           user: str = "copilot.integration@acme.example.com") -> Path:
    return lab_config(tmp_path, url, ca, playbook=playbook,
                      variables={"integration_user": user})


def test_configured_org_over_https_audits_with_the_token_from_the_environment(
        tmp_path: Path, lab: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    result = run("--config", str(config(tmp_path, url, ca)), "audit", "--org", "lab")
    assert result.code == 2, result.err
    assert "DRIFT  client-credentials-on [C1]" in result.out
    assert token not in result.out + result.err


def test_missing_token_variable_is_one_clear_line(tmp_path: Path,
                                                  lab: tuple[str, str, str]) -> None:
    url, _, ca = lab
    result = run("--config", str(config(tmp_path, url, ca)), "audit", "--org", "lab")
    assert result.code == 64
    assert result.err.strip() == ("error: org 'lab': access token: environment variable "
                                  "LAB_TOKEN is not set")


def test_unknown_user_is_an_unknown_finding_of_each_step_and_the_audit_goes_on(
        tmp_path: Path, lab: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    cfg = config(tmp_path, url, ca, user="nobody@acme.example.com")
    result = run("--config", str(cfg), "audit", "--org", "lab")
    assert result.code == 2, result.err
    assert "UNKNOWN run-as-user [C2]" in result.out
    assert "not checked: playbook 'copilot-for-sales', step 'run-as-user': no user with " \
           "username 'nobody@acme.example.com'" in result.out
    assert "DRIFT  client-credentials-on [C1]" in result.out  # the rest of the audit ran
    assert "Traceback" not in result.err


def test_unknown_permission_set_is_named(tmp_path: Path, lab: tuple[str, str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    cfg = config(tmp_path, url, ca)
    cfg.write_text(cfg.read_text() + 'permission_set = "No_Such_Set"\n')
    result = run("--config", str(cfg), "audit", "--org", "lab", "--format", "json")
    assert result.code == 2, result.err
    data = result.json()
    unknown = [f for f in data["findings"] if f["status"] == "unknown"]
    assert unknown and all(not f["checked"] for f in unknown)
    assert any("no permission set with API name or label 'No_Such_Set'" in f["reason"] for f in unknown)
    assert data["summary"]["unknown"] == len(unknown) and data["clean"] is False


def test_malformed_playbook_names_file_and_line(tmp_path: Path, lab: tuple[str, str, str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: remediate/v1\nname: bad\nsteps:\n  - id: x\n    kind: nope\n")
    cfg = config(tmp_path, url, ca, playbook='"bad.yaml"')
    cfg.write_text(cfg.read_text().replace('integration_user = "copilot.integration@acme.'
                                           'example.com"\n', ""))
    result = run("--config", str(cfg), "audit", "--org", "lab")
    assert result.code == 64
    assert result.err.startswith(f"error: {bad}:4: steps[0] (x): unknown step kind 'nope'")
    assert "Traceback" not in result.err


def test_unreachable_org_is_one_clear_line(tmp_path: Path, lab: tuple[str, str, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    cfg = config(tmp_path, "https://127.0.0.1:9", ca)
    result = run("--config", str(cfg), "audit", "--org", "lab")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert "cannot reach the org" in lines[0]


def test_config_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "remediate.toml"
    path.write_text('[orgs.lab]\nlogin_url = "https://x.my.salesforce.com"\nauth = "jwt"\n'
                    "colour = 1\n")
    result = run("--config", str(path), "audit", "--org", "lab")
    assert result.code == 64
    assert "orgs.lab.colour: unknown key" in result.err


def test_unknown_org_lists_what_is_configured(tmp_path: Path) -> None:
    result = run("audit", "--org", "prod")
    assert result.code == 64
    assert "unknown org 'prod'" in result.err


def test_audit_and_plan_need_no_verify_credentials_and_verify_reports_them_not_tried(
        tmp_path: Path, lab: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = lab
    monkeypatch.setenv("LAB_TOKEN", token)
    monkeypatch.delenv("COPILOT_SECRET", raising=False)
    cfg = config(tmp_path, url, ca)
    cfg.write_text(cfg.read_text() + '\n[orgs.lab.verify.copilot-for-sales]\n'
                   'client_id = "abc"\nclient_secret_env = "COPILOT_SECRET"\n')
    assert run("--config", str(cfg), "audit", "--org", "lab").code == 2
    assert run("--config", str(cfg), "plan", "--org", "lab", "--detailed-exitcode").code == 2
    verified = run("--config", str(cfg), "verify", "--org", "lab")
    assert verified.code == 4
    assert "Token request for copilot-for-sales: not tried (no credentials): " in verified.out
    assert "COPILOT_SECRET" in verified.out
    assert "NOT verified." in verified.out
