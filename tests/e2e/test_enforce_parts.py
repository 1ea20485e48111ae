"""enforce's parts: policy, shards, kill switch, the org lock, the engine's subset apply and
undo writes, webhook delivery with retries."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from webhooks import receiver

from remediate import engine
from remediate.enforce import (
    OrgReport,
    Policy,
    Target,
    enforce_org,
    kill_switch,
    org_lock,
    parse_shard,
    policy_for,
    shard_of,
)
from remediate.errors import ConfigError, UsageError
from remediate.journal import Journal
from remediate.notify import Notifier, json_payload, slack_payload
from remediate.orgs import open_org
from remediate.plan import Change, MetadataWrite, Plan, RecordDelete, RecordWrite
from remediate.settings import EnforcePolicy, OrgConfig, Settings, Webhook


def change(step: str, kind: str, *, automatic: bool = True) -> Change:
    write = MetadataWrite(type="ConnectedApp", full_name="A", path="x", value=True) \
        if automatic else None
    return Change(playbook="pb", step=step, kind=kind, target="ConnectedApp A", field="x",
                  before=False, after=True, write=write, manual=None if automatic else "do it")


def test_policy_approves_by_step_id_or_kind_never_a_manual_change_and_by_default_nothing() -> None:
    policy = Policy(frozenset({"pb/one"}), frozenset({"user.active"}))
    assert policy.approves(change("one", "app.client_credentials"))
    assert policy.approves(change("two", "user.active"))
    assert not policy.approves(change("two", "app.client_credentials"))
    assert not policy.approves(change("one", "app.client_credentials", automatic=False))
    default = Policy.of(None)
    assert not default.approves(change("one", "user.active"))
    assert default.max_changes == 10


def test_policy_is_read_from_either_place_with_shared_webhooks_but_not_from_both() -> None:
    hook = Webhook(url="https://hooks.example.com/a")
    shared = Webhook(url_env="SLACK_URL", kind="slack")
    org = OrgConfig(login_url="https://x.my.salesforce.com", auth="access_token",
                    enforce=EnforcePolicy(auto_approve_kinds=["user.active"], webhooks=[hook]))
    settings = Settings(orgs={"prod": org},
                        enforce={"webhooks": [shared],
                                 "orgs": {"sandbox:demo": {"max_changes": 2}}})
    prod = policy_for("prod", settings)
    assert prod.auto_approve_kinds == {"user.active"} and prod.webhooks == (shared, hook)
    assert policy_for("sandbox:demo", settings).max_changes == 2
    both = Settings(orgs={"prod": org}, enforce={"orgs": {"prod": {}}})
    with pytest.raises(ConfigError, match="given twice"):
        policy_for("prod", both)
    with pytest.raises(ValueError, match="exactly one of url and url_env"):
        Webhook(kind="json")


def test_shards_are_stable_values_of_the_name() -> None:
    assert {n: shard_of(n, 4) for n in ("demo", "prod", "sandbox:healthy", "acme-eu")} == \
        {"demo": 0, "prod": 2, "sandbox:healthy": 2, "acme-eu": 0}
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("4/4", "1/0", "a/b", "3", "-1/2"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_kill_switch_by_environment_or_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    stop = tmp_path / "stop"
    settings = Settings(enforce={"kill_switch_file": stop})
    assert kill_switch(settings) is None
    stop.touch()
    assert kill_switch(settings) == f"kill switch: {stop} exists"
    stop.unlink()
    monkeypatch.setenv("REMEDIATE_ENFORCE_KILL", "1")
    assert kill_switch(settings) == "kill switch: REMEDIATE_ENFORCE_KILL is set"
    monkeypatch.setenv("REMEDIATE_ENFORCE_KILL", "0")
    assert kill_switch(settings) is None


def test_org_lock_is_exclusive_per_org_and_released_after_the_block(tmp_path: Path) -> None:
    with org_lock("prod", tmp_path) as first:
        assert first
        with org_lock("prod", tmp_path) as second:
            assert not second
        with org_lock("prod-eu", tmp_path) as other:
            assert other
    with org_lock("prod", tmp_path) as again:
        assert again


def test_two_enforce_runs_started_together_on_one_org_one_applies_the_other_reports_locked(
        tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    policy = Policy(auto_approve_kinds=frozenset({
        "user.permission_set", "user.license", "user.api_enabled", "profile.login_ip_ranges",
        "app.client_credentials", "org.stored_urls"}))
    start = threading.Barrier(2)
    finished = [threading.Event(), threading.Event()]
    reports: list[OrgReport | None] = [None, None]

    def opener(i: int) -> Any:
        # Only the run holding the lock gets here: it keeps the lock until the other is done.
        assert finished[1 - i].wait(60)
        return open_org("demo", Settings())

    def go(i: int) -> None:
        start.wait()
        try:
            reports[i] = enforce_org(Target("demo", lambda: opener(i), policy), journal=journal)
        finally:
            finished[i].set()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    outcomes = sorted(r.outcome for r in reports if r is not None)
    assert outcomes == ["fixed", "locked"]
    events = list(journal.read())
    assert len([e for e in events if e["event"] == "apply.start"]) == 1
    assert sorted(e["outcome"] for e in events if e["event"] == "enforce") == ["fixed", "locked"]


def test_engine_applies_only_the_selected_changes_and_journals_created_ids(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    handle = open_org("sandbox:demo", Settings())
    try:
        current = engine.assess(handle)
        wanted = {"api-integration-license", "client-credentials-on"}
        result = engine.apply(handle, current, engine.approval("policy"), journal,
                              only=lambda c: c.step in wanted, run_id="run-1")
        assert result.run_id == "run-1"
        assert {c.step for c in result.applied} == wanted
        assert {c.step for c in result.held} == {c.step for c in current.plan.automatic} - wanted
        after = engine.assess(handle)
        assert {c.step for c in after.plan.changes} == {c.step for c in result.held}
    finally:
        handle.close()
    batches = [e for e in journal.read() if e["event"] == "batch"]
    inserted = next(b for b in batches if b["changes"][0]["write"]["api"] == "rest")
    assert len(inserted["created"]) == 1 and inserted["created"][0].startswith("2LA")
    assert all("created" not in b for b in batches if b["changes"][0]["write"]["api"] == "metadata")


def test_remove_mode_takes_only_the_given_items_out_of_a_list() -> None:
    component: dict[str, Any] = {"loginIpRanges": [{"s": 1}, {"s": 2}, {"s": 3}]}
    engine._apply_path(component, MetadataWrite(type="Profile", full_name="P",
                                                 path="loginIpRanges", value=[{"s": 2}, {"s": 9}],
                                                 mode="remove"))
    assert component["loginIpRanges"] == [{"s": 1}, {"s": 3}]


def test_deletes_run_after_metadata_and_in_reverse_dependency_order() -> None:
    def c(field: str, write: Any) -> Change:
        return Change(playbook="p", step="s", kind="k", target="t", field=field, write=write)

    plan = Plan.build(org="o", org_id="00D000000000001", instance_url="https://x", playbooks_digest="d",
                      changes=[
                          c("licence", RecordDelete(sobject="PermissionSetLicenseAssign",
                                                    record_id="2LA000000000001")),
                          c("set", RecordDelete(sobject="PermissionSetAssignment",
                                                record_id="0Pa000000000001")),
                          c("meta", MetadataWrite(type="ConnectedApp", full_name="A", path="x",
                                                  value=False)),
                          c("user", RecordWrite(sobject="User", record_id="005000000000001",
                                                fields={"IsActive": False}))])
    assert [ch.field for ch in plan.changes] == ["user", "meta", "set", "licence"]
    assert [b[0].field for b in engine.batches(list(plan.changes))] == ["user", "meta", "set",
                                                                       "licence"]


def report(outcome: Any = "fixed") -> OrgReport:
    return OrgReport("prod", outcome, "20250101T000000Z-abcdef01",
                     applied=[change("one", "app.client_credentials")],
                     pending=[change("two", "user.active"), change("three", "x", automatic=False)])


def test_payloads_carry_org_outcome_diff_and_run_id() -> None:
    generic = json_payload(report(), fleet_run="fleet-1")
    assert generic["event"] == "fixed" and generic["run_id"] == "20250101T000000Z-abcdef01"
    assert generic["fleet_run_id"] == "fleet-1"
    assert generic["diff"][0] == "+ ConnectedApp A: x: false -> true (pb/one)"
    assert [c["step"] for c in generic["pending_approval"]] == ["two"]
    assert [c["step"] for c in generic["manual"]] == ["three"]
    slack = slack_payload(report("pending approval"))
    assert "20250101T000000Z-abcdef01" in slack["text"]
    assert "? ConnectedApp A: x: false -> true (pb/two, pending approval)" in str(slack["blocks"])


def test_payloads_redact_anything_secret_looking_in_messages() -> None:
    leaky = report("failed")
    leaky.message = "failed with Authorization: Bearer 00D000000000001!AQ0abc.def"
    assert "00D000000000001!AQ0abc" not in str(json_payload(leaky))
    assert "00D000000000001!AQ0abc" not in str(slack_payload(leaky))


def test_webhook_post_is_retried_on_5xx_then_delivered() -> None:
    with receiver(statuses=[503, 500]) as hook:
        notifier = Notifier(wait_initial=0.01, wait_max=0.05)
        assert notifier.notify(report(), [Webhook(url=hook.url)]) == (1, 0)
        assert len(hook.bodies) == 3
    assert (notifier.sent, notifier.failed) == (1, 0)


def test_webhook_that_keeps_failing_is_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver(statuses=[500] * 10) as hook:
        notifier = Notifier(attempts=3, wait_initial=0.01, wait_max=0.05)
        hooks = [Webhook(url=hook.url), Webhook(url_env="NO_SUCH_WEBHOOK_VARIABLE", kind="slack")]
        monkeypatch.delenv("NO_SUCH_WEBHOOK_VARIABLE", raising=False)
        assert notifier.notify(report(), hooks) == (0, 2)
        assert len(hook.bodies) == 3
    assert notifier.failed == 2
