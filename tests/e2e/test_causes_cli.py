"""Each cause of the failure catalogue, end to end through the CLI on its own scenario:
the integration's token request fails, diagnose names the cause from that error, audit finds
it, apply fixes it, and verify signs in as the integration."""

from __future__ import annotations

import pytest
from cliharness import run

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.probe import call_api, request_token

pytestmark = pytest.mark.e2e

CASES = [
    ("C1", "c1-client-credentials-off", "copilot-for-sales"),
    ("C2", "c2-no-run-as-user", "copilot-for-sales"),
    ("C3", "c3-app-not-granted", "workato"),
    ("C4", "c4-wrong-profile", "workato"),
    ("C5", "c5-missing-permission-set", "copilot-for-sales"),
    ("C6", "c6-missing-license", "copilot-for-sales"),
    ("C7", "c7-api-disabled", "workato"),
    ("C8", "c8-inactive-user", "copilot-for-sales"),
    ("C9", "c9-app-not-installed", "workato"),
    ("C10", "c10-wrong-login-url", "copilot-for-sales"),
    ("C11", "c11-ip-restricted", "workato"),
    ("C14", "c14-api-scope-missing", "copilot-for-sales"),
]


def integration_error(scenario_name: str, integration: str) -> str:
    """What the integration itself sees: the token error, or the first API call's error."""
    spec = scenarios.load(scenario_name)
    sandbox = Sandbox([scenarios.build_org(spec)])
    session = session_for(sandbox)
    outcome = request_token(session, spec.integration(integration),
                            my_domain_url=sandbox.org.my_domain_url)
    if not outcome.ok:
        return f"{outcome.error}: {outcome.error_description}"
    api = call_api(session, outcome)
    assert not api.ok, "the scenario should break the integration"
    return f"{api.error_code}: {api.message}"


@pytest.mark.parametrize(("cause", "scenario_name", "integration"), CASES,
                         ids=[c[0] for c in CASES])
def test_cause_is_found_diagnosed_fixed_and_verified(cause: str, scenario_name: str,
                                                     integration: str) -> None:
    org = f"sandbox:{scenario_name}"
    error = integration_error(scenario_name, integration)

    audit = run("audit", "--org", org, "--format", "json")
    assert audit.code == 2, audit.err
    drifted = {f["cause"] for f in audit.json()["findings"] if f["status"] != "ok"}
    assert cause in drifted

    diagnosis = run("diagnose", "--org", org, "--error", error)
    assert diagnosis.code == 0, diagnosis.err
    assert f"  {cause}: " in diagnosis.out
    assert f"[{cause}]" in diagnosis.out.split("these steps fix it:")[1]

    applied = run("apply", "--org", org, "--yes")
    assert applied.code in (0, 2), applied.out + applied.err
    if cause == "C10":
        # the org side is fixed; the login URL lives in the integration: a person changes it
        assert applied.code == 2
        assert run("verify", "--org", org).code == 4
        assert run("sandbox", "integration", integration, "--org", org,
                   "--login-url", "https://acme.my.salesforce.com").code == 0
    else:
        assert applied.code == 0

    verified = run("verify", "--org", org)
    assert verified.code == 0, verified.out + verified.err
    assert f"Token request for {integration}: ok" in verified.out
    assert run("audit", "--org", org).code == 0


def test_healthy_org_audits_clean_and_verifies() -> None:
    assert run("audit", "--org", "sandbox:healthy").code == 0
    assert run("verify", "--org", "sandbox:healthy").code == 0


def test_diagnose_without_error_text_reads_login_history() -> None:
    # a failed attempt leaves a Login History row the diagnosis can read
    org = "sandbox:c8-inactive-user"
    assert run("verify", "--org", org).code == 4
    result = run("diagnose", "--org", org)
    assert "Login History" in result.out
    assert "  C8: " in result.out


def test_c13_uninstalled_app_is_diagnosed_and_audit_gives_the_install_step() -> None:
    """C13 (platform-truth.md A8): Workato's own app is not installed in the org. The token
    error names it, diagnose says C13, and audit asks for the manual install (no write)."""
    org = "sandbox:c13-uninstalled-app-blocked"
    error = integration_error("c13-uninstalled-app-blocked", "workato")
    assert error == "invalid_client: app must be installed into org"
    diagnosis = run("diagnose", "--org", org, "--error", error)
    assert diagnosis.code == 0, diagnosis.err
    assert "  C13: " in diagnosis.out
    audit = run("audit", "--org", org, "--format", "json")
    assert audit.code == 2, audit.err
    text = audit.out
    assert "Connected Apps OAuth Usage" in text and "app must be installed into org" in text
