"""Apply sends its write batches in waves scheduled by dependency (ADR 0039): independent
batches together, a dependent one after what it needs. Through the real client stack against
the sandbox's demo org, and on plain changes for the dependency rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.orgs import demo_handle, demo_sandbox
from remediate import engine
from remediate.errors import ApplyFailed
from remediate.journal import Journal
from remediate.plan import Change, MetadataWrite, RecordDelete, RecordWrite
from remediate.salesforce.retry import RetryPolicy

APPROVED = engine.approval("flag")


def _row(sobject: str, user: str = "005A") -> Change:
    return Change(playbook="p", step=sobject, kind="k", target=f"User {user}", field=sobject,
                  write=RecordWrite(sobject=sobject, fields={"AssigneeId": user, "X": sobject}))


def _meta(type_: str, path: str, name: str = "N") -> Change:
    return Change(playbook="p", step=f"{type_}.{path}", kind="k", target=f"{type_} {name}",
                  field=path, write=MetadataWrite(type=type_, full_name=name, path=path,
                                                  value="v"))


def _waves(changes: list[Change]) -> list[list[str]]:
    ordered = sorted(changes, key=lambda c: c.phase)
    return [[b[0].step for b in wave] for wave in engine._together(engine.batches(ordered))]


def test_the_licence_goes_with_the_metadata_and_the_permission_sets_follow_it() -> None:
    waves = _waves([_row("PermissionSetLicenseAssign"), _row("PermissionSetAssignment"),
                    _meta("ConnectedApp", "oauthConfig.isClientCredentialEnabled"),
                    _meta("Profile", "loginIpRanges"), _meta("RemoteSiteSetting", "url")])
    assert waves == [["PermissionSetLicenseAssign", "ConnectedApp.oauthConfig."
                      "isClientCredentialEnabled", "Profile.loginIpRanges",
                      "RemoteSiteSetting.url"],
                     ["PermissionSetAssignment"]]


@pytest.mark.parametrize("meta", [
    _meta("ConnectedApp", "oauthConfig.oauthClientCredentialUser"),  # names a Run As user
    _meta("ExtlClntAppOauthConfigurablePolicies", "clientCredentialsFlowUser"),
    _meta("PermissionSet", "recordTypeVisibilities"),  # a permission set written whole
    _meta("Profile", "userPermissions"),  # not a profile's IP ranges or hours
])
def test_metadata_that_may_depend_on_the_rows_keeps_the_phase_order(meta: Change) -> None:
    waves = _waves([_row("PermissionSetLicenseAssign"), _row("PermissionSetAssignment"), meta])
    assert waves == [["PermissionSetLicenseAssign"], ["PermissionSetAssignment"], [meta.step]]


def test_other_rows_still_wait_for_each_other_and_for_the_metadata() -> None:
    user = _row("User")
    access = _row("SetupEntityAccess")
    objects = _row("ObjectPermissions")
    waves = _waves([user, _row("PermissionSetLicenseAssign"), access,
                    _meta("RemoteSiteSetting", "url"), objects])
    # the remote site setting names no user, but a User update and an app grant are not among
    # the rows it is known to be independent of: it waits for them, as before
    assert waves == [["User"], ["PermissionSetLicenseAssign"], ["SetupEntityAccess"],
                     ["RemoteSiteSetting.url"], ["ObjectPermissions"]]


def test_a_rollbacks_deletes_keep_their_order_after_the_metadata() -> None:
    def delete(sobject: str) -> Change:
        return Change(playbook="p", step=f"undo {sobject}", kind="k", target="User 005A",
                      field=sobject, write=RecordDelete(sobject=sobject, record_id="0Pa1"))

    waves = _waves([delete("PermissionSetLicenseAssign"), delete("PermissionSetAssignment"),
                    _meta("RemoteSiteSetting", "url")])
    assert waves == [["RemoteSiteSetting.url"], ["undo PermissionSetAssignment"],
                     ["undo PermissionSetLicenseAssign"]]


def _records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_apply_of_the_demo_org_sends_the_permission_sets_after_the_licence_answered(
        tmp_path: Path) -> None:
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    before = handle.gateway.rounds
    sandbox.requests.clear()
    engine.apply(handle, current, APPROVED, Journal(tmp_path / "journal.jsonl"))
    assert handle.gateway.rounds - before == 2  # licence + 3 upserts, then permission sets
    ops = [f"{r.operation}" for r in sandbox.requests]
    assert sorted(ops[:4]) == ["composite/sobjects", "upsertMetadata", "upsertMetadata",
                               "upsertMetadata"]
    assert ops[4:] == ["composite/sobjects"]
    assert not engine.assess(handle).plan.automatic


def test_a_licence_refused_half_way_leaves_a_journal_that_says_what_changed(
        tmp_path: Path) -> None:
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    handle.gateway.retry = RetryPolicy.no_wait()
    # every row write refused: the first one sent is the licence assignment (retried, refused)
    sandbox.inject("request_limit_exceeded", api="rest", operation="composite/sobjects")
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(ApplyFailed) as failed:
        engine.apply(handle, current, APPROVED, journal)
    # the metadata written beside it took; the permission sets that need the licence were
    # never sent
    assert sorted(failed.value.applied) == sorted(
        c.label() for c in current.plan.automatic if isinstance(c.write, MetadataWrite))
    assert sorted(failed.value.not_applied) == sorted(
        c.label() for c in current.plan.automatic if isinstance(c.write, RecordWrite))
    records = _records(journal.path)
    outcomes = {r["changes"][0]["field"]: r["result"]  # type: ignore[index]
                for r in records if r["event"] == "batch"}
    assert [v for k, v in outcomes.items() if "license" in str(k)] == ["failed"]
    assert sorted(str(v) for k, v in outcomes.items() if "license" not in str(k)) == ["applied"] * 3
    intents = [r for r in records if r["event"] == "batch.intent"]
    assert len(intents) == 4  # the permission set batch never got as far as an intent
    after = engine.assess(handle).plan.automatic
    assert {c.write.sobject for c in after if isinstance(c.write, RecordWrite)} == {
        "PermissionSetLicenseAssign", "PermissionSetAssignment"}
    assert not [c for c in after if isinstance(c.write, MetadataWrite)]
