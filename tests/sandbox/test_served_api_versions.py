"""The API versions a sandbox org serves, and metadata fields that exist only from a version on
(platform-truth.md P6, A10)."""

from __future__ import annotations

import requests
from simple_salesforce import Salesforce

from remediate.sandbox.adapter import attach, session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org
from tests.conftest import admin_token, make_sandbox

POLICY = "Copilot_for_Sales_oauthPlcy"


def _eca(max_api_version: str | None = None) -> Sandbox:
    sandbox = make_sandbox("eca-healthy")
    sandbox.org.max_api_version = max_api_version
    return sandbox


def _sf(sandbox: Sandbox, version: str) -> Salesforce:
    org = sandbox.org
    sf = Salesforce(session_id=admin_token(org), instance_url=org.my_domain_url,
                    session=session_for(sandbox), version=version)
    return attach(sf, sandbox)


def test_services_data_lists_every_version_from_31_to_the_current_release(
        http: requests.Session, org: Org) -> None:
    listed = http.get(f"{org.my_domain_url}/services/data/").json()
    versions = [v["version"] for v in listed]
    assert versions[0] == "31.0" and versions[-1] == "67.0"
    assert versions == [f"{n}.0" for n in range(31, 68)]
    assert {"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"} in listed
    assert {"label": "Winter '26", "url": "/services/data/v65.0", "version": "65.0"} in listed


def test_a_v51_path_answers_like_the_current_one(http: requests.Session, org: Org) -> None:
    headers = {"Authorization": f"Bearer {admin_token(org)}"}
    old = http.get(f"{org.my_domain_url}/services/data/v51.0/limits/", headers=headers)
    assert old.status_code == 200 and "DailyApiRequests" in old.json()


def test_an_org_pinned_to_59_lists_only_up_to_59_and_refuses_60_paths() -> None:
    sandbox = _eca("59.0")
    http, org = session_for(sandbox), sandbox.org
    versions = [v["version"] for v in http.get(f"{org.my_domain_url}/services/data/").json()]
    assert versions[-1] == "59.0"
    headers = {"Authorization": f"Bearer {admin_token(org)}"}
    assert http.get(f"{org.my_domain_url}/services/data/v60.0/limits/",
                    headers=headers).status_code == 404
    assert http.get(f"{org.my_domain_url}/services/data/v59.0/limits/",
                    headers=headers).status_code == 200


def test_a_metadata_read_at_59_leaves_out_the_eca_fields_that_start_at_60() -> None:
    sandbox = _eca()
    at_59 = _sf(sandbox, "59.0").mdapi.ExtlClntAppOauthConfigurablePolicies.read([POLICY])
    at_60 = _sf(sandbox, "60.0").mdapi.ExtlClntAppOauthConfigurablePolicies.read([POLICY])
    assert at_59.isClientCredentialsFlowEnabled is None
    assert at_59.clientCredentialsFlowUser is None
    assert at_60.isClientCredentialsFlowEnabled is True
    assert at_60.clientCredentialsFlowUser == "copilot.integration@acme.example.com"
    assert at_59.permittedUsersPolicyType == at_60.permittedUsersPolicyType is not None


def test_a_metadata_write_at_59_carrying_a_60_field_is_refused_and_changes_nothing() -> None:
    sandbox = _eca()
    md = _sf(sandbox, "59.0").mdapi
    before = sandbox.org.metadata["ExtlClntAppOauthConfigurablePolicies"][POLICY]
    before_flag = before["isClientCredentialsFlowEnabled"]
    policy = md._client.get_type("ns0:ExtlClntAppOauthConfigurablePolicies")(
        fullName=POLICY, externalClientApplication="Copilot_for_Sales",
        isClientCredentialsFlowEnabled=not before_flag)
    try:
        md._service.upsertMetadata([policy], _soapheaders=[md._session_header])
    except Exception as exc:  # zeep.exceptions.Fault
        assert "isClientCredentialsFlowEnabled invalid at this location" in str(exc)
    else:
        raise AssertionError("the write at 59.0 was accepted")
    assert sandbox.org.metadata["ExtlClntAppOauthConfigurablePolicies"][POLICY][
        "isClientCredentialsFlowEnabled"] == before_flag


def test_a_metadata_call_at_a_version_the_org_does_not_serve_is_a_fault() -> None:
    sandbox = _eca("59.0")
    md = _sf(sandbox, "60.0").mdapi
    try:
        md.ExtlClntAppOauthConfigurablePolicies.read([POLICY])
    except Exception as exc:
        assert "Invalid Api version specified on URL" in str(exc)
    else:
        raise AssertionError("a 60.0 call was answered by an org that serves up to 59.0")
