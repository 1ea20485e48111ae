"""`remediate enforce`, `history` and `rollback` through the CLI, on the built-in demo org."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import registry
from cliharness import run, writes
from webhooks import receiver

from remediate.builtin import sandbox_state_path
from remediate.enforce import org_lock
from remediate.journal import Journal
from remediate.sandbox import persist
from remediate.sandbox import scenario as scenarios
from remediate.settings import state_dir

pytestmark = pytest.mark.e2e

APPROVED = ["copilot-for-sales/client-credentials-on", "workato/stored-urls"]
ALL_KINDS = registry.automatic_kinds("demo")


def config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "remediate.toml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def journal_events(kind: str) -> list[dict[str, Any]]:
    return [e for e in Journal(state_dir() / "journal.jsonl").read() if e["event"] == kind]


def demo_secrets() -> list[str]:
    spec = scenarios.load("demo")
    org = scenarios.build_org(spec)
    secrets = [org.metadata["ConnectedApp"]["Remediate_Admin"]["oauthConfig"]["consumerSecret"]]
    for integration in spec.integrations:
        secrets += [s for s in (integration.client_secret, integration.private_key) if s]
    secrets += list(org.passwords.values()) if isinstance(org.passwords, dict) else []
    return [s for s in secrets if s and len(str(s)) >= 8]


def test_policy_applies_exactly_the_approved_steps_and_reports_the_rest_as_pending(
        tmp_path: Path) -> None:
    with receiver() as hook:
        cfg = config(tmp_path, f"""
