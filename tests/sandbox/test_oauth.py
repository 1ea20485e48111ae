"""The sandbox's OAuth endpoints, driven over HTTP by requests and by simple-salesforce."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed

from remediate.sandbox import probe
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import session_for
from remediate.sandbox.app import CaseInsensitiveDict, Request, Response, Sandbox
from remediate.sandbox.oauth import CLIENT_IP_HEADER, JWT_GRANT
from remediate.sandbox.scenario import IntegrationSpec
from remediate.sandbox.state import Org

MY_DOMAIN = "https://acme.my.salesforce.com"
LOGIN = "https://login.salesforce.com"
ADMIN_KEY = "3MVG9SANDBOXremediateAdminKey0000000000000000000000000000000001"
ADMIN_SECRET = "sandbox-admin-app-secret-0001"
WORKATO_IP = "203.0.113.20"


@pytest.fixture(scope="module")
def spec() -> scenarios.Scenario:
    return scenarios.load("healthy")


@pytest.fixture
def copilot(spec: scenarios.Scenario) -> IntegrationSpec:
    return spec.integration("copilot-for-sales")


@pytest.fixture
def workato(spec: scenarios.Scenario) -> IntegrationSpec:
    return spec.integration("workato")


def _token(http: requests.Session, base: str, data: dict[str, str],
           headers: dict[str, str] | None = None) -> requests.Response:
    return http.post(f"{base}/services/oauth2/token", data=data, headers=headers or {})


def _basic(key: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


def _assertion(integration: IntegrationSpec, *, aud: str = MY_DOMAIN,
               exp: Any = None, key: str | None = None, sub: str | None = None) -> str:
    claims = {"iss": integration.client_id, "sub": sub or integration.username, "aud": aud,
              "exp": exp if exp is not None else int(time.time()) + 180}
    signing: Any = key or probe.signing_key(integration.private_key or "")  # an RSA key
    return jwt.encode(claims, signing, algorithm="RS256")


def _jwt(http: requests.Session, assertion: str, base: str = MY_DOMAIN,
         ip: str = WORKATO_IP) -> requests.Response:
    return _token(http, base, {"grant_type": JWT_GRANT, "assertion": assertion},
                  {CLIENT_IP_HEADER: ip})


def _statuses(org: Org) -> list[str]:
    return [r["Status"] for r in org.tables["LoginHistory"].values()]


# ---- client credentials ---------------------------------------------------------------------


def test_client_credentials_with_basic_header_returns_the_documented_success_keys(
        http: requests.Session, org: Org, copilot: IntegrationSpec) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, copilot.client_secret or ""))
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"access_token", "signature", "scope", "instance_url", "id",
                         "token_type", "issued_at"}
    user = org.user_by_username("copilot.integration@acme.example.com")
    assert user is not None
    assert body["instance_url"] == MY_DOMAIN
    assert body["id"] == f"https://login.salesforce.com/id/{org.org_id}/{user['Id']}"
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "api"
    assert abs(int(body["issued_at"]) - time.time() * 1000) < 60_000
    expected = hmac.new((copilot.client_secret or "").encode(),
                        (body["id"] + body["issued_at"]).encode(), hashlib.sha256).digest()
    assert body["signature"] == base64.b64encode(expected).decode()
    session = org.session_for(body["access_token"])
    assert session is not None and session.user_id == user["Id"]


def test_client_credentials_with_id_and_secret_in_the_body_succeeds(
        http: requests.Session, copilot: IntegrationSpec) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials",
                                      "client_id": copilot.client_id,
                                      "client_secret": copilot.client_secret or ""})
    assert answer.status_code == 200, answer.text


def test_client_credentials_never_grant_refresh_token_scope(http: requests.Session) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(ADMIN_KEY, ADMIN_SECRET))
    assert answer.json()["scope"] == "api"
    assert "refresh_token" not in answer.json()


def test_simple_salesforce_client_credentials_login_succeeds(
        sandbox: Sandbox, copilot: IntegrationSpec) -> None:
    sf = Salesforce(consumer_key=copilot.client_id, consumer_secret=copilot.client_secret,
                    domain="acme.my", session=session_for(sandbox))
    assert sf.auth_type == "client-credentials"
    assert sf.sf_instance == "acme.my.salesforce.com"
    assert sandbox.org.session_for(sf.session_id) is not None


@pytest.mark.parametrize("base", [LOGIN, "https://test.salesforce.com",
                                  "https://usa238.salesforce.com"])
def test_client_credentials_on_a_non_my_domain_host_is_not_supported(
        http: requests.Session, copilot: IntegrationSpec, base: str) -> None:
    answer = _token(http, base, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, copilot.client_secret or ""))
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "request not supported on this domain"}


def test_client_credentials_with_unknown_client_id_is_invalid_client_id(
        http: requests.Session) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic("3MVG9nobody", "x"))
    assert answer.json() == {"error": "invalid_client_id",
                             "error_description": "client identifier invalid"}


def test_client_credentials_with_wrong_secret_is_invalid_client(
        http: requests.Session, copilot: IntegrationSpec) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, "not-the-secret"))
    assert answer.json() == {"error": "invalid_client",
                             "error_description": "invalid client credentials"}


def test_eca_without_its_header_is_app_not_found(copilot: IntegrationSpec) -> None:
    org = scenarios.build_org(scenarios.load("eca-healthy"))
    del org.metadata["ExternalClientApplication"]["Copilot_for_Sales"]
    http = session_for(Sandbox([org]))
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, copilot.client_secret or ""))
    assert answer.json() == {"error": "app_not_found",
                             "error_description": "External client app is not installed in "
                                                  "this org"}


def test_eca_client_credentials_need_the_policy_switch_as_well_as_the_global_one(
        copilot: IntegrationSpec) -> None:
    org = scenarios.build_org(scenarios.load("eca-healthy"))
    policy = org.metadata["ExtlClntAppOauthConfigurablePolicies"]["Copilot_for_Sales_oauthPlcy"]
    policy["isClientCredentialsFlowEnabled"] = False
    http = session_for(Sandbox([org]))
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, copilot.client_secret or ""))
    assert answer.json()["error_description"] == "client credentials flow not enabled"


def test_run_as_user_outside_the_profile_ip_range_is_refused_unless_the_app_relaxes_ip(
        sandbox: Sandbox, org: Org, copilot: IntegrationSpec) -> None:
    http = session_for(sandbox)
    user = org.user_by_username("copilot.integration@acme.example.com")
    assert user is not None
    org.insert("LoginIpRange", {"ProfileId": user["ProfileId"], "StartAddress": "192.0.2.0",
                                "EndAddress": "192.0.2.255", "Description": None})
    headers = {**_basic(copilot.client_id, copilot.client_secret or ""),
               CLIENT_IP_HEADER: "198.51.100.10"}
    refused = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"}, headers)
    assert refused.json()["error_description"] == "ip restricted or invalid login hours"
    org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthPolicy"]["ipRelaxation"] = "BYPASS"
    assert _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                  headers).status_code == 200


def test_high_assurance_session_policy_blocks_client_credentials(
        http: requests.Session, org: Org, copilot: IntegrationSpec) -> None:
    org.metadata["ConnectedApp"]["Copilot_for_Sales"]["sessionPolicy"] = {
        "policyAction": "Block", "sessionLevel": "HIGH_ASSURANCE"}
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(copilot.client_id, copilot.client_secret or ""))
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "high assurance session required"}


@pytest.mark.parametrize(("data", "error"), [
    ({}, "invalid_request"),
    ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
])
def test_malformed_grant_is_refused(http: requests.Session, data: dict[str, str],
                                    error: str) -> None:
    answer = _token(http, MY_DOMAIN, data)
    assert (answer.status_code, answer.json()["error"]) == (400, error)


# ---- JWT bearer -----------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["login", "acme.my"])
def test_simple_salesforce_jwt_login_succeeds(sandbox: Sandbox, workato: IntegrationSpec,
                                              domain: str) -> None:
    http = session_for(sandbox)
    http.headers[CLIENT_IP_HEADER] = WORKATO_IP
    sf = Salesforce(username=workato.username, consumer_key=workato.client_id,
                    privatekey=workato.private_key, domain=domain, session=http)
    assert sf.auth_type == "jwt-bearer"
    assert sf.sf_instance == "acme.my.salesforce.com"
    session = sandbox.org.session_for(sf.session_id)
    assert session is not None and session.grant == "jwt_bearer"
    assert session.scopes == ("api",)


@pytest.mark.parametrize("exp", ["string", "number"])
def test_jwt_accepts_exp_as_string_or_number(http: requests.Session, workato: IntegrationSpec,
                                             exp: str) -> None:
    when = int(time.time()) + 120
    answer = _jwt(http, _assertion(workato, exp=str(when) if exp == "string" else when))
    assert answer.status_code == 200, answer.text


def test_jwt_signed_with_another_key_is_an_invalid_assertion(
        http: requests.Session, workato: IntegrationSpec) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    answer = _jwt(http, _assertion(workato, key=pem))
    assert answer.json() == {"error": "invalid_grant", "error_description": "invalid assertion"}


def test_jwt_app_without_certificate_is_an_invalid_assertion(
        http: requests.Session, org: Org, workato: IntegrationSpec) -> None:
    del org.metadata["ConnectedApp"]["Workato"]["oauthConfig"]["certificate"]
    assert _jwt(http, _assertion(workato)).json()["error_description"] == "invalid assertion"


def test_jwt_with_foreign_audience_is_refused(http: requests.Session,
                                             workato: IntegrationSpec) -> None:
    answer = _jwt(http, _assertion(workato, aud="https://other.my.salesforce.com"))
    assert answer.json() == {"error": "invalid_grant", "error_description": "audience is invalid"}


def test_expired_jwt_is_refused_as_expired_authorization_code(
        http: requests.Session, workato: IntegrationSpec) -> None:
    answer = _jwt(http, _assertion(workato, exp=str(int(time.time()) - 10)))
    assert answer.json()["error_description"] == "expired authorization code"


def test_jwt_for_an_unknown_user_is_an_invalid_assertion(
        http: requests.Session, workato: IntegrationSpec) -> None:
    answer = _jwt(http, _assertion(workato, sub="nobody@acme.example.com"))
    assert answer.json()["error_description"] == "invalid assertion"


def test_jwt_on_self_authorize_app_is_never_approved(
        http: requests.Session, org: Org, workato: IntegrationSpec) -> None:
    org.metadata["ConnectedApp"]["Workato"]["oauthConfig"]["isAdminApproved"] = False
    answer = _jwt(http, _assertion(workato))
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "user hasn't approved this consumer"}


def test_jwt_on_the_old_instance_host_is_not_supported(
        http: requests.Session, workato: IntegrationSpec) -> None:
    answer = _jwt(http, _assertion(workato), base="https://usa238.salesforce.com")
    assert answer.json()["error_description"] == "request not supported on this domain"


# ---- password and refresh token ------------------------------------------------------------


def _password_login(http: requests.Session, password: str = "sandbox-admin-password",
                    base: str = MY_DOMAIN) -> requests.Response:
    return _token(http, base, {"grant_type": "password", "client_id": ADMIN_KEY,
                               "client_secret": ADMIN_SECRET,
                               "username": "admin@acme.example.com", "password": password})


def test_password_grant_issues_a_refresh_token_when_the_app_has_that_scope(
        http: requests.Session, org: Org) -> None:
    answer = _password_login(http, base=LOGIN)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == "api refresh_token"
    assert body["refresh_token"] in org.refresh_tokens


def test_password_grant_with_wrong_password_is_an_authentication_failure(
        http: requests.Session, org: Org) -> None:
    answer = _password_login(http, password="wrong")
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "authentication failure"}
    assert _statuses(org) == ["Invalid password"]


def test_refresh_token_grant_mints_a_new_session_for_the_same_user(
        http: requests.Session, org: Org) -> None:
    first = _password_login(http).json()
    answer = _token(http, MY_DOMAIN, {"grant_type": "refresh_token", "client_id": ADMIN_KEY,
                                      "client_secret": ADMIN_SECRET,
                                      "refresh_token": first["refresh_token"]})
    assert answer.status_code == 200, answer.text
    new = org.session_for(answer.json()["access_token"])
    old = org.session_for(first["access_token"])
    assert new is not None and old is not None
    assert (new.user_id, new.grant) == (old.user_id, "refresh_token")


def test_unknown_refresh_token_is_refused(http: requests.Session) -> None:
    answer = _token(http, MY_DOMAIN, {"grant_type": "refresh_token", "client_id": ADMIN_KEY,
                                      "refresh_token": "5Aep861nothing"})
    assert answer.json() == {"error": "invalid_grant",
                             "error_description": "expired access/refresh token"}


# ---- LoginHistory ---------------------------------------------------------------------------


def test_every_token_attempt_writes_one_login_history_row_with_its_status(
        sandbox: Sandbox, http: requests.Session, org: Org, copilot: IntegrationSpec,
        workato: IntegrationSpec) -> None:
    creds = _basic(copilot.client_id, copilot.client_secret or "")
    _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
           {**creds, CLIENT_IP_HEADER: "198.51.100.10"})
    _token(http, LOGIN, {"grant_type": "client_credentials"}, creds)
    _jwt(http, _assertion(workato), ip="192.0.2.1")
    rows = list(org.tables["LoginHistory"].values())
    user = org.user_by_username("copilot.integration@acme.example.com")
    assert user is not None
    assert [(r["Status"], r["LoginUrl"], r["LoginSubType"]) for r in rows] == [
        ("Success", "acme.my.salesforce.com", "OauthClientCredentials"),
        ("Restricted domain", "login.salesforce.com", "OauthClientCredentials"),
        ("Restricted IP", "acme.my.salesforce.com", None),
    ]
    assert rows[0]["UserId"] == user["Id"]
    assert rows[0]["SourceIp"] == "198.51.100.10"
    assert rows[0]["Application"] == "Microsoft Copilot for Sales"
    assert rows[2]["SourceIp"] == "192.0.2.1"
    assert {r["LoginType"] for r in rows} == {"Remote Access 2.0"}
    assert sandbox.writes == 0


def test_login_host_attempt_for_an_unknown_consumer_writes_no_row(
        http: requests.Session, org: Org) -> None:
    _token(http, LOGIN, {"grant_type": "password", "client_id": "3MVG9nobody",
                         "client_secret": "x", "username": "a@b.c", "password": "p"})
    assert _statuses(org) == []


def test_client_ip_defaults_to_the_org_default_when_no_header_is_sent(
        http: requests.Session, org: Org, copilot: IntegrationSpec) -> None:
    _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
           _basic(copilot.client_id, copilot.client_secret or ""))
    (row,) = org.tables["LoginHistory"].values()
    assert row["SourceIp"] == org.default_client_ip


# ---- userinfo, identity, revoke --------------------------------------------------------------


def _admin_login(http: requests.Session) -> dict[str, Any]:
    answer = _token(http, MY_DOMAIN, {"grant_type": "client_credentials"},
                    _basic(ADMIN_KEY, ADMIN_SECRET))
    body: dict[str, Any] = answer.json()
    return body


def test_userinfo_names_the_user_and_the_my_domain(http: requests.Session, org: Org) -> None:
    token = _admin_login(http)["access_token"]
    answer = http.get(f"{MY_DOMAIN}/services/oauth2/userinfo",
                      headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["preferred_username"] == "admin@acme.example.com"
    assert body["organization_id"] == org.org_id
    assert body["urls"]["custom_domain"] == MY_DOMAIN
    assert body["urls"]["rest"] == f"{MY_DOMAIN}/services/data/v{{version}}/"


def test_identity_url_from_the_token_answers_on_the_login_host(http: requests.Session) -> None:
    body = _admin_login(http)
    answer = http.get(body["id"], params={"version": "59.0"},
                      headers={"Authorization": f"Bearer {body['access_token']}"})
    assert answer.status_code == 200, answer.text
    identity = answer.json()
    assert identity["id"] == body["id"]
    assert identity["username"] == "admin@acme.example.com"
    assert identity["urls"]["custom_domain"] == MY_DOMAIN
    assert identity["urls"]["rest"] == f"{MY_DOMAIN}/services/data/v59.0/"


@pytest.mark.parametrize(
    "path", ["/services/oauth2/userinfo", "/id/00D000000000000/005000000000000"])
def test_userinfo_and_identity_refuse_an_invalid_token(http: requests.Session,
                                                       path: str) -> None:
    answer = http.get(f"{MY_DOMAIN}{path}", headers={"Authorization": "Bearer 00Dnope!x"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


def test_revoke_ends_the_session(http: requests.Session, org: Org) -> None:
    token = _admin_login(http)["access_token"]
    answer = http.post(f"{MY_DOMAIN}/services/oauth2/revoke", data={"token": token})
    assert answer.status_code == 200
    assert org.session_for(token) is None
    again = http.post(f"{MY_DOMAIN}/services/oauth2/revoke", data={"token": token})
    assert (again.status_code, again.json()) == (400, {"error": "invalid_token",
                                                       "error_description": "Token was invalid"})


def test_revoke_by_get_of_a_refresh_token_also_ends_its_sessions(
        http: requests.Session, org: Org) -> None:
    body = _password_login(http).json()
    answer = http.get(f"{LOGIN}/services/oauth2/revoke", params={"token": body["refresh_token"]})
    assert answer.status_code == 200
    assert body["refresh_token"] not in org.refresh_tokens
    assert org.session_for(body["access_token"]) is None


def test_simple_salesforce_reports_the_token_error_as_authentication_failed(
        sandbox: Sandbox, copilot: IntegrationSpec) -> None:
    with pytest.raises(SalesforceAuthenticationFailed, match="invalid client credentials"):
        Salesforce(consumer_key=copilot.client_id, consumer_secret="wrong", domain="acme.my",
                   session=session_for(sandbox))


# ---- the HTTPS server's own host -------------------------------------------------------------


def _direct(sandbox: Sandbox, method: str, url: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> Response:
    return sandbox.handle(Request(method, url, CaseInsensitiveDict(headers or {}), body))


def test_token_on_the_server_host_points_instance_url_and_custom_domain_at_the_server(
        sandbox: Sandbox, copilot: IntegrationSpec, workato: IntegrationSpec) -> None:
    sandbox.server_host = "127.0.0.1:8443"
    server = "https://127.0.0.1:8443"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = _direct(sandbox, "POST", f"{server}/services/oauth2/token",
                     b"grant_type=client_credentials",
                     {**form, **_basic(copilot.client_id, copilot.client_secret or "")})
    assert answer.status == 200, answer.body
    assert answer.json()["instance_url"] == server
    info = _direct(sandbox, "GET", f"{server}/services/oauth2/userinfo",
                   headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert info.json()["urls"]["custom_domain"] == server
    assertion = _assertion(workato, aud=server)
    jwt_answer = _direct(sandbox, "POST", f"{server}/services/oauth2/token",
                         f"grant_type={JWT_GRANT}&assertion={assertion}".encode(),
                         {**form, CLIENT_IP_HEADER: WORKATO_IP})
    assert jwt_answer.status == 200, jwt_answer.body
