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


def test_the_licence_and_its_permission_sets_go_with_the_metadata_in_one_wave() -> None:
    waves = _waves([_row("PermissionSetLicenseAssign"), _row("PermissionSetAssignment"),
                    _meta("ConnectedApp", "oauthConfig.isClientCredentialEnabled"),
                    _meta("Profile", "loginIpRanges"), _meta("RemoteSiteSetting", "url")])
    # ADR 0044: the permission set assignments wait only for the licence, so both go as one
    # composite (subrequests in order) in the licence's wave
    assert waves == [["PermissionSetLicenseAssign", "PermissionSetAssignment",
                      "ConnectedApp.oauthConfig.isClientCredentialEnabled",
                      "Profile.loginIpRanges", "RemoteSiteSetting.url"]]


def test_without_the_combined_composite_the_permission_sets_follow_the_licence() -> None:
    changes = [_row("PermissionSetLicenseAssign"), _row("PermissionSetAssignment"),
               _meta("RemoteSiteSetting", "url")]
    ordered = sorted(changes, key=lambda c: c.phase)
    waves = [[b[0].step for b in wave]
             for wave in engine._together(engine.batches(ordered), combine=False)]
    assert waves == [["PermissionSetLicenseAssign", "RemoteSiteSetting.url"],
                     ["PermissionSetAssignment"]]


def test_a_user_update_before_the_licence_does_not_stop_the_pair() -> None:
    # the assignments wait for the User update too, but it is written in an earlier wave than
    # the licence: they still go with the licence
    waves = _waves([_row("User"), _row("PermissionSetLicenseAssign"),
                    _row("PermissionSetAssignment")])
    assert waves == [["User"], ["PermissionSetLicenseAssign", "PermissionSetAssignment"]]


@pytest.mark.parametrize("meta", [
    _meta("ConnectedApp", "oauthConfig.oauthClientCredentialUser"),  # names a Run As user
    _meta("ExtlClntAppOauthConfigurablePolicies", "clientCredentialsFlowUser"),
    _meta("PermissionSet", "recordTypeVisibilities"),  # a permission set written whole
    _meta("Profile", "userPermissions"),  # not a profile's IP ranges or hours
])
def test_metadata_that_may_depend_on_the_rows_keeps_the_phase_order(meta: Change) -> None:
    waves = _waves([_row("PermissionSetLicenseAssign"), _row("PermissionSetAssignment"), meta])
    # the assignments go with the licence (ADR 0044); the metadata still waits for both
    assert waves == [["PermissionSetLicenseAssign", "PermissionSetAssignment"], [meta.step]]


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


def test_apply_of_the_demo_org_sends_the_licence_and_permission_sets_in_one_composite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.sandbox import rest

    bodies: list[bytes] = []
    composite = rest._composite

    def recording(call: rest._Call) -> rest.Response:
        bodies.append(call.body)
        return composite(call)

    monkeypatch.setattr(rest, "_composite", recording)
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    before = handle.gateway.rounds
    sandbox.requests.clear()
    engine.apply(handle, current, APPROVED, Journal(tmp_path / "journal.jsonl"))
    assert handle.gateway.rounds - before == 1  # one composite beside the 3 upserts
    assert sorted(str(r.operation) for r in sandbox.requests) == [
        "composite", "upsertMetadata", "upsertMetadata", "upsertMetadata"]
    body = json.loads(bodies[-1])
    assert body["allOrNone"] is True and body["collateSubrequests"] is False
    assert [{r["attributes"]["type"] for r in sub["body"]["records"]}
            for sub in body["compositeRequest"]] == [{"PermissionSetLicenseAssign"},
                                                     {"PermissionSetAssignment"}]
    assert not engine.assess(handle).plan.automatic


def test_an_org_that_refuses_the_pair_gets_them_apart_and_is_remembered(
        tmp_path: Path) -> None:
    from remediate.salesforce import compositecache

    sandbox, org, spec = demo_sandbox()
    org.licence_in_composite = False  # the other reading of the undocumented fact
    compositecache.forget(org.org_id)
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    before = handle.gateway.rounds
    sandbox.requests.clear()
    journal = Journal(tmp_path / "journal.jsonl")
    engine.apply(handle, current, APPROVED, journal)
    # the composite (rolled back) beside the upserts, then the licence, then the assignments
    assert handle.gateway.rounds - before == 3
    assert [r.operation for r in sandbox.requests if r.api == "rest"] == [
        "composite", "composite/sobjects", "composite/sobjects"]
    records = _records(journal.path)
    [combined] = [r for r in records if r["event"] == "batch.combined"]
    assert combined["result"] == "rolled_back"
    assert "FIELD_INTEGRITY_EXCEPTION" in str(combined["error"])
    assert {r["result"] for r in records if r["event"] == "batch"} == {"applied"}
    assert compositecache.apart(org.org_id)
    assert not engine.assess(handle).plan.automatic
    compositecache.forget(org.org_id)