[enforce.orgs.demo]
auto_approve_steps = {json.dumps(APPROVED)}
webhooks = [{{ url = "{hook.url}", kind = "json" }}, {{ url = "{hook.url}", kind = "slack" }}]
""")
        result = run("--config", cfg, "enforce", "--org", "demo", "--format", "json")
        assert result.code == 2, result.err  # drift is left for a person: pending approval
        summary = result.json()
        org = summary["orgs"][0]
        assert org["outcome"] == "pending approval"
        assert {c["target"] + ": " + c["field"] for c in org["applied"]} == {
            "ConnectedApp Copilot_for_Sales: oauthConfig.isClientCredentialEnabled",
            "RemoteSiteSetting Acme_Old_Instance: url"}
        assert len(org["pending"]) == len(registry.automatic_changes("demo")) - len(APPROVED)
        assert all(c["automatic"] for c in org["pending"])

        batches = [c for e in journal_events("batch") for c in e["changes"]]
        assert sorted(f"{c['playbook']}/{c['step']}" for c in batches) == sorted(APPROVED)
        assert [e["approval"]["how"] for e in journal_events("apply.start")] == ["policy"]

        payloads = hook.payloads()
        assert summary["notifications"] == {"sent": 2, "failed": 0}
        assert len(payloads) == 2
        generic = next(p for p in payloads if "event" in p)
        assert generic["event"] == "drift" and generic["org"] == "demo"
        assert generic["run_id"] == org["run_id"]
        assert {f"{c['playbook']}/{c['step']}" for c in generic["applied"]} == set(APPROVED)
        assert {c["step"] for c in generic["pending_approval"]} == {
            "api-integration-license", "app-permission-set", "api-enabled", "ip-ranges"}
        slack = next(p for p in payloads if "blocks" in p)
        slack_text = json.dumps(slack)
        assert org["run_id"] in slack_text
        assert ("+ ConnectedApp Copilot_for_Sales: oauthConfig.isClientCredentialEnabled: "
                "false -> true") in slack_text
        assert "? Profile Workato Integration: loginIpRanges" in slack_text
        for secret in demo_secrets():
            assert secret not in hook.text
        for marker in ("-----BEGIN", "Bearer ", "eyJ", "consumerSecret", "access_token"):
            assert marker not in hook.text
        text = run("--config", cfg, "enforce", "--org", "demo")
    assert "demo: pending approval or manual:" in text.out
    assert "? Profile Workato Integration: loginIpRanges" in text.out
    assert "1 org(s): 1 pending approval" in text.out
    assert "demo: applied by policy" not in text.out  # the first run fixed those already


def test_default_policy_is_an_audit_that_writes_nothing(tmp_path: Path) -> None:
    result = run("enforce", "--org", "demo")
    assert result.code == 2, result.err
    assert "pending approval" in result.out
    assert writes("demo") == 0
    assert journal_events("apply.start") == []
    assert [e["outcome"] for e in journal_events("enforce")] == ["pending approval"]


def test_kill_switch_makes_an_approving_policy_plan_only(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config(tmp_path, f'[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(ALL_KINDS)}\n')
    monkeypatch.setenv("REMEDIATE_ENFORCE_KILL", "1")
    result = run("--config", cfg, "enforce", "--org", "demo")
    assert result.code == 2, result.err
    assert "kill switch: REMEDIATE_ENFORCE_KILL is set" in result.out
    assert writes("demo") == 0
    monkeypatch.delenv("REMEDIATE_ENFORCE_KILL")
    kill_file = tmp_path / "stop"
    kill_file.touch()
    cfg = config(tmp_path, f'[enforce]\nkill_switch_file = "{kill_file}"\n'
                           f'[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(ALL_KINDS)}\n')
    assert run("--config", cfg, "enforce", "--org", "demo").code == 2
    assert writes("demo") == 0
    kill_file.unlink()
    fixed = run("--config", cfg, "enforce", "--org", "demo")
    assert fixed.code == 0, fixed.out + fixed.err
    assert "demo: applied by policy" in fixed.out
    assert "+ ConnectedApp Copilot_for_Sales: oauthConfig.isClientCredentialEnabled: false -> true" \
        in fixed.out
    assert writes("demo") > 0


def test_plan_over_the_change_threshold_is_refused_whole(tmp_path: Path) -> None:
    cfg = config(tmp_path, f'[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(ALL_KINDS)}\n'
                           "max_changes = 3\n")
    result = run("--config", cfg, "enforce", "--org", "demo")
    assert result.code == 3, result.out + result.err
    assert "refused" in result.out and "more than this org's max_changes (3)" in result.out
    assert writes("demo") == 0


def test_one_org_failing_does_not_stop_the_others_and_the_worst_outcome_is_the_exit_code(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, f'[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(ALL_KINDS)}\n'
                 '[orgs.broken]\nlogin_url = "https://broken.my.salesforce.com"\n'
                 'auth = "access_token"\naccess_token_env = "I11_NO_SUCH_TOKEN"\n'
                 '[orgs.broken.playbooks.copilot-for-sales]\n'
                 'integration_user = "x@acme.example.com"\n')
    result = run("--config", cfg, "enforce", "--org", "broken", "--org", "demo",
                 "--format", "json")
    assert result.code == 1, result.err
    outcomes = {o["org"]: o for o in result.json()["orgs"]}
    assert outcomes["demo"]["outcome"] == "fixed"
    assert outcomes["broken"]["outcome"] == "failed"
    assert "I11_NO_SUCH_TOKEN" in outcomes["broken"]["message"]


def test_enforcing_an_org_that_is_not_configured_is_bad_input_naming_the_file(
        tmp_path: Path) -> None:
    cfg = config(tmp_path, "[enforce.orgs.demo]\n")
    result = run("--config", cfg, "enforce", "--org", "no-such-org", "--org", "demo")
    assert result.code == 64
    assert f"org 'no-such-org' is not configured: {cfg} has no [orgs.no-such-org]" in result.err
    assert writes("demo") == 0


def test_enforcing_a_builtin_org_with_no_such_scenario_is_bad_input(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[enforce.orgs."sandbox:no-such-scenario"]\n')
    result = run("--config", cfg, "enforce", "--all")
    assert result.code == 64
    assert "org 'sandbox:no-such-scenario'" in result.err


def test_enforce_all_with_no_configuration_is_bad_input_saying_where_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    result = run("enforce", "--all")
    assert result.code == 64
    assert "--all found no org to enforce: no configuration file (looked for --config, " \
           "$REMEDIATE_CONFIG and ./remediate.toml)" in result.err


@pytest.mark.parametrize(("key", "value", "said"), [
    ("auto_approve_steps", "copilot-for-sales/no-such-step", "not a step bound to this org"),
    ("auto_approve_kinds", "user.actve", "not a step kind"),
])
def test_an_enforce_policy_naming_an_unknown_step_or_kind_is_bad_input(
        tmp_path: Path, key: str, value: str, said: str) -> None:
    cfg = config(tmp_path, f'[enforce.orgs.demo]\n{key} = ["{value}"]\n')
    result = run("--config", cfg, "enforce", "--org", "demo")
    assert result.code == 64
    assert f"org 'demo': enforce policy {key} names {value!r}, which is {said}" in result.err
    assert writes("demo") == 0


def test_all_takes_every_org_named_in_the_configuration_and_shards_split_them(
        tmp_path: Path) -> None:
    names = ["demo", "sandbox:healthy", "sandbox:c1-client-credentials-off",
             "sandbox:c8-inactive-user"]
    cfg = config(tmp_path, "".join(f'[enforce.orgs."{n}"]\n' for n in names))
    seen: list[str] = []
    for index in range(2):
        result = run("--config", cfg, "enforce", "--all", "--shard", f"{index}/2",
                     "--format", "json")
        assert result.code in (0, 2), result.err
        seen += [o["org"] for o in result.json()["orgs"]]
    assert sorted(seen) == sorted(names)


def test_enforce_needs_orgs_or_all_and_a_well_formed_shard() -> None:
    assert run("enforce").code == 64
    bad = run("enforce", "--org", "demo", "--shard", "4/4")
    assert bad.code == 64 and "less than N" in bad.err


def test_an_org_locked_by_another_process_is_skipped_and_reported_locked() -> None:
    with org_lock("demo") as held:
        assert held
        done = subprocess.run([sys.executable, "-m", "remediate", "enforce", "--org", "demo"],
                              capture_output=True, text=True, timeout=120, env=dict(os.environ),
                              check=False)
    assert done.returncode == 75, done.stdout + done.stderr
    assert "locked" in done.stdout and "another run is working on this org" in done.stdout
    assert not sandbox_state_path("demo").exists()  # it never opened the org


def test_a_failing_webhook_is_counted_and_logged_but_does_not_fail_the_run(
        tmp_path: Path) -> None:
    with receiver(statuses=[404]) as hook:
        cfg = config(tmp_path, f"""
