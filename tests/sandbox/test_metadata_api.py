"""The sandbox's Metadata API, driven by unmodified simple-salesforce (``sf.mdapi``, zeep) and,
for the exact wire form, by raw SOAP envelopes over ``requests``.

Building the zeep client parses the 63.0 WSDL (about 0.3 s), so most tests share one
``Salesforce`` per module: each test gets a fresh org, the shared client's session token is
registered in it as an admin session and the adapter is re-mounted on the client's session.
The client itself is the library's, unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from simple_salesforce import Salesforce
from zeep.exceptions import Fault

from remediate.sandbox import scenario
from remediate.sandbox.adapter import attach, mount, session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.ids import same_id
from remediate.sandbox.state import Org, Session

ADMIN = "admin@acme.example.com"
MD_NS = "http://soap.sforce.com/2006/04/metadata"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SHARED_TOKEN_TAIL = "!shared-metadata-test-session"


# ---- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _shared_client() -> Iterator[Salesforce]:
    org = scenario.build_org(scenario.load("healthy"))
    sf = Salesforce(session_id=org.org_id[:15] + SHARED_TOKEN_TAIL,
                    instance_url=org.my_domain_url, session=requests.Session(),
                    version="60.0")  # the first version with the ECA client credentials fields
    sf.mdapi._client.transport.session = sf.session  # what adapter.attach does
    yield sf


@pytest.fixture
def sf(_shared_client: Salesforce, sandbox: Sandbox, org: Org) -> Salesforce:
    """The shared simple-salesforce client, pointed at this test's fresh org as the admin."""
    token = _shared_client.session_id
    admin = org.user_by_username(ADMIN)
    assert admin is not None
    org.sessions[token] = Session(token, admin["Id"], None, ("api",), 0, "test")
    mount(_shared_client.session, sandbox)
    return _shared_client


@pytest.fixture
def eca_sf(_shared_client: Salesforce, sandbox_for: Callable[[str], Sandbox]) -> Salesforce:
    sandbox = sandbox_for("eca-healthy")
    org = sandbox.org
    token = _shared_client.session_id
    admin = org.user_by_username(ADMIN)
    assert admin is not None and token.startswith(org.org_id[:15])
    org.sessions[token] = Session(token, admin["Id"], None, ("api",), 0, "test")
    mount(_shared_client.session, sandbox)
    _shared_client.sandbox = sandbox  # type: ignore[attr-defined]
    return _shared_client


def _token(org: Org, username: str = ADMIN) -> str:
    user = org.user_by_username(username)
    assert user is not None
    return org.new_session(user["Id"], None, ("api",), "test").token


def _envelope(operation: str, inner: str, token: str, headers: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<env:Envelope xmlns:env="{SOAP_NS}" xmlns:met="{MD_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<env:Header><met:SessionHeader><met:sessionId>{token}</met:sessionId>"
        f"</met:SessionHeader>{headers}</env:Header>"
        f"<env:Body><met:{operation}>{inner}</met:{operation}></env:Body></env:Envelope>"
    ).encode()


def _post(http: requests.Session, org: Org, body: bytes, path: str = "/services/Soap/m/59.0/",
          ) -> requests.Response:
    return http.post(f"{org.my_domain_url}{path}", data=body,
                     headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})


def _xml(response: requests.Response) -> etree._Element:
    return etree.fromstring(response.content)


def _results(response: requests.Response) -> list[dict[str, Any]]:
    out = []
    for result in _xml(response).iter(f"{{{MD_NS}}}result"):
        item: dict[str, Any] = {etree.QName(c).localname: c.text for c in result
                                if etree.QName(c).localname != "errors"}
        item["errors"] = [{etree.QName(c).localname: c.text for c in e}
                          for e in result.findall(f"{{{MD_NS}}}errors")]
        out.append(item)
    return out


def _list_query(sf: Salesforce, type_name: str) -> Any:
    return sf.mdapi._client.get_type("ns0:ListMetadataQuery")(type=type_name)


