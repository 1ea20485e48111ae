"""Named credentials in both formats (platform-truth P1): the current one's URL parameter and a
legacy endpoint are rewritten; a legacy credential holding a password is a manual change whose
secret is never read, sent or shown."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cliharness import run, writes

from remediate.builtin import sandbox_state_path
from remediate.sandbox import metadata, persist
from remediate.sandbox import scenario as scenarios
from remediate.steps.org import NAMED_CREDENTIAL_URL, named_credential_url

pytestmark = pytest.mark.e2e
ORG = "sandbox:c10-named-credentials"
SECRET = "sandbox-named-credential-password"
OLD = "https://usa238.salesforce.com"
NEW = "https://acme.my.salesforce.com"


def _credentials() -> dict[str, dict[str, Any]]:
    org, _ = persist.load(sandbox_state_path("c10-named-credentials"))
    return org.metadata["NamedCredential"]


def test_both_formats_are_rewritten_and_the_password_one_is_left_to_a_person() -> None:
    audit = run("audit", "--org", ORG, "--format", "json")
    assert audit.code == 2, audit.err
    changes = {c["target"]: c for f in audit.json()["findings"] for c in f.get("changes", [])}
    assert changes["NamedCredential Acme_Self"]["automatic"] is True
    assert changes["NamedCredential Acme_Self_Secured"]["automatic"] is True
    manual = changes["NamedCredential Acme_Self_Password"]
    assert manual["automatic"] is False
    assert "authenticates with Password" in manual["manual"]
    assert "Setup → Security → Named Credentials" in manual["manual"]
    assert f"set URL to {NEW}" in manual["manual"]

    applied = run("apply", "--org", ORG, "--yes")
    assert applied.code == 2, applied.out + applied.err  # a change is left to a person
    assert SECRET not in applied.out + applied.err + audit.out
    stored = _credentials()
    assert stored["Acme_Self"]["endpoint"] == NEW
    params = {p["parameterType"]: p for p in stored["Acme_Self_Secured"]["namedCredentialParameters"]}
    assert params["Url"]["parameterValue"] == f"{NEW}/services/data"
    assert params["Authentication"]["externalCredential"] == "Acme_Self_Auth"  # kept
    assert "endpoint" not in stored["Acme_Self_Secured"]
    # the password credential was not written: its URL and secret are as they were
    assert stored["Acme_Self_Password"]["endpoint"] == OLD
    assert stored["Acme_Self_Password"]["password"] == SECRET
    again = run("audit", "--org", ORG)
    assert "MANUAL stored-urls [C10]" in again.out


def test_a_current_format_url_change_rolls_back() -> None:
    before = writes(ORG)
    applied = run("apply", "--org", "sandbox:c10-named-credentials", "--yes")
    assert applied.code == 2 and writes(ORG) > before
    match = re.search(r"\(run (\S+)\)", applied.out)
    assert match, applied.out
    rolled = run("rollback", match.group(1), "--yes")
    assert rolled.code == 0, rolled.out + rolled.err
    params = {p["parameterType"]: p
              for p in _credentials()["Acme_Self_Secured"]["namedCredentialParameters"]}
    assert params["Url"]["parameterValue"] == f"{OLD}/services/data"
    assert _credentials()["Acme_Self"]["endpoint"] == OLD


def test_the_org_never_returns_a_legacy_secret_and_refuses_a_rewrite_without_it() -> None:
    org = scenarios.build_org(scenarios.load("c10-named-credentials"))
    [read] = metadata.read(org, "NamedCredential", ["Acme_Self_Password"])
    assert read is not None and "password" not in read
    [result] = metadata.save(org, "NamedCredential", [{**read, "endpoint": NEW}], "upsert")
    assert [e.status_code for e in result.errors] == ["FIELD_INTEGRITY_EXCEPTION"]
    assert org.metadata["NamedCredential"]["Acme_Self_Password"]["endpoint"] == OLD


def test_the_current_format_refuses_a_legacy_endpoint() -> None:
    org = scenarios.build_org(scenarios.load("c10-named-credentials"))
    [read] = metadata.read(org, "NamedCredential", ["Acme_Self_Secured"])
    assert read is not None
    [result] = metadata.save(org, "NamedCredential", [{**read, "endpoint": NEW}], "upsert")
    assert [e.fields for e in result.errors] == [["endpoint"]]


@pytest.mark.parametrize(("component", "path", "manual"), [
    ({"namedCredentialType": "SecuredEndpoint",
      "namedCredentialParameters": [{"parameterType": "Url", "parameterValue": OLD}]},
     NAMED_CREDENTIAL_URL, False),
    ({"namedCredentialType": "PrivateEndpoint",
      "namedCredentialParameters": {"parameterType": "Url", "parameterValue": OLD}},
     NAMED_CREDENTIAL_URL, False),
    ({"endpoint": OLD}, "endpoint", False),
    ({"namedCredentialType": "Legacy", "endpoint": OLD, "protocol": "NoAuthentication"},
     "endpoint", False),
    ({"namedCredentialType": "Legacy", "endpoint": OLD, "protocol": "Password"}, "endpoint", True),
    ({"namedCredentialType": "Legacy", "endpoint": OLD, "protocol": "Oauth"}, "endpoint", True),
    ({"namedCredentialType": "Legacy", "endpoint": OLD, "protocol": "AwsSv4"}, "endpoint", True),
    ({"namedCredentialType": "Legacy", "endpoint": OLD, "protocol": "Jwt"}, "endpoint", True),
], ids=["secured", "private-single-item", "legacy-untyped", "legacy-plain", "legacy-password",
        "legacy-oauth", "legacy-aws", "legacy-jwt-unknown"])
def test_each_named_credential_format_is_addressed_where_its_url_lives(
        component: dict[str, object], path: str, manual: bool) -> None:
    got_path, blocked = named_credential_url(component)
    assert got_path == path
    assert (blocked is not None) is manual
