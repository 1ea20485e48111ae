"""verify tries the JWT audiences Salesforce's CLI tries (platform-truth P3, sfdx-core
getLoginAudienceCombos) before it calls a sign-in failed, and says which one worked."""

from __future__ import annotations

import pytest
from cliharness import run

from remediate.salesforce import audiences
from remediate.salesforce.gateway import TokenResult

pytestmark = pytest.mark.e2e


def test_a_jwt_integration_whose_app_accepts_only_the_login_audience_verifies() -> None:
    org = "sandbox:jwt-login-audience-only"
    result = run("verify", "--org", org)
    assert result.code == 0, result.out + result.err
    assert ("Token request for workato: ok (signed in at https://acme.my.salesforce.com with "
            "JWT audience https://login.salesforce.com") in result.out
    data = run("verify", "--org", org, "--format", "json").json()
    workato = next(t for t in data["tokens"] if t["integration"] == "workato")
    assert workato["audience"] == "https://login.salesforce.com"
    assert workato["audiences_tried"] == ["https://acme.my.salesforce.com",
                                          "https://login.salesforce.com"]


def test_an_org_that_refuses_every_audience_fails_naming_each_one_tried() -> None:
    from remediate.builtin import sandbox_state_path
    from remediate.sandbox import persist

    org = "sandbox:jwt-login-audience-only"
    assert run("audit", "--org", org).code == 0  # the state file exists
    path = sandbox_state_path("jwt-login-audience-only")
    state, extra = persist.load(path)
    state.jwt_audiences["Workato"] = []
    persist.save(path, state, extra)
    result = run("verify", "--org", org)
    assert result.code == 4
    assert ("Token request for workato: FAILED: invalid_grant: audience is invalid (JWT "
            "audiences tried: https://acme.my.salesforce.com, https://login.salesforce.com, "
            "https://test.salesforce.com)") in result.out


def test_a_sandbox_org_tries_test_before_login_after_its_my_domain() -> None:
    assert audiences.candidates("https://acme--dev.sandbox.my.salesforce.com") == [
        "https://acme--dev.sandbox.my.salesforce.com", "https://test.salesforce.com",
        "https://login.salesforce.com"]
    assert audiences.candidates("https://acme.my.salesforce.com/") == [
        "https://acme.my.salesforce.com", "https://login.salesforce.com",
        "https://test.salesforce.com"]


def test_a_refusal_that_is_not_about_the_audience_is_the_one_reported() -> None:
    answers = {"https://acme.my.salesforce.com":
               TokenResult(False, 400, "invalid_grant", "audience is invalid"),
               "https://login.salesforce.com":
               TokenResult(False, 400, "invalid_grant", "user hasn't approved this consumer"),
               "https://test.salesforce.com":
               TokenResult(False, 400, "invalid_grant", "audience is invalid")}
    got = audiences.first_accepted("https://acme.my.salesforce.com", answers.__getitem__)
    assert got.error_description == "user hasn't approved this consumer"
    assert len(got.audiences_tried) == 3 and got.audience is None


def test_a_server_error_stops_the_tries() -> None:
    sent: list[str] = []

    def attempt(aud: str) -> TokenResult:
        sent.append(aud)
        return TokenResult(False, 503, "invalid_response", "HTTP 503, not a JSON object")

    got = audiences.first_accepted("https://acme.my.salesforce.com", attempt)
    assert sent == ["https://acme.my.salesforce.com"] and got.status == 503
