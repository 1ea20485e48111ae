"""Plans: ordering, checksum, saving and the refusal of edited plan files."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.errors import UsageError
from remediate.plan import Change, MetadataWrite, Plan, RecordWrite


def change(target: str, sobject: str | None = None, **kw: object) -> Change:
    write = RecordWrite(sobject=sobject, fields={"AssigneeId": "005"}) if sobject else \
        MetadataWrite(type="ConnectedApp", full_name="A", path="oauthConfig.x", value=True)
    return Change(playbook="p", step=target, kind="k", target=target, field="f",
                  write=write, **kw)  # type: ignore[arg-type]


def build(changes: list[Change], org_id: str = "00D000000000001AAA") -> Plan:
    return Plan.build(org="o", org_id=org_id, instance_url="https://x.my.salesforce.com",
                      playbooks_digest="d", changes=changes)


def test_licence_comes_before_the_permission_set_and_metadata_last() -> None:
    plan = build([change("meta"), change("psa", "PermissionSetAssignment"),
                  change("psla", "PermissionSetLicenseAssign"), change("user", "User")])
    assert [c.target for c in plan.changes] == ["user", "psla", "psa", "meta"]


def test_checksum_is_independent_of_input_order_and_of_15_or_18_char_org_id() -> None:
    a = build([change("a"), change("b", "User")])
    b = build([change("b", "User"), change("a")], org_id="00D000000000001")
    assert a.checksum == b.checksum


def test_checksum_changes_when_a_value_changes() -> None:
    a = build([change("a", before=False, after=True)])
    b = build([change("a", before=None, after=True)])
    assert a.checksum != b.checksum


def test_saved_plan_loads_back_equal(tmp_path: Path) -> None:
    plan = build([change("a"), change("b", "PermissionSetAssignment")])
    plan.save(tmp_path / "plan.json")
    assert Plan.load(tmp_path / "plan.json") == plan


def test_plan_file_edited_after_writing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    build([change("a", after=True)]).save(path)
    path.write_text(path.read_text().replace('"after": true', '"after": false'))
    with pytest.raises(UsageError, match="edited after it was written"):
        Plan.load(path)


def test_a_file_that_is_not_a_plan_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(UsageError, match=r"not a remediate plan: .*"):
        Plan.load(path)


def test_manual_changes_are_not_automatic() -> None:
    manual = Change(playbook="p", step="s", kind="k", target="t", field="f", manual="do it")
    plan = build([manual, change("a")])
    assert plan.manual == [manual]
    assert [c.target for c in plan.automatic] == ["a"]
