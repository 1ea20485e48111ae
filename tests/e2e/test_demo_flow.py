"""The demo org end to end through the CLI: audit, plan, apply, verify, idempotency, safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import registry
from cliharness import run, writes

from remediate.builtin import sandbox_state_path
from remediate.sandbox import persist

pytestmark = pytest.mark.e2e

DEMO_CAUSES = registry.scenario_causes("demo")


def test_audit_of_demo_exits_2_and_reports_every_seeded_cause() -> None:
    result = run("audit", "--org", "demo")
    assert result.code == 2, result.err
    for step in ("client-credentials-on", "api-integration-license", "api-enabled",
                 "stored-urls", "ip-ranges"):
        assert step in result.out
    data = run("audit", "--org", "demo", "--format", "json").json()
    drifted = {f["cause"] for f in data["findings"] if f["status"] != "ok"}
    assert drifted >= DEMO_CAUSES
    finding = next(f for f in data["findings"] if f["step"] == "client-credentials-on")
    assert finding["playbook"] == "copilot-for-sales"
    assert finding["kind"] == "app.client_credentials"
    assert finding["status"] == "drift"
    assert finding["changes"] == [{
        "target": "ConnectedApp Copilot_for_Sales",
        "field": "oauthConfig.isClientCredentialEnabled",
        "before": False, "after": True, "automatic": True}]


def test_audit_markdown_lists_findings_as_a_table() -> None:
    result = run("audit", "--org", "demo", "--format", "markdown")
    assert result.code == 2
    assert "| copilot-for-sales | client-credentials-on | C1 | drift |" in result.out


def test_plan_apply_verify_then_second_audit_is_clean_and_second_apply_writes_nothing(
        tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    planned = run("plan", "--org", "demo", "--out", str(plan_file))
    assert planned.code == 0, planned.err  # plan succeeded; 2 only with --detailed-exitcode
    assert json.loads(plan_file.read_text())["checksum"]

    applied = run("apply", str(plan_file), "--org", "demo", "--yes")
    assert applied.code == 0, applied.err
    assert f"Applied {len(registry.automatic_changes('demo'))} change(s)" in applied.out

    verified = run("verify", "--org", "demo")
    assert verified.code == 0, verified.out + verified.err
    assert "Token request for copilot-for-sales: ok" in verified.out
    assert "Token request for workato: ok" in verified.out

    assert run("audit", "--org", "demo").code == 0
    before = writes()
    again = run("apply", "--org", "demo", "--yes")
    assert again.code == 0
    assert "Nothing for remediate to apply" in again.out
    assert writes() == before


def test_apply_refuses_a_plan_the_org_has_moved_away_from_and_writes_nothing(
        tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    assert run("plan", "--org", "demo", "--out", str(plan_file), "--detailed-exitcode").code == 2
    # someone turns the flow on by hand between plan and apply
    path = sandbox_state_path("demo")
    org, extra = persist.load(path)
    org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthConfig"][
        "isClientCredentialEnabled"] = True
    persist.save(path, org, extra)
    before = writes()

    result = run("apply", str(plan_file), "--org", "demo", "--yes")

    assert result.code == 3
    assert "the org changed since the plan was made" in result.err
    assert "nothing was written" in result.err
    assert "Traceback" not in result.err
    assert writes() == before


def test_apply_answered_no_at_the_prompt_writes_nothing() -> None:
    run("audit", "--org", "demo")  # creates the saved state
    before = writes()
    result = run("apply", "--org", "demo", stdin="n\n")
    assert result.code == 3
    assert "not approved" in result.err
    assert writes() == before
    assert run("audit", "--org", "demo").code == 2


def test_apply_with_no_answer_at_all_writes_nothing() -> None:
    run("audit", "--org", "demo")
    before = writes()
    result = run("apply", "--org", "demo", stdin="")
    assert result.code == 3
    assert writes() == before


def test_edited_plan_file_is_refused_before_any_read(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    run("plan", "--org", "demo", "--out", str(plan_file))
    data = json.loads(plan_file.read_text())
    data["changes"][0]["after"] = "something else"
    plan_file.write_text(json.dumps(data))
    result = run("apply", str(plan_file), "--org", "demo", "--yes")
    assert result.code == 64
    assert "edited after it was written" in result.err


def test_journal_records_the_apply_with_approval_and_each_change(tmp_path: Path) -> None:
    from remediate.settings import state_dir

    assert run("apply", "--org", "demo", "--yes").code == 0
    lines = [json.loads(x) for x in (state_dir() / "journal.jsonl").read_text().splitlines()]
    start = next(x for x in lines if x["event"] == "apply.start")
    assert start["org"] == "demo"
    assert start["approval"]["how"] == "flag"
    expected = len(registry.automatic_changes("demo"))
    assert len(start["changes"]) == expected
    batches = [x for x in lines if x["event"] == "batch"]
    assert all(b["result"] == "applied" for b in batches)
    assert sum(len(b["changes"]) for b in batches) == expected
    assert lines[-1]["event"] == "apply.end" and lines[-1]["status"] == "applied"


def test_demo_command_tells_the_whole_story_and_verifies() -> None:
    result = run("demo")
    assert result.code == 0, result.out + result.err
    for heading in ("1. audit", "2. plan", "3. approve and apply", "4. verify"):
        assert heading in result.out
    assert "Verified." in result.out