[enforce.orgs.demo]
auto_approve_kinds = {json.dumps(ALL_KINDS)}
webhooks = [{{ url = "{hook.url}", kind = "json" }}]
""")
        result = run("--config", cfg, "--log-format", "json", "enforce", "--org", "demo")
    assert result.code == 0, result.out + result.err  # fixed, whatever the webhook said
    assert "notifications: 0 sent, 1 failed" in result.out
    logged = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "notify.failed" and e["reason"] == "HTTP 404" for e in logged)
    assert all(hook.url not in line for line in result.err.splitlines())


AUDIT_FIELDS = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp"}


def _org_state() -> dict[str, Any]:
    """The demo org as saved: its metadata, and each table's rows as a sorted list without
    audit fields and ids (a metadata write rebuilds rows such as LoginIpRange with new ids)
    and without what sign-ins add to (the login log, the OAuth usage counts)."""
    data = persist.dump(persist.load(sandbox_state_path("demo"))[0])
    tables = {name: sorted(json.dumps({k: v for k, v in row.items() if k not in AUDIT_FIELDS},
                                      sort_keys=True, default=str) for row in rows.values())
              for name, rows in data["tables"].items()
              if name not in ("LoginHistory", "OauthToken")}
    return {"tables": tables, "metadata": data["metadata"]}


def test_rollback_of_an_enforce_run_restores_the_org_and_a_second_rollback_changes_nothing(
        tmp_path: Path) -> None:
    assert run("sandbox", "status", "--org", "demo").code == 0
    assert run("audit", "--org", "demo").code == 2
    before = _org_state()
    cfg = config(tmp_path, f'[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(ALL_KINDS)}\n')
    enforced = run("--config", cfg, "enforce", "--org", "demo", "--format", "json")
    assert enforced.code == 0, enforced.err
    run_id = enforced.json()["orgs"][0]["run_id"]
    assert _org_state() != before

    listed = run("history", "--org", "demo", "--format", "json").json()
    assert [(r["run_id"], r["kind"], r["status"], r["changes"]) for r in listed] == [
        (run_id, "enforce", "fixed", len(registry.automatic_changes("demo")))]

    refused = run("rollback", run_id)  # no terminal to approve on: nothing written
    assert refused.code == 3
    assert "oauthConfig.isClientCredentialEnabled: true -> false" in refused.out

    rolled = run("rollback", run_id, "--yes")
    assert rolled.code == 0, rolled.out + rolled.err
    assert f"Applied {len(registry.automatic_changes('demo'))} change(s)" in rolled.out
    assert _org_state() == before
    assert run("audit", "--org", "demo").code == 2

    count = writes("demo")
    again = run("rollback", run_id, "--yes")
    assert again.code == 0, again.err
    assert "already undone" in again.out
    assert writes("demo") == count

    kinds = [(r["kind"], r.get("rollback_of")) for r in run("history", "--format", "json").json()]
    assert kinds == [("enforce", None), ("rollback", run_id)]
    table = run("history").out
    assert f"undoes {run_id}" in table and "policy by" in table


def test_rollback_of_an_unknown_run_is_bad_input() -> None:
    result = run("rollback", "20990101T000000Z-00000000")
    assert result.code == 64
    assert "not in the journal" in result.err
