"""Unmodified simple-salesforce against the sandbox org, both ways in: in process (the
transport adapter) and over HTTPS (``serve_in_thread``, verified against the server's own CA).

Each way keeps one ``Salesforce`` client for the module (building ``sf.mdapi`` parses the
Metadata WSDL), and one ``Sandbox`` (the HTTPS server serves that object). Every test swaps a
freshly built org into that sandbox and registers the client's session token in it as the
admin's, so tests never see each other's writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from zeep.exceptions import Fault

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import attach, session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread
from remediate.sandbox.state import Org, Session

ADMIN = "admin@acme.example.com"
COPILOT = "copilot.integration@acme.example.com"
TOKEN_TAIL = "!both-ways-admin-session"
WAYS = ("in_process", "https")


@dataclass
class Way:
    name: str
    sandbox: Sandbox
    sf: Salesforce

    @property
    def org(self) -> Org:
        return self.sandbox.org


def _build_org() -> Org:
    return scenarios.build_org(scenarios.load("healthy"))


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override Session.verify, which must be the sandbox server's own CA
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module", params=WAYS)
def _shared(request: pytest.FixtureRequest) -> Iterator[Way]:
    org = _build_org()
    sandbox = Sandbox([org])
    token = org.org_id[:15] + TOKEN_TAIL
    if request.param == "in_process":
        sf = Salesforce(session_id=token, instance_url=org.my_domain_url,
                        session=session_for(sandbox))
        yield Way("in_process", sandbox, attach(sf, sandbox))
        return
    with serve_in_thread(sandbox) as srv:
        session = requests.Session()
        session.verify = str(srv.ca_bundle)
        sf = Salesforce(session_id=token, instance_url=srv.url, session=session)
        sf.mdapi._client.transport.session = sf.session  # zeep's calls on the same session
        yield Way("https", sandbox, sf)


@pytest.fixture
def way(_shared: Way) -> Way:
    """The module's client and sandbox, holding a fresh org with the client's admin session."""
    sandbox = _shared.sandbox
    org = _build_org()
    sandbox.orgs.clear()
    sandbox.add_org(org)
    sandbox.page_size = 2000
    admin = org.user_by_username(ADMIN)
    assert admin is not None
    token = _shared.sf.session_id
    org.sessions[token] = Session(token, admin["Id"], None, ("api",), 0, "test")
    return _shared


def _id(org: Org, table: str, **where: str) -> str:
    row = next((r for r in org.tables[table].values()
                if all(r.get(k) == v for k, v in where.items())), None)
    assert row is not None, f"no {table} row with {where}"
    return str(row["Id"])


def test_query_pages_through_next_records_url(way: Way) -> None:
    way.sandbox.page_size = 2
    soql = "SELECT Id, Username FROM User ORDER BY Username"
    first = way.sf.query(soql)
    assert (first["done"], first["totalSize"], len(first["records"])) == (False, 4, 2)
    second = way.sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["done"] is True
    everything = way.sf.query_all(soql)
    usernames = [r["Username"] for r in everything["records"]]
    assert usernames == sorted(u["Username"] for u in way.org.tables["User"].values())
    assert [r["Username"] for r in first["records"] + second["records"]] == usernames


def test_permission_set_assignment_is_created_and_deleted(way: Way) -> None:
    fields = {"AssigneeId": _id(way.org, "User", Username=COPILOT),
              "PermissionSetId": _id(way.org, "PermissionSet", Name="Workato_API_Access")}
    created = way.sf.PermissionSetAssignment.create(fields)
    assert created["success"] is True and created["id"].startswith("0Pa")
    assert way.org.get("PermissionSetAssignment", created["id"]) is not None
    assert way.sf.PermissionSetAssignment.delete(created["id"]) == 204
    assert way.org.get("PermissionSetAssignment", created["id"]) is None


def test_duplicate_permission_set_assignment_fails_with_duplicate_value(way: Way) -> None:
    fields = {"AssigneeId": _id(way.org, "User", Username=COPILOT),
              "PermissionSetId": _id(way.org, "PermissionSet",
                                     Name="Copilot_for_Sales_Integration")}
    before = len(way.org.tables["PermissionSetAssignment"])
    with pytest.raises(SalesforceMalformedRequest) as raised:
        way.sf.PermissionSetAssignment.create(fields)
    assert raised.value.status == 400
    assert raised.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    assert len(way.org.tables["PermissionSetAssignment"]) == before


def test_connected_app_is_read_and_upserted_through_mdapi(way: Way) -> None:
    md = way.sf.mdapi
    app = md.ConnectedApp.read(["Copilot_for_Sales"])
    assert app.fullName == "Copilot_for_Sales"
    assert app.oauthConfig.isClientCredentialEnabled is True
    app.oauthConfig.isClientCredentialEnabled = False
    assert md.ConnectedApp.upsert([app]) is None  # simple-salesforce raises on a failed result
    again = md.ConnectedApp.read(["Copilot_for_Sales"])
    assert again.oauthConfig.isClientCredentialEnabled is False
    stored = way.org.metadata["ConnectedApp"]["Copilot_for_Sales"]["oauthConfig"]
    assert stored["isClientCredentialEnabled"] is False


def test_soap_fault_surfaces_as_zeep_fault(way: Way) -> None:
    way.org.expire_sessions()
    with pytest.raises(Fault) as raised:
        way.sf.mdapi.ConnectedApp.read(["Copilot_for_Sales"])
    assert raised.value.code == "sf:INVALID_SESSION_ID"
    assert raised.value.message.startswith("INVALID_SESSION_ID: Invalid Session ID found in "
                                           "SessionHeader")