def test_an_open_composite_is_read_back_before_anything_is_sent_again(tmp_path: Path) -> None:
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    handle.gateway.retry = RetryPolicy.no_wait()
    # the composite commits, then the connection drops before its answer arrives
    sandbox.inject("drop_connection", api="rest", operation="composite", method="POST",
                   after=True, calls=1)  # the write: the read before came earlier
    sandbox.requests.clear()
    engine.apply(handle, current, APPROVED, Journal(tmp_path / "journal.jsonl"))
    ops = [r.operation for r in sandbox.requests if r.api == "rest"]
    # the write, never sent again blindly, then a query per type reads back what it committed
    assert ops == ["composite", "query", "query"]
    assert len(org.find("PermissionSetLicenseAssign")) == len(
        {(r["AssigneeId"], r["PermissionSetLicenseId"])
         for r in org.find("PermissionSetLicenseAssign")})
    assert not engine.assess(handle).plan.automatic


def test_an_open_composite_whose_read_back_fails_too_leaves_both_batches_unknown(
        tmp_path: Path) -> None:
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    handle.gateway.retry = RetryPolicy.no_wait()
    sandbox.inject("drop_connection", api="rest", operation="composite", method="POST",
                   after=True, calls=1)  # committed, answer lost
    sandbox.inject("http_503", api="rest", operation="query", calls=range(1, 50))  # no read back
    sandbox.requests.clear()
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(ApplyFailed) as failed:
        engine.apply(handle, current, APPROVED, journal)
    rows = sorted(c.label() for c in current.plan.automatic if isinstance(c.write, RecordWrite))
    assert sorted(failed.value.unknown) == rows  # may or may not be written: said so, not guessed
    assert not set(failed.value.applied) & set(rows)
    batches = [r for r in _records(journal.path) if r["event"] == "batch"
               and r["changes"][0]["write"]["api"] == "rest"]  # type: ignore[index]
    assert [str(r["result"]) for r in batches] == ["unknown", "unknown"]
    assert "reading back whether it was applied failed too" in str(batches[0]["error"])
    assert [r.operation for r in sandbox.requests if r.api == "rest" and r.method == "POST"
            ].count("composite") == 1  # never sent again blindly


def test_a_licence_refused_in_the_composite_leaves_a_journal_that_says_what_changed(
        tmp_path: Path) -> None:
    sandbox, org, spec = demo_sandbox()
    handle = demo_handle(sandbox, org, spec)
    current = engine.assess(handle)
    for psl in org.find("PermissionSetLicense"):  # no licence left to assign
        psl["UsedLicenses"] = psl.get("TotalLicenses") or 0
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(ApplyFailed) as failed:
        engine.apply(handle, current, APPROVED, journal)
    # the metadata written beside it took; the permission sets rolled back with the licence
    assert sorted(failed.value.applied) == sorted(
        c.label() for c in current.plan.automatic if isinstance(c.write, MetadataWrite))
    assert sorted(failed.value.not_applied) == sorted(
        c.label() for c in current.plan.automatic if isinstance(c.write, RecordWrite))
    records = _records(journal.path)
    batches = [r for r in records if r["event"] == "batch"]
    rows = [r for r in batches if r["changes"][0]["write"]["api"] == "rest"]  # type: ignore[index]
    assert len(rows) == 2 and {str(r["result"]) for r in rows} == {"failed"}
    assert "LICENSE_LIMIT_EXCEEDED" in str(rows[0]["error"])
    assert "rolled back with the licence" in str(rows[1]["error"])
    assert sorted(str(r["result"]) for r in batches if r not in rows) == ["applied"] * 3
    assert not [r for r in records if r["event"] == "batch.combined"]
    after = engine.assess(handle).plan.automatic
    assert {c.write.sobject for c in after if isinstance(c.write, RecordWrite)} == {
        "PermissionSetLicenseAssign", "PermissionSetAssignment"}
    assert not [c for c in after if isinstance(c.write, MetadataWrite)]
