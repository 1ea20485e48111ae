"""The self-lockout guard (issue 18.7, ADR 0034) on a real sandbox org: remediate signs in
with client credentials as admin@acme.example.com (profile System Administrator, no login IP
ranges, latest sign-in from 198.51.100.7), so the guard must read who it is before it judges a
change to a user, a profile or its own app."""

from __future__ import annotations

from typing import Any

import orgstate as st
import pytest

from remediate import engine, safety
from remediate.errors import SafetyRefusal
from remediate.plan import Change, MetadataWrite, RecordDelete, RecordWrite
from remediate.steps.base import MetadataRead

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    st.fast_setup(monkeypatch)


@pytest.fixture()
def healthy() -> tuple[Any, Any]:
    """A healthy org's handle and its read, remediate's own app and the Copilot app included."""
    spec, sandbox = st.demo_sandbox(st.scenario("healthy"))
    handle = st.open_on_sandbox("healthy", spec, sandbox)
    current = engine.assess(handle)
    apps = handle.gateway.fetch([MetadataRead("ConnectedApp", "Remediate_Admin"),
                                 MetadataRead("ConnectedApp", "Copilot_for_Sales")])
    current.inventory.results.update(apps.results)
    return handle, current.inventory


def _change(playbook: str, target: str, field: str, before: Any, after: Any,
            write: Any) -> Change:
    return Change(playbook=playbook, step="s", kind="k", target=target, field=field,
                  before=before, after=after, write=write)


def _refused(handle: Any, inv: Any, change: Change, why: str) -> None:
    with pytest.raises(SafetyRefusal, match=why):
        safety.guard_lockout(handle, [change], allow=False, inventory=inv)
    safety.guard_lockout(handle, [change], allow=True, inventory=inv)  # --allow-lockout


def _ip_ranges(profile: str, playbook: str, start: str, end: str) -> Change:
    return _change(playbook, f"Profile {profile}", "loginIpRanges", [], [f"{start}-{end}"],
                   MetadataWrite(type="Profile", full_name=profile, path="loginIpRanges",
                                 mode="add", value=[{"startAddress": start,
                                                     "endAddress": end}]))


def test_moving_remediates_own_user_to_another_profile_is_refused(healthy: Any) -> None:
    handle, inv = healthy
    move = _change("copilot-for-sales", "User admin@acme.example.com", "profile",
                   "System Administrator", "Standard User",
                   RecordWrite(sobject="User", record_id="005000000000001AAA",
                               fields={"ProfileId": "00e000000000002AAA"}))
    _refused(handle, inv, move, "remediate's own sign-in \\(its own user\\)")


def test_login_ip_ranges_on_remediates_profile_that_leave_out_its_address_are_refused(
        healthy: Any) -> None:
    handle, inv = healthy
    _refused(handle, inv, _ip_ranges("Admin", "workato", "203.0.113.0", "203.0.113.255"),
             "leave out 198.51.100.7, where remediate signs in from")
    # ranges that hold remediate's own address do not lock it out
    safety.guard_lockout(handle, [_ip_ranges("Admin", "workato", "198.51.100.0",
                                             "198.51.100.255")], allow=False, inventory=inv)


def test_taking_api_access_from_remediates_own_user_is_refused(healthy: Any) -> None:
    handle, inv = healthy
    unassign = _change("workato", "User admin@acme.example.com: permission set "
                       "Workato_API_Access", "assigned", True, False,
                       RecordDelete(sobject="PermissionSetAssignment",
                                    record_id="0Pa000000000009AAA"))
    _refused(handle, inv, unassign, "its own user")
    api_off = _change("workato", "Profile System Administrator", "PermissionsApiEnabled", True,
                      False, MetadataWrite(type="Profile", full_name="Admin",
                                           path="userPermissions", mode="remove",
                                           value=[{"name": "ApiEnabled", "enabled": True}]))
    _refused(handle, inv, api_off, "takes access from remediate's own profile")


def test_tightening_remediates_own_app_is_refused(healthy: Any) -> None:
    handle, inv = healthy
    for path, value in (("oauthPolicy.ipRelaxation", "ENFORCE"),
                        ("oauthConfig.isAdminApproved", True),
                        ("oauthConfig.isClientCredentialEnabled", False)):
        change = _change("copilot-for-sales", "ConnectedApp Remediate_Admin", path, None, value,
                         MetadataWrite(type="ConnectedApp", full_name="Remediate_Admin",
                                       path=path, value=value))
        _refused(handle, inv, change, "changes the policies of remediate's own app")


def test_narrowing_an_integration_the_plan_is_not_fixing_is_refused(healthy: Any) -> None:
    handle, inv = healthy
    enforce_ip = _change("workato", "ConnectedApp Copilot_for_Sales", "oauthPolicy.ipRelaxation",
                         "BYPASS", "ENFORCE",
                         MetadataWrite(type="ConnectedApp", full_name="Copilot_for_Sales",
                                       path="oauthPolicy.ipRelaxation", value="ENFORCE"))
    _refused(handle, inv, enforce_ip, "integration copilot-for-sales, which this plan is not "
                                      "fixing")
    ranges = _ip_ranges("CopilotForSalesIntegrationProfile", "workato", "203.0.113.0",
                        "203.0.113.255")
    _refused(handle, inv, ranges, "integration copilot-for-sales")
    # the integration's own playbook may narrow its own app
    own = enforce_ip.model_copy(update={"playbook": "copilot-for-sales"})
    safety.guard_lockout(handle, [own], allow=False, inventory=inv)


def test_widening_changes_need_no_read_of_remediates_own_user(healthy: Any) -> None:
    handle, inv = healthy
    before = handle.gateway.round_trips
    grant = _change("copilot-for-sales", "ConnectedApp Copilot_for_Sales",
                    "oauthConfig.isClientCredentialEnabled", False, True,
                    MetadataWrite(type="ConnectedApp", full_name="Copilot_for_Sales",
                                  path="oauthConfig.isClientCredentialEnabled", value=True))
    safety.guard_lockout(handle, [grant], allow=False, inventory=inv)
    assert handle.gateway.round_trips == before