def _sea_parents(org: Org, app_name: str) -> set[str]:
    app = org.connected_application(app_name)
    assert app is not None
    names = set()
    for sea in org.find("SetupEntityAccess", SetupEntityId=app["Id"]):
        parent = org.get("PermissionSet", sea["ParentId"])
        assert parent is not None
        if parent["IsOwnedByProfile"]:
            profile = org.get("Profile", parent["ProfileId"])
            assert profile is not None
            names.add(f"profile:{profile['Name']}")
        else:
            names.add(f"permset:{parent['Name']}")
    return names


# ---- ConnectedApp ----------------------------------------------------------------------------


def test_read_connected_app_returns_oauth_config_and_granted_permission_set(
        admin_sf: Salesforce) -> None:
    app = admin_sf.mdapi.ConnectedApp.read(["Copilot_for_Sales"])
    assert app.fullName == "Copilot_for_Sales"
    assert app.oauthConfig.isClientCredentialEnabled is True
    assert app.oauthConfig.oauthClientCredentialUser == "copilot.integration@acme.example.com"
    assert app.oauthConfig.consumerKey.startswith("3MVG9")
    assert app.permissionSetName == ["Copilot_for_Sales_Integration"]
    assert app.profileName == []


def test_read_never_returns_the_consumer_secret(sf: Salesforce, org: Org) -> None:
    app = sf.mdapi.ConnectedApp.read(["Copilot_for_Sales"])
    assert app.oauthConfig.consumerSecret is None
    assert org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthConfig"]["consumerSecret"]


def test_read_profile_grant_comes_back_as_profile_name(sf: Salesforce) -> None:
    app = sf.mdapi.ConnectedApp.read(["Remediate_Admin"])
    assert app.profileName == ["System Administrator"]
    assert app.permissionSetName == []


