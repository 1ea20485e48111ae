"""C15 (object, field and record type access) and C16 (session policy, login hours) end to end
through the CLI on their scenarios: the integration's failure, diagnose naming the cause,
audit, apply (or the manual step), verify; and the OAuth usage audit and diagnose show."""

from __future__ import annotations

from pathlib import Path

import pytest
from cliharness import run

from remediate import engine
from remediate.orgs import open_org
from remediate.playbook import BoundStep
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.probe import request_token
from remediate.sandbox.state import Org
from remediate.settings import Settings
from remediate.steps.base import kinds

pytestmark = pytest.mark.e2e

C15 = "c15-object-access-missing"
C16 = "c16-session-policy-blocks"


def _query_as_workato(sandbox: Sandbox, spec: scenarios.Scenario) -> tuple[int, str]:
    """Sign in as Workato (JWT bearer) and run the query its recipe runs."""
    session = session_for(sandbox)
    outcome = request_token(session, spec.integration("workato"),
                            my_domain_url=sandbox.org.my_domain_url)
    assert outcome.ok, outcome
    answer = session.get(f"{outcome.instance_url}/services/data/v62.0/query/",
                         params={"q": "SELECT Id, Name FROM Account"},
                         headers={"Authorization": f"Bearer {outcome.access_token}"})
    body = answer.json()
    text = f"{body[0]['errorCode']}: {body[0]['message']}" if answer.status_code != 200 else ""
    return answer.status_code, text


def _builtin_org(scenario: str) -> Org:
    """The built-in org's saved state, as the CLI left it."""
    from remediate.builtin import sandbox_state_path
    from remediate.sandbox import persist

    org, _ = persist.load(sandbox_state_path(scenario))
    return org



def _apply_verify_and_audit_clean(org: str) -> None:
    """apply --yes succeeds, verify signs Workato in, and a second audit finds no drift."""
    applied = run("apply", "--org", org, "--yes")
    assert applied.code == 0, applied.out + applied.err
    verified = run("verify", "--org", org)
    assert verified.code == 0, verified.out + verified.err
    assert "Token request for workato: ok" in verified.out
    assert run("audit", "--org", org).code == 0

def test_c15_object_access_is_diagnosed_granted_on_the_permission_set_and_verified() -> None:
    spec = scenarios.load(C15)
    status, error = _query_as_workato(Sandbox([scenarios.build_org(spec)]), spec)
    assert status == 400 and error.startswith("INVALID_TYPE: "), error  # signs in, then fails

    org = f"sandbox:{C15}"
    audit = run("audit", "--org", org, "--format", "json")
    assert audit.code == 2, audit.err
    [finding] = [f for f in audit.json()["findings"] if f["status"] != "ok"]
    assert (finding["cause"], finding["step"]) == ("C15", "object-access")

    diagnosis = run("diagnose", "--org", org, "--error", error)
    assert diagnosis.code == 0, diagnosis.err
    assert "  C15: " in diagnosis.out
    assert "[C15]" in diagnosis.out.split("these steps fix it:")[1]

    _apply_verify_and_audit_clean(org)

    # the grant is on the playbook's permission set, never on the profile
    after = _builtin_org(C15)
    parents = {r["ParentId"] for t in ("ObjectPermissions", "FieldPermissions")
               for r in after.tables[t].values()}
    granted = after.permission_set_by_name("Workato_API_Access")
    assert granted is not None
    assert parents == {granted["Id"]}
    assert granted["_RecordTypeVisibilities"] == {"Account.Partner": True}
    status, error = _query_as_workato(Sandbox([after]), spec)
    assert status == 200, error


def test_c16_session_policy_and_login_hours_are_diagnosed_fixed_and_verified() -> None:
    spec = scenarios.load(C16)
    sandbox = Sandbox([scenarios.build_org(spec)])
    outcome = request_token(session_for(sandbox), spec.integration("workato"),
                            my_domain_url=sandbox.org.my_domain_url)
    error = f"{outcome.error}: {outcome.error_description}"
    assert error == "invalid_grant: ip restricted or invalid login hours"

    org = f"sandbox:{C16}"
    audit = run("audit", "--org", org, "--format", "json")
    assert audit.code == 2, audit.err
    drifted = {(f["cause"], f["step"]) for f in audit.json()["findings"] if f["status"] != "ok"}
    assert drifted == {("C16", "session-policy"), ("C16", "login-hours")}

    diagnosis = run("diagnose", "--org", org, "--error", error)
    assert diagnosis.code == 0, diagnosis.err
    assert "  C16: " in diagnosis.out
    assert "workato/login-hours [C16]" in diagnosis.out.split("these steps fix it:")[1]

    # the failed sign-in left a Login History row ("Restricted time") diagnose reads alone
    assert run("verify", "--org", org).code == 4
    from_history = run("diagnose", "--org", org)
    assert "Restricted time" in from_history.out and "  C16: " in from_history.out

    _apply_verify_and_audit_clean(org)


def test_c16_on_an_installed_app_is_a_manual_step_with_the_setup_path(tmp_path: Path) -> None:
    handle = open_org(f"sandbox:{C16}", Settings())
    kind = kinds()["app.session_policy"]
    handle.steps = [BoundStep("workato", "session-policy", kind, "C16",
                              kind.params.model_validate({"app": "Workato", "installed": True}),
                              "")]
    try:
        [change] = engine.assess(handle).plan.changes
    finally:
        handle.close()
    assert change.write is None
    assert "Setup → Apps → Connected Apps → Manage Connected Apps → Workato → Edit Policies → " \
           "Session Policies → High assurance session required → clear it" in (change.manual or "")


def test_audit_shows_the_apps_the_integration_users_signed_in_through() -> None:
    org = f"sandbox:{C15}"
    run("sandbox", "reset", "--org", org)
    assert run("verify", "--org", org).code == 4  # Workato and Copilot sign in (C15 is after)
    usage = run("audit", "--org", org, "--format", "json").json()["oauth_usage"]
    assert {(u["username"], u["app"], u["installed"]) for u in usage} == {
        ("copilot.integration@acme.example.com", "Microsoft Copilot for Sales", True),
        ("workato.integration@acme.example.com", "Workato", True)}
    assert "Connected Apps OAuth Usage of the integration users:" in run("audit", "--org",
                                                                         org).out


def test_oauth_usage_of_an_app_not_installed_points_at_c13() -> None:
    org = "sandbox:c13-uninstalled-app-blocked"
    run("sandbox", "reset", "--org", org)
    result = run("diagnose", "--org", org, "--error", "invalid_client")
    assert "signed in through 'Workato'" in result.out
    assert "the app is NOT installed in the org (C13" in result.out


@pytest.mark.parametrize("scenario", [C15, C16])
def test_rollback_of_the_c15_and_c16_fixes_restores_the_drift(scenario: str) -> None:
    org = f"sandbox:{scenario}"
    before = run("audit", "--org", org, "--format", "json").json()["findings"]
    applied = run("apply", "--org", org, "--yes", "--format", "json")
    assert applied.code == 0, applied.err
    rolled = run("rollback", applied.json()["run_id"], "--yes")
    assert rolled.code == 0, rolled.out + rolled.err
    after = run("audit", "--org", org, "--format", "json").json()["findings"]
    assert [(f["step"], f["status"]) for f in after] == [(f["step"], f["status"]) for f in before]
