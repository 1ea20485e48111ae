"""The lxml reader of readMetadata/listMetadata answers gives exactly zeep's values (ADR 0045).

A differential test: every answer the sandbox serves while auditing (and reading every
component it lists) in every shipped scenario, every recorded real readMetadata/listMetadata
answer under tests/conformance, and hand-made answers with the shapes zeep tolerates, are read
by both, and the two results must be equal, key order included."""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
import yaml
from zeep.helpers import serialize_object

from remediate import engine
from remediate.builtin import open_on_sandbox
from remediate.salesforce import mdclient, soapread
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox

MD = "http://soap.sforce.com/2006/04/metadata"


def _zeep_records(api: Any, operation: str, response: Any) -> Any:
    answer = soapread._zeep(api, operation, response)
    return serialize_object(answer)  # type: ignore[no-untyped-call]


def _deep(value: Any) -> Any:
    """Values with key order made visible (OrderedDict == dict ignores it otherwise)."""
    if isinstance(value, dict):
        return [(k, _deep(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


class _Compare:
    """Wraps soapread._answer: every plain answer is also read by zeep and compared."""

    def __init__(self) -> None:
        self.compared = 0
        self.declined: list[tuple[str, bytes]] = []
        self.original = soapread._answer

    def __call__(self, api: Any, operation: str, response: Any, answer: str) -> Any:
        try:
            ours = self.original(api, operation, response, answer)
        except soapread.Decline as why:
            self.declined.append((str(why), response.content[-300:]))
            raise
        theirs = _zeep_records(api, operation, response)
        if operation == "readMetadata":
            mine: Any = ours["records"] if isinstance(ours, OrderedDict) else ours
        else:
            mine = ours
        assert _deep(mine) == _deep(theirs), response.content[:2000]
        self.compared += 1
        return ours


@pytest.mark.parametrize("name", sorted(scenarios.available()))
def test_every_served_answer_reads_as_zeep_reads_it(name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    compare = _Compare()
    monkeypatch.setattr(soapread, "_answer", compare)
    spec = scenarios.load(name)
    handle = open_on_sandbox(name, spec, Sandbox([scenarios.build_org(spec)]))
    try:
        engine.assess(handle)
        gw = handle.gateway
        from remediate.salesforce import apps, reads

        listed = apps.list_metadata(gw, list(mdclient.TYPES))
        for type_, rows in listed.items():
            names = [*[str(r["fullName"]) for r in rows][:9], "No_Such_Component"]
            reads.read_metadata(gw, type_, names)
    finally:
        handle.close()
    assert compare.compared > 0
    assert compare.declined == []


def _response(body: str, status: int = 200) -> Any:
    import requests

    r = requests.Response()
    r.status_code = status
    r.headers["Content-Type"] = "text/xml; charset=utf-8"
    r._content = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        '"http://schemas.xmlsoap.org/soap/envelope/" xmlns="http://soap.sforce.com/2006/04/'
        'metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        f"{body}</soapenv:Body></soapenv:Envelope>").encode()
    return r


@pytest.fixture(scope="module")
def api() -> Any:
    spec = scenarios.load("demo")
    handle = open_on_sandbox("demo", spec, Sandbox([scenarios.build_org(spec)]))
    try:
        return handle.gateway.mdapi
    finally:
        handle.close()


SHAPES = {
    "out of WSDL order, a list of one, booleans": (
        '<records xsi:type="ConnectedApp"><label>L</label><fullName>A</fullName>'
        "<oauthConfig><scopes>Api</scopes><isAdminApproved>true</isAdminApproved>"
        "<callbackUrl>https://x</callbackUrl></oauthConfig><contactEmail>a@b</contactEmail>"
        "</records>"),
    "nil and empty elements": (
        '<records xsi:type="Profile"><fullName>Admin</fullName><custom xsi:nil="true"/>'
        "<description/><loginIpRanges><startAddress>1.1.1.1</startAddress>"
        "<endAddress>1.1.1.2</endAddress></loginIpRanges><loginIpRanges>"
        "<startAddress>2.2.2.2</startAddress><endAddress>2.2.2.2</endAddress>"
        "</loginIpRanges></records>"),
    "a missing component": '<records xsi:type="ConnectedApp"/>',
    "two records, numbers": (
        '<records xsi:type="Profile"><fullName>A</fullName><loginHours><mondayStart>60'
        '</mondayStart></loginHours></records><records xsi:type="Profile"><fullName>B'
        "</fullName></records>"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hand_made_read_answers_read_as_zeep_reads_them(api: Any, shape: str) -> None:
    response = _response(f"<readMetadataResponse><result>{SHAPES[shape]}</result>"
                         "</readMetadataResponse>")
    ours = soapread._answer(api, "readMetadata", response, "readMetadataResponse")
    assert _deep(ours["records"]) == _deep(_zeep_records(api, "readMetadata", response))


def test_an_element_newer_than_the_wsdl_is_left_to_zeep(api: Any) -> None:
    response = _response('<readMetadataResponse><result><records xsi:type="ConnectedApp">'
                         "<fullName>A</fullName><newerThanWsdl>1</newerThanWsdl></records>"
                         "</result></readMetadataResponse>")
    with pytest.raises(soapread.Decline):
        soapread._answer(api, "readMetadata", response, "readMetadataResponse")


@pytest.mark.parametrize("body", [
    "<soapenv:Fault><faultcode>sf:INVALID_SESSION_ID</faultcode><faultstring>x"
    "</faultstring></soapenv:Fault>",
    '<readMetadataResponse><result><records xsi:type="NoSuchType"><fullName>X</fullName>'
    "</records></result></readMetadataResponse>",
])
def test_faults_and_odd_answers_are_left_to_zeep(api: Any, body: str) -> None:
    with pytest.raises(soapread.Decline):
        soapread._answer(api, "readMetadata", _response(body), "readMetadataResponse")


def test_an_empty_listing_reads_as_zeep_reads_it(api: Any) -> None:
    response = _response("<listMetadataResponse/>")
    assert soapread._answer(api, "listMetadata", response, "listMetadataResponse") == []
    assert soapread._zeep(api, "listMetadata", response) == []


def test_a_dtd_with_entities_is_left_to_zeep_which_refuses_it(api: Any) -> None:
    from zeep.exceptions import EntitiesForbidden

    response = _response("<listMetadataResponse/>")
    response._content = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                         + response._content.split(b"?>", 1)[1])
    with pytest.raises(soapread.Decline):
        soapread._answer(api, "listMetadata", response, "listMetadataResponse")
    with pytest.raises(EntitiesForbidden):
        soapread._zeep(api, "listMetadata", response)


# ---- recorded real answers (tests/conformance, sources and licences in its SOURCES.md) --------

CONFORMANCE = Path(__file__).parents[1] / "conformance"
_ANSWERS = {"readMetadata": "readMetadataResponse", "listMetadata": "listMetadataResponse"}


def _recorded_answers() -> dict[str, tuple[str, str, Any]]:
    """Every recorded real readMetadata/listMetadata answer: id -> (source file, operation,
    the answer as a requests.Response). Each is kept as recorded except where said."""
    pasted, recorded = CONFORMANCE / "pasted", CONFORMANCE / "recorded"
    found: dict[str, tuple[str, str, Any]] = {}

    # A whole envelope as the reporter pasted it from an Apex debug log (API 30.0), cut
    # inside records: closed here the way tests/conformance closes it.
    start = yaml.safe_load((pasted / "apex_mdapi_issue_read.yaml").read_text())["response_start"]
    read = _response("")
    read._content = (start + "</records></result></readMetadataResponse></soapenv:Body>"
                     "</soapenv:Envelope>").encode()
    found["apex_mdapi_issue_read"] = ("apex_mdapi_issue_read", "readMetadata", read)

    # Stored as jsforce parsed it (text values, the org's child order): rebuilt as the
    # elements of one listMetadata result, in the stored order.
    entry = yaml.safe_load((pasted / "force_dev_tool_issue_list.yaml").read_text())["entry"]
    children = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in entry.items())
    found["force_dev_tool_issue_list"] = (
        "force_dev_tool_issue_list", "listMetadata",
        _response(f"<listMetadataResponse><result>{children}</result></listMetadataResponse>"))

    # No recorded listMetadata answer exists; checkRetrieveStatus's fileProperties are the
    # same FileProperties type, byte for byte as recorded (vcrpy, API 48.0; an empty <id/>),
    # put where listMetadata answers them.
    retrieve = yaml.safe_load((recorded / "cumulusci_retrieve.yaml").read_text())
    props = re.findall(r"<fileProperties>(.*?)</fileProperties>",
                       retrieve["check_retrieve_status_response"])
    found["cumulusci_retrieve.fileProperties"] = (
        "cumulusci_retrieve", "listMetadata",
        _response("<listMetadataResponse>"
                  + "".join(f"<result>{p}</result>" for p in props)
                  + "</listMetadataResponse>"))
    return found


RECORDED = _recorded_answers()

#: (recording, WSDL) pairs the reader declines, and why. Declining is never a wrong value: the
#: answer goes to zeep, as before ADR 0045.
DECLINED = {
    ("apex_mdapi_issue_read", "trimmed"):
        "a CustomField: the trimmed WSDL (mdclient.TYPES) lacks the type, so zeep itself fails "
        "on the answer (LookupError); remediate reads a type outside TYPES only after moving "
        "the client to the full WSDL, where the answer is compared",
}


def test_the_recorded_answers_fed_to_the_differential_are_every_one_there_is() -> None:
    from tests.conformance.test_recorded_traffic import COVERAGE

    assert set(RECORDED) == {"apex_mdapi_issue_read", "force_dev_tool_issue_list",
                             "cumulusci_retrieve.fileProperties"}
    sources = {source for source, _, _ in RECORDED.values()}
    # every recording the conformance suite counts for these two operations is here...
    assert {*COVERAGE["soap readMetadata"], *COVERAGE["soap listMetadata"]} <= sources
    # ...and so is every recorded file that names either operation or their result type
    holding = {path.stem for path in CONFORMANCE.rglob("*.yaml")
               if re.search(r"readMetadata|listMetadata|fileProperties", path.read_text())}
    assert holding == sources
    for _, operation, response in RECORDED.values():
        assert _ANSWERS[operation].encode() in response.content
    assert {recording for recording, _ in DECLINED} <= set(RECORDED)


@pytest.fixture(scope="module")
def full_api() -> Any:
    """A Metadata client moved to the full WSDL, as reading a type outside TYPES moves it."""
    spec = scenarios.load("demo")
    handle = open_on_sandbox("demo", spec, Sandbox([scenarios.build_org(spec)]))
    try:
        client = handle.gateway.mdapi
        client.CustomField  # noqa: B018 (the attribute look-up moves the client)
        assert client._client.wsdl is mdclient.wsdl_document(full=True)
        return client
    finally:
        handle.close()


@pytest.mark.parametrize("wsdl", ["trimmed", "full"])
@pytest.mark.parametrize("recording", sorted(RECORDED))
def test_every_recorded_real_answer_reads_as_zeep_reads_it(
        recording: str, wsdl: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue("api" if wsdl == "trimmed" else "full_api")
    assert client._client.wsdl is mdclient.wsdl_document(full=wsdl == "full")
    _, operation, response = RECORDED[recording]
    answer = _ANSWERS[operation]
    if (recording, wsdl) in DECLINED:
        from zeep.exceptions import LookupError as NoSuchType

        with pytest.raises(soapread.Decline):
            soapread._answer(client, operation, response, answer)
        with pytest.raises(NoSuchType):
            soapread._zeep(client, operation, response)
        return
    ours = soapread._answer(client, operation, response, answer)
    mine = ours["records"] if operation == "readMetadata" else ours
    assert mine  # a record or an entry read, not an empty answer
    assert _deep(mine) == _deep(_zeep_records(client, operation, response))