def test_upsert_read_back_turns_client_credentials_off_and_keeps_secret(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    app = md.ConnectedApp.read(["Copilot_for_Sales"])
    app.oauthConfig.isClientCredentialEnabled = False
    assert md.ConnectedApp.upsert([app]) is None
    again = md.ConnectedApp.read(["Copilot_for_Sales"])
    assert again.oauthConfig.isClientCredentialEnabled is False
    assert again.oauthConfig.oauthClientCredentialUser == "copilot.integration@acme.example.com"
    stored = org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthConfig"]
    assert stored["consumerSecret"] == "sandbox-copilot-secret-0002"
    assert "permissionSetName" not in org.metadata["ConnectedApp"]["Copilot_for_Sales"]


def test_create_connected_app_inserts_connected_application_row_and_generates_keys(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    md.ConnectedApp.create([md.ConnectedApp(
        fullName="New_Sync", label="New Sync", contactEmail="ops@acme.example",
        oauthConfig=md.ConnectedAppOauthConfig(
            callbackUrl="https://localhost/cb", isAdminApproved=True,
            isClientCredentialEnabled=True, oauthClientCredentialUser=ADMIN, scopes=["Api"]),
        permissionSetName=["Workato_API_Access"])])
    row = org.connected_application("New_Sync")
    assert row is not None
    stored = org.metadata["ConnectedApp"]["New_Sync"]["oauthConfig"]
    assert stored["consumerKey"] and stored["consumerSecret"]
    assert _sea_parents(org, "New_Sync") == {"permset:Workato_API_Access"}
    back = md.ConnectedApp.read(["New_Sync"])
    assert back.oauthConfig.scopes == ["Api"]
    assert back.permissionSetName == ["Workato_API_Access"]
    assert any(r["Name"] == "New_Sync" and r["OptionsAllowAdminApprovedUsersOnly"]
               for r in org.rows("ConnectedApplication"))


def test_create_of_existing_connected_app_fails_with_duplicate_value(sf: Salesforce) -> None:
    md = sf.mdapi
    with pytest.raises(Exception, match="Copilot_for_Sales: \\(DUPLICATE_VALUE"):
        md.ConnectedApp.create([md.ConnectedApp(fullName="Copilot_for_Sales", label="x",
                                                contactEmail="a@b.example")])


def test_update_of_missing_connected_app_fails_with_invalid_cross_reference_key(
        sf: Salesforce) -> None:
    md = sf.mdapi
    with pytest.raises(Exception) as info:
        md.ConnectedApp.update([md.ConnectedApp(fullName="Nope", label="x",
                                                contactEmail="a@b.example")])
    assert str(info.value) == ("\nNope: (INVALID_CROSS_REFERENCE_KEY, In field: fullName - "
                               "no ConnectedApp named Nope found), ")


def test_read_of_missing_name_gives_object_with_fullname_none(sf: Salesforce) -> None:
    assert sf.mdapi.ConnectedApp.read(["Nope"]).fullName is None


def test_read_of_several_names_keeps_request_order_with_empty_records(sf: Salesforce) -> None:
    apps = sf.mdapi.ConnectedApp.read(["Workato", "Nope", "Copilot_for_Sales"])
    assert [a.fullName for a in apps] == ["Workato", None, "Copilot_for_Sales"]


def test_unknown_run_as_user_fails_with_field_integrity_exception(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    app = md.ConnectedApp.read(["Copilot_for_Sales"])
    app.oauthConfig.oauthClientCredentialUser = "copilot.integration@acme.example"  # an email
    with pytest.raises(Exception) as info:
        md.ConnectedApp.update([app])
    assert "(FIELD_INTEGRITY_EXCEPTION, Enter a valid execution user for the OAuth client " \
           "credentials flow.)" in str(info.value)
    stored = org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthConfig"]
    assert stored["oauthClientCredentialUser"] == "copilot.integration@acme.example.com"


def test_missing_contact_email_fails_with_required_field_missing(
        http: requests.Session, org: Org) -> None:
    # zeep refuses to send a ConnectedApp without contactEmail, so this goes as raw XML.
    inner = ('<met:metadata xsi:type="met:ConnectedApp"><met:fullName>No_Email</met:fullName>'
             "<met:label>x</met:label></met:metadata>")
    results = _results(_post(http, org, _envelope("createMetadata", inner, _token(org))))
    assert results[0]["errors"] == [{"fields": "contactEmail",
                                     "message": "Required field is missing: contactEmail",
                                     "statusCode": "REQUIRED_FIELD_MISSING"}]
    assert "No_Email" not in org.metadata["ConnectedApp"]


def test_unknown_permission_set_name_fails_with_invalid_cross_reference_key(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    app = md.ConnectedApp.read(["Copilot_for_Sales"])
    app.permissionSetName = ["No_Such_Set"]
    with pytest.raises(Exception, match="INVALID_CROSS_REFERENCE_KEY, In field: "
                                        "permissionSetName - no PermissionSet named No_Such_Set"):
        md.ConnectedApp.upsert([app])
    assert _sea_parents(org, "Copilot_for_Sales") == {"permset:Copilot_for_Sales_Integration"}


def test_permission_set_name_write_replaces_setup_entity_access_rows(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    app = md.ConnectedApp.read(["Copilot_for_Sales"])
    app.permissionSetName = ["Workato_API_Access"]
    app.profileName = ["Standard User"]
    md.ConnectedApp.upsert([app])
    assert _sea_parents(org, "Copilot_for_Sales") == {"permset:Workato_API_Access",
                                                      "profile:Standard User"}
    rows = org.find("SetupEntityAccess",
                    SetupEntityId=org.connected_application("Copilot_for_Sales")["Id"])  # type: ignore[index]
    assert {r["SetupEntityType"] for r in rows} == {"ConnectedApplication"}


def test_absent_grant_element_leaves_rows_and_empty_element_clears_them(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    app = md.ConnectedApp.read(["Remediate_Admin"])
    app.profileName = []  # zeep leaves the element out: unchanged
    md.ConnectedApp.upsert([app])
    assert _sea_parents(org, "Remediate_Admin") == {"profile:System Administrator"}
    app.profileName = [""]  # an empty <profileName/> clears
    md.ConnectedApp.upsert([app])
    assert _sea_parents(org, "Remediate_Admin") == set()


def test_delete_connected_app_removes_component_row_and_grants(sf: Salesforce, org: Org) -> None:
    app_id = org.connected_application("Copilot_for_Sales")["Id"]  # type: ignore[index]
    sf.mdapi.ConnectedApp.delete(["Copilot_for_Sales"])
    assert "Copilot_for_Sales" not in org.metadata["ConnectedApp"]
    assert org.connected_application("Copilot_for_Sales") is None
    assert org.find("SetupEntityAccess", SetupEntityId=app_id) == []


# ---- faults ----------------------------------------------------------------------------------


def test_bogus_session_surfaces_as_zeep_fault_invalid_session_id(
        sandbox: Sandbox, org: Org) -> None:
    bogus = Salesforce(session_id=f"{org.org_id[:15]}!bogus", instance_url=org.my_domain_url,
                       session=session_for(sandbox))
    attach(bogus, sandbox)
    with pytest.raises(Fault) as info:
        bogus.mdapi.ConnectedApp.read(["Copilot_for_Sales"])
    assert info.value.code == "sf:INVALID_SESSION_ID"
    assert info.value.message == ("INVALID_SESSION_ID: Invalid Session ID found in "
                                  "SessionHeader: Illegal Session")


def test_unknown_type_is_fault_invalid_type(sf: Salesforce) -> None:
    with pytest.raises(Fault) as info:
        sf.mdapi.CustomObject.read(["Account"])
    assert info.value.code == "sf:INVALID_TYPE"
    assert info.value.message == ("INVALID_TYPE: This type of metadata is not available for "
                                  "this organization")


def test_non_admin_session_is_fault_insufficient_access(
        http: requests.Session, org: Org) -> None:
    token = _token(org, "jo.sales@acme.example.com")
    body = _envelope("readMetadata", "<met:type>ConnectedApp</met:type>"
                                     "<met:fullNames>Workato</met:fullNames>", token)
    response = _post(http, org, body)
    assert response.status_code == 500
    assert _xml(response).findtext(".//faultcode") == "sf:INSUFFICIENT_ACCESS"


def test_more_than_ten_names_is_fault_exceeded_id_limit(sf: Salesforce) -> None:
    with pytest.raises(Fault) as info:
        sf.mdapi.ConnectedApp.read([f"App{i}" for i in range(11)])
    assert info.value.code == "sf:EXCEEDED_ID_LIMIT"


def test_fault_wire_form_matches_salesforce(http: requests.Session, org: Org) -> None:
    body = _envelope("readMetadata", "<met:type>ConnectedApp</met:type>"
                                     "<met:fullNames>Workato</met:fullNames>",
                     f"{org.org_id[:15]}!nope")
    response = _post(http, org, body)
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/xml")
    fault = _xml(response).find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert fault is not None
    assert [(etree.QName(c).localname, c.text) for c in fault] == [
        ("faultcode", "sf:INVALID_SESSION_ID"),
        ("faultstring", "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: "
                        "Illegal Session"),
    ]


def test_mixed_types_in_one_call_is_a_fault(http: requests.Session, org: Org) -> None:
    inner = ('<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>A</met:fullName>'
             "<met:url>https://a.example</met:url></met:metadata>"
             '<met:metadata xsi:type="met:NamedCredential"><met:fullName>B</met:fullName>'
             "<met:label>B</met:label></met:metadata>")
    response = _post(http, org, _envelope("createMetadata", inner, _token(org)))
    assert response.status_code == 500
    assert _xml(response).findtext(".//faultcode") == "sf:INVALID_TYPE"
    assert "A" not in org.metadata["RemoteSiteSetting"]


# ---- raw wire forms --------------------------------------------------------------------------


def test_missing_component_reads_back_as_empty_typed_record(
        http: requests.Session, org: Org) -> None:
    body = _envelope("readMetadata", "<met:type>ConnectedApp</met:type>"
                                     "<met:fullNames>Nope</met:fullNames>", _token(org))
    response = _post(http, org, body)
    assert response.status_code == 200
    assert b'<result><records xsi:type="ConnectedApp"/></result>' in response.content
    assert b'xmlns="http://soap.sforce.com/2006/04/metadata"' in response.content


def test_external_entities_in_a_request_are_not_resolved(
        http: requests.Session, org: Org, tmp_path: Path) -> None:
    # Were the entity resolved, the name would read "Workato" and a full record come back.
    (tmp_path / "name.txt").write_text("Workato", encoding="utf-8")
    body = _envelope("readMetadata", "<met:type>ConnectedApp</met:type>"
                                     "<met:fullNames>&name;</met:fullNames>", _token(org))
    doctype = f'<!DOCTYPE x [<!ENTITY name SYSTEM "{(tmp_path / "name.txt").as_uri()}">]>'
    response = _post(http, org, doctype.encode() + body.split(b"?>", 1)[1])
    assert response.status_code == 200
    assert b'<records xsi:type="ConnectedApp"/>' in response.content


def test_endpoint_accepts_org_id_suffix_and_no_trailing_slash(
        http: requests.Session, org: Org) -> None:
    body = _envelope("readMetadata", "<met:type>ConnectedApp</met:type>"
                                     "<met:fullNames>Workato</met:fullNames>", _token(org))
    for path in ("/services/Soap/m/59.0", f"/services/Soap/m/63.0/{org.org_id[:15]}"):
        response = _post(http, org, body, path)
        assert response.status_code == 200, path
        assert _xml(response).findtext(f".//{{{MD_NS}}}records/{{{MD_NS}}}fullName") == "Workato"


def test_upsert_result_reports_created_per_component(http: requests.Session, org: Org) -> None:
    inner = "".join(
        f'<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>{n}</met:fullName>'
        "<met:disableProtocolSecurity>false</met:disableProtocolSecurity>"
        f"<met:isActive>true</met:isActive><met:url>{u}</met:url></met:metadata>"
        for n, u in (("Acme_My_Domain", "https://acme.my.salesforce.com"),
                     ("Partner_Api", "https://api.partner.example")))
    response = _post(http, org, _envelope("upsertMetadata", inner, _token(org)))
    results = _results(response)
    assert [(r["fullName"], r["created"], r["success"]) for r in results] == [
        ("Acme_My_Domain", "false", "true"), ("Partner_Api", "true", "true")]
    assert org.metadata["RemoteSiteSetting"]["Partner_Api"]["isActive"] is True


def test_save_result_error_wire_form(http: requests.Session, org: Org) -> None:
    inner = ('<met:metadata xsi:type="met:ConnectedApp"><met:fullName>Nope</met:fullName>'
             "<met:contactEmail>a@b.example</met:contactEmail><met:label>x</met:label>"
             "</met:metadata>")
    response = _post(http, org, _envelope("updateMetadata", inner, _token(org)))
    result = _xml(response).find(f".//{{{MD_NS}}}result")
    assert result is not None
    assert [etree.QName(c).localname for c in result] == ["errors", "fullName", "success"]
    assert [etree.QName(c).localname for c in result[0]] == ["fields", "message", "statusCode"]
    assert result[0].findtext(f"{{{MD_NS}}}statusCode") == "INVALID_CROSS_REFERENCE_KEY"
    assert result.findtext(f"{{{MD_NS}}}success") == "false"


def test_all_or_none_saves_nothing_when_one_component_fails(
        http: requests.Session, org: Org) -> None:
    inner = ('<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>Good</met:fullName>'
             "<met:isActive>true</met:isActive><met:url>https://good.example</met:url>"
             "</met:metadata>"
             '<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>Bad</met:fullName>'
             "<met:isActive>true</met:isActive></met:metadata>")
    header = "<met:AllOrNoneHeader><met:allOrNone>true</met:allOrNone></met:AllOrNoneHeader>"
    response = _post(http, org, _envelope("createMetadata", inner, _token(org), header))
    results = _results(response)
    assert [r["success"] for r in results] == ["false", "false"]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert "Good" not in org.metadata["RemoteSiteSetting"]


def test_partial_save_is_the_default(http: requests.Session, org: Org) -> None:
    inner = ('<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>Good</met:fullName>'
             "<met:isActive>true</met:isActive><met:url>https://good.example</met:url>"
             "</met:metadata>"
             '<met:metadata xsi:type="met:RemoteSiteSetting"><met:fullName>Bad</met:fullName>'
             "<met:isActive>true</met:isActive></met:metadata>")
    response = _post(http, org, _envelope("createMetadata", inner, _token(org)))
    assert [r["success"] for r in _results(response)] == ["true", "false"]
    assert "Good" in org.metadata["RemoteSiteSetting"]


# ---- Profile and PermissionSet ---------------------------------------------------------------


def test_profile_read_returns_license_permissions_and_login_ip_ranges(sf: Salesforce) -> None:
    profile = sf.mdapi.Profile.read(["Workato Integration"])
    assert profile.fullName == "Workato Integration"
    assert profile.custom is False
    assert profile.userLicense == "Salesforce Integration"
    assert [(p.name, p.enabled) for p in profile.userPermissions] == [("ApiUserOnly", True)]
    assert [(r.startAddress, r.endAddress) for r in profile.loginIpRanges] == [
        ("203.0.113.0", "203.0.113.255")]


def test_profile_update_sets_listed_permissions_and_replaces_ip_ranges(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    md.Profile.update([md.Profile(
        fullName="Workato Integration",
        userPermissions=[md.ProfileUserPermission(enabled=True, name="ApiEnabled")],
        loginIpRanges=[md.ProfileLoginIpRange(startAddress="198.51.100.0",
                                              endAddress="198.51.100.255",
                                              description="Workato EU")])])
    row = next(r for r in org.rows("Profile") if r["Name"] == "Workato Integration")
    assert row["PermissionsApiEnabled"] is True
    assert row["PermissionsApiUserOnly"] is True  # unlisted: unchanged
    ranges = org.find("LoginIpRange", ProfileId=row["Id"])
    assert [(r["StartAddress"], r["EndAddress"], r["Description"]) for r in ranges] == [
        ("198.51.100.0", "198.51.100.255", "Workato EU")]
    back = md.Profile.read(["Workato Integration"])
    assert {p.name for p in back.userPermissions} == {"ApiEnabled", "ApiUserOnly"}


def test_profile_update_can_disable_a_permission(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    md.Profile.update([md.Profile(fullName="Standard", userPermissions=[
        md.ProfileUserPermission(enabled=False, name="ApiEnabled")])])
    row = next(r for r in org.rows("Profile") if r["Name"] == "Standard User")
    assert row["PermissionsApiEnabled"] is False


def test_profile_unknown_permission_fails_with_invalid_field(sf: Salesforce) -> None:
    md = sf.mdapi
    with pytest.raises(Exception, match="INVALID_FIELD, Unknown user permission: Teleport"):
        md.Profile.update([md.Profile(fullName="Standard", userPermissions=[
            md.ProfileUserPermission(enabled=True, name="Teleport")])])


def test_profile_create_is_refused(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    with pytest.raises(Exception, match="INVALID_OPERATION"):
        md.Profile.upsert([md.Profile(fullName="Brand New")])
    assert org.profile_by_name("Brand New") is None


def test_permission_set_create_via_metadata_inserts_row_with_license_and_flags(
        sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    md.PermissionSet.create([md.PermissionSet(
        fullName="Sync_Access", label="Sync Access", license="Salesforce API Integration",
        userPermissions=[md.PermissionSetUserPermission(enabled=True, name="ApiEnabled")])])
    row = org.permission_set_by_name("Sync_Access")
    assert row is not None
    assert row["PermissionsApiEnabled"] is True and row["PermissionsModifyAllData"] is False
    psl = org.license_by_name("SalesforceAPIIntegrationPsl")
    assert psl is not None and same_id(row["LicenseId"], psl["Id"])
    back = md.PermissionSet.read(["Sync_Access"])
    assert (back.label, back.license) == ("Sync Access", "Salesforce API Integration")
    assert [p.name for p in back.userPermissions] == ["ApiEnabled"]


def test_permission_set_with_unknown_license_fails(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    with pytest.raises(Exception, match="INVALID_CROSS_REFERENCE_KEY"):
        md.PermissionSet.create([md.PermissionSet(fullName="X_Set", label="X",
                                                  license="No Such Licence")])
    assert org.permission_set_by_name("X_Set") is None


# ---- External Client Apps --------------------------------------------------------------------


def test_eca_policy_read_hides_nothing_public_and_upsert_changes_it(eca_sf: Salesforce) -> None:
    md = eca_sf.mdapi
    org = eca_sf.sandbox.org  # type: ignore[attr-defined]
    policy = md.ExtlClntAppOauthConfigurablePolicies.read(["Copilot_for_Sales_oauthPlcy"])
    assert policy.isClientCredentialsFlowEnabled is True
    assert policy.clientCredentialsFlowUser == "copilot.integration@acme.example.com"
    policy.isClientCredentialsFlowEnabled = False
    md.ExtlClntAppOauthConfigurablePolicies.upsert([policy])
    stored = org.metadata["ExtlClntAppOauthConfigurablePolicies"]["Copilot_for_Sales_oauthPlcy"]
    assert stored["isClientCredentialsFlowEnabled"] is False


def test_eca_policy_with_unknown_run_as_user_fails(eca_sf: Salesforce) -> None:
    md = eca_sf.mdapi
    policy = md.ExtlClntAppOauthConfigurablePolicies.read(["Copilot_for_Sales_oauthPlcy"])
    policy.clientCredentialsFlowUser = "nobody@acme.example.com"
    with pytest.raises(Exception) as info:
        md.ExtlClntAppOauthConfigurablePolicies.update([policy])
    assert "(FIELD_INTEGRITY_EXCEPTION, Enter a valid execution user for the OAuth client " \
           "credentials flow.)" in str(info.value)


def test_eca_header_read_hides_internal_id_and_global_settings_hide_secret(
        eca_sf: Salesforce) -> None:
    md = eca_sf.mdapi
    org = eca_sf.sandbox.org  # type: ignore[attr-defined]
    header = md.ExternalClientApplication.read(["Copilot_for_Sales"])
    assert header.label == "Microsoft Copilot for Sales"
    assert "_id" not in header.__values__
    settings = md.ExtlClntAppGlobalOauthSettings.read(["Copilot_for_Sales_glbloauth"])
    assert settings.consumerSecret is None
    settings.isClientCredentialsFlowEnabled = False
    md.ExtlClntAppGlobalOauthSettings.upsert([settings])
    stored = org.metadata["ExtlClntAppGlobalOauthSettings"]["Copilot_for_Sales_glbloauth"]
    assert stored["consumerSecret"] == "sandbox-copilot-secret-0002"
    assert stored["isClientCredentialsFlowEnabled"] is False


def test_eca_child_needs_an_existing_header(sf: Salesforce) -> None:
    md = sf.mdapi
    with pytest.raises(Exception, match="In field: externalClientApplication - no "
                                        "ExternalClientApplication named Ghost found"):
        md.ExtlClntAppConfigurablePolicies.create([md.ExtlClntAppConfigurablePolicies(
            fullName="Ghost_plcy", externalClientApplication="Ghost", isEnabled=True)])


def test_eca_header_delete_removes_its_settings_and_policies(eca_sf: Salesforce) -> None:
    org = eca_sf.sandbox.org  # type: ignore[attr-defined]
    eca_sf.mdapi.ExternalClientApplication.delete(["Copilot_for_Sales"])
    for type_name in ("ExternalClientApplication", "ExtlClntAppOauthSettings",
                      "ExtlClntAppGlobalOauthSettings", "ExtlClntAppOauthConfigurablePolicies",
                      "ExtlClntAppConfigurablePolicies"):
        assert not any(c.get("externalClientApplication", c["fullName"]) == "Copilot_for_Sales"
                       for c in org.metadata.get(type_name, {}).values()), type_name


def test_eca_header_create_assigns_an_id(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    md.ExternalClientApplication.create([md.ExternalClientApplication(
        fullName="New_Eca", label="New ECA", contactEmail="ops@acme.example",
        distributionState="Local")])
    assert org.metadata["ExternalClientApplication"]["New_Eca"]["_id"].startswith("0xI")


# ---- NamedCredential, RemoteSiteSetting, MyDomainSettings ------------------------------------


def test_named_credential_read_and_update_endpoint(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    nc = md.NamedCredential.read(["Acme_Self"])
    assert nc.endpoint == "https://acme.my.salesforce.com"
    nc.endpoint = "https://acme2.my.salesforce.com"
    md.NamedCredential.update([nc])
    assert org.metadata["NamedCredential"]["Acme_Self"]["endpoint"] == \
        "https://acme2.my.salesforce.com"


def test_remote_site_setting_read_and_update_url(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    site = md.RemoteSiteSetting.read(["Acme_My_Domain"])
    assert (site.url, site.isActive) == ("https://acme.my.salesforce.com", True)
    site.url = "https://acme2.my.salesforce.com"
    md.RemoteSiteSetting.update([site])
    assert md.RemoteSiteSetting.read(["Acme_My_Domain"]).url == "https://acme2.my.salesforce.com"


def test_my_domain_settings_update_merges_and_refuses_rename(sf: Salesforce, org: Org) -> None:
    md = sf.mdapi
    settings = md.MyDomainSettings.read(["MyDomain"])
    assert settings.myDomainName == "acme"
    md.MyDomainSettings.update([md.MyDomainSettings(fullName="MyDomain",
                                                    canOnlyLoginWithMyDomainUrl=True)])
    stored = org.metadata["MyDomainSettings"]["MyDomain"]
    assert stored["canOnlyLoginWithMyDomainUrl"] is True
    assert stored["myDomainName"] == "acme"  # absent: kept (settings merge)
    with pytest.raises(Exception, match="FIELD_INTEGRITY_EXCEPTION"):
        md.MyDomainSettings.update([md.MyDomainSettings(fullName="MyDomain",
                                                        myDomainName="acme2")])
    assert stored["myDomainName"] == "acme"


# ---- listMetadata, describeMetadata, counters ------------------------------------------------


def test_list_metadata_returns_file_properties_with_real_ids(sf: Salesforce, org: Org) -> None:
    props = sf.mdapi.list_metadata([_list_query(sf, "ConnectedApp"),
                                    _list_query(sf, "PermissionSet")])
    by_name = {(p.type, p.fullName): p for p in props}
    copilot = by_name[("ConnectedApp", "Copilot_for_Sales")]
    assert copilot.fileName == "connectedApps/Copilot_for_Sales.connectedApp"
    assert copilot.id == org.connected_application("Copilot_for_Sales")["Id"]  # type: ignore[index]
    admin = org.user_by_username(ADMIN)
    assert admin is not None and copilot.createdById == admin["Id"]
    assert copilot.lastModifiedDate is not None
    ps = by_name[("PermissionSet", "Workato_API_Access")]
    assert ps.id == org.permission_set_by_name("Workato_API_Access")["Id"]  # type: ignore[index]
    assert not any(p.type == "PermissionSet" and p.fullName.startswith("X00e") for p in props)


def test_list_metadata_ids_of_stored_types_are_stable(sf: Salesforce) -> None:
    first = sf.mdapi.list_metadata([_list_query(sf, "RemoteSiteSetting")])
    second = sf.mdapi.list_metadata([_list_query(sf, "RemoteSiteSetting")])
    assert [p.id for p in first] == [p.id for p in second]
    assert first[0].fileName == "remoteSiteSettings/Acme_My_Domain.remoteSite"


def test_describe_metadata_lists_supported_types(sf: Salesforce) -> None:
    result = sf.mdapi.describe_metadata()
    names = {o.xmlName: o for o in result.metadataObjects}
    assert {"ConnectedApp", "Profile", "PermissionSet", "ExternalClientApplication",
            "ExtlClntAppOauthConfigurablePolicies", "NamedCredential", "RemoteSiteSetting",
            "Settings"} <= set(names)
    assert "MyDomainSettings" not in names  # settings types are listed as one, Settings
    assert (names["ConnectedApp"].directoryName, names["ConnectedApp"].suffix) == (
        "connectedApps", "connectedApp")
    assert result.partialSaveAllowed is True and result.testRequired is False
    assert not result.organizationNamespace


def test_write_counter_moves_on_writes_not_on_reads(sf: Salesforce, sandbox: Sandbox) -> None:
    md = sf.mdapi
    before = sandbox.writes
    app = md.ConnectedApp.read(["Workato"])
    md.list_metadata([_list_query(sf, "ConnectedApp")])
    md.describe_metadata()
    assert sandbox.writes == before
    md.ConnectedApp.upsert([app])  # changes nothing, still a write call
    assert sandbox.writes == before + 1
    md.RemoteSiteSetting.delete(["Acme_My_Domain"])
    assert sandbox.writes == before + 2
