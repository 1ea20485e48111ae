"""The everyday CLI: self-contained plan files, Terraform-like exit codes, --version, a default
org, history show, rollback --change, colour and the apply guards (API floor, lockout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cliharness import run, writes

from remediate.builtin import sandbox_state_path
from remediate.errors import SafetyRefusal
from remediate.plan import Change, MetadataWrite, RecordWrite
from remediate.salesforce.gateway import Credentials, IntegrationLogin
from remediate.sandbox import persist
from remediate.sandbox.app import DAILY_API_MAX

BIN = Path(sys.executable).parent / "remediate"


def test_plan_out_then_apply_file_works_in_a_shell_script(tmp_path: Path) -> None:
    script = tmp_path / "ci.sh"
    script.write_text("set -e\n"
                      f'"{BIN}" plan --org demo -p workato --out p.json > plan.txt\n'
                      f'"{BIN}" apply p.json --yes\n'
                      f'"{BIN}" audit --org demo -p workato\n')
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env=os.environ.copy(), check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    hint = (tmp_path / "plan.txt").read_text().strip().splitlines()[-1]
    assert hint.endswith("remediate apply p.json")
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["org"] == "demo" and saved["playbooks"] == ["workato"]
    assert saved["api_requests"] > 0


def test_apply_file_refuses_a_different_org_or_playbook_selection(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.json"
    run("plan", "--org", "demo", "-p", "workato", "--out", str(plan_file))
    before = writes()
    other_org = run("apply", str(plan_file), "--org", "sandbox:healthy", "--yes")
    assert other_org.code == 64 and "the plan is for org 'demo'" in other_org.err
    other_pb = run("apply", str(plan_file), "-p", "copilot-for-sales", "--yes")
    assert other_pb.code == 64 and "the plan covers playbooks workato" in other_pb.err
    assert writes() == before
    assert run("apply", str(plan_file), "--org", "demo", "-p", "workato", "--yes").code == 0


def test_plan_exits_0_and_2_only_with_detailed_exitcode() -> None:
    assert run("plan", "--org", "demo").code == 0
    assert run("plan", "--org", "demo", "--detailed-exitcode").code == 2
    assert run("audit", "--org", "demo").code == 2  # audit is the check
    run("apply", "--org", "demo", "--yes")
    assert run("plan", "--org", "demo", "--detailed-exitcode").code == 0


def test_version_flag() -> None:
    from remediate import __version__

    result = run("--version")
    assert result.code == 0 and result.out.strip() == f"remediate {__version__}"


def test_default_org_from_remediate_org_or_the_config(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("audit").code == 64
    monkeypatch.setenv("REMEDIATE_ORG", "demo")
    assert "Org demo" in run("audit").out
    monkeypatch.delenv("REMEDIATE_ORG")
    cfg = tmp_path / "remediate.toml"
    cfg.write_text('default_org = "sandbox:healthy"\n')
    result = run("--config", str(cfg), "audit")
    assert result.code == 0 and "Org sandbox:healthy" in result.out


def test_history_show_numbers_a_runs_changes_and_rollback_change_undoes_one() -> None:
    run("apply", "--org", "demo", "--yes")
    run_id = run("history", "--json").json()[-1]["run_id"]
    shown = run("history", "show", run_id)
    assert shown.code == 0
    # numbered in the order the changes were written: the remote site setting went in the
    # first wave, with the licence and its permission sets' composite and the other metadata
    # (ADR 0039, ADR 0044)
    assert "  6. RemoteSiteSetting Acme_Old_Instance: url" in shown.out
    assert run("audit", "--org", "demo").code == 0
    undone = run("rollback", run_id, "--change", "6", "--yes")
    assert undone.code == 0, undone.err
    after = run("audit", "--org", "demo", "--json").json()
    drifted = [f["step"] for f in after["findings"] if f["status"] == "drift"]
    assert drifted == ["stored-urls"]
    assert run("rollback", run_id, "--change", "99").code == 64


def test_apply_refuses_when_the_daily_api_allowance_is_below_the_floor() -> None:
    run("audit", "--org", "demo")
    path = sandbox_state_path("demo")
    org, extra = persist.load(path)
    org.api_usage = DAILY_API_MAX - 900  # 900 left, floor 1000
    persist.save(path, org, extra)
    before = writes()
    result = run("apply", "--org", "demo", "--yes")
    assert result.code == 3
    assert "daily API requests left" in result.err and "nothing was written" in result.err
    assert writes() == before


def _handle() -> SimpleNamespace:
    creds = Credentials(auth="jwt", login_url="https://x", username="remediate@acme.com",
                        client_id="ADMINAPP")
    logins = [IntegrationLogin(name="workato", flow="client_credentials", client_id="WKAPP",
                               username="workato@acme.com")]
    return SimpleNamespace(gateway=SimpleNamespace(_creds=creds), logins=logins)


def _deactivate(user: str, playbook: str) -> Change:
    return Change(playbook=playbook, step="s", kind="user.active", target=f"User {user}",
                  field="IsActive", before=True, after=False,
                  write=RecordWrite(sobject="User", record_id="005000000000001",
                                    fields={"IsActive": False}))


def test_lockout_guard_refuses_cutting_off_remediate_or_an_integration_not_being_fixed() -> None:
    from remediate import safety

    handle = _handle()
    for change in (_deactivate("remediate@acme.com", "workato"),
                   _deactivate("workato@acme.com", "copilot-for-sales")):
        with pytest.raises(SafetyRefusal, match="takes access from"):
            safety.guard_lockout(handle, [change], allow=False)  # type: ignore[arg-type]
        safety.guard_lockout(handle, [change], allow=True)  # type: ignore[arg-type]
    # the integration's own playbook may change its user; adding access is never a lockout
    safety.guard_lockout(handle, [_deactivate("workato@acme.com", "workato")],  # type: ignore[arg-type]
                         allow=False)
    grant = Change(playbook="copilot-for-sales", step="s", kind="k",
                   target="ConnectedApp Remediate", field="oauthConfig.x", before=False,
                   after=True, write=MetadataWrite(type="ConnectedApp", full_name="Remediate",
                                                   path="oauthConfig.x", value=True))
    safety.guard_lockout(handle, [grant], allow=False)  # type: ignore[arg-type]


def test_colour_only_on_a_terminal_and_never_with_no_color(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.colour import paint

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[31m" in paint("  DRIFT client-credentials-on")
    monkeypatch.setenv("NO_COLOR", "1")
    assert paint("  DRIFT client-credentials-on") == "  DRIFT client-credentials-on"
    assert "\033[" not in run("audit", "--org", "demo").out  # captured output: not a terminal


def test_shell_completion_script_is_offered() -> None:
    result = run("--show-completion", "bash")
    assert result.code == 0 and "_REMEDIATE_COMPLETE" in result.out.upper()
