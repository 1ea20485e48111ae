"""The sandbox over HTTPS on localhost: ``remediate sandbox serve`` and ``serve_in_thread``.

The subprocess tests use only what ``serve`` prints on its first line, as an outside client
would. Tests that need a protocol handler's real answers are skipped while that handler is a
placeholder.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from typer.testing import CliRunner

from remediate.cli import app as cli_app
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import CaseInsensitiveDict, Request, Response, Sandbox
from remediate.sandbox.server import admin_user_id, serve_in_thread, startup_line
from remediate.sandbox.state import Org

MD = "http://soap.sforce.com/2006/04/metadata"
SCENARIO = "demo" if "demo" in scenarios.available() else "healthy"
START_TIMEOUT_S = 30


def _placeholder(module: str) -> bool:
    doc = importlib.import_module(f"remediate.sandbox.{module}").__doc__ or ""
    return doc.startswith("Placeholder")


needs_rest = pytest.mark.skipif(_placeholder("rest"), reason="rest.py is still a placeholder")
needs_soap = pytest.mark.skipif(_placeholder("soap"), reason="soap.py is still a placeholder")


@pytest.fixture(autouse=True)
def _no_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override ``Session.verify``; these
    tests set the sandbox CA on the session, as a client of the sandbox would."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _read_metadata_envelope(token: str, md_type: str, full_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        f'xmlns:met="{MD}">'
        "<soapenv:Header><met:SessionHeader>"
        f"<met:sessionId>{token}</met:sessionId>"
        "</met:SessionHeader></soapenv:Header>"
        "<soapenv:Body><met:readMetadata>"
        f"<met:type>{md_type}</met:type><met:fullNames>{full_name}</met:fullNames>"
        "</met:readMetadata></soapenv:Body></soapenv:Envelope>"
    )


# ---- the serve subprocess -----------------------------------------------------------------


class Served:
    def __init__(self, proc: subprocess.Popen[str], line: dict[str, Any]) -> None:
        self.proc = proc
        self.line = line

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def _serve(*args: str) -> Served:
    proc = subprocess.Popen(
        [sys.executable, "-m", "remediate", "sandbox", "serve", "--scenario", SCENARIO, *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(START_TIMEOUT_S, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
    finally:
        watchdog.cancel()
    if not first:
        _, err = proc.communicate(timeout=5)
        pytest.fail(f"serve printed nothing (exit {proc.returncode}): {err}")
    return Served(proc, json.loads(first))


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = _serve()
    yield server
    server.stop()


def test_serve_prints_connection_details_as_the_first_line(served: Served) -> None:
    line = served.line
    assert set(line) == {"instance_url", "access_token", "ca_bundle", "scenario", "org_id",
                         "my_domain"}
    assert line["instance_url"].startswith("https://127.0.0.1:")
    assert int(line["instance_url"].rsplit(":", 1)[1]) > 0
    assert line["scenario"] == SCENARIO
    assert line["my_domain"] == "acme.my.salesforce.com"
    assert line["access_token"].startswith(line["org_id"][:15] + "!")
    assert Path(line["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")


@needs_rest
def test_served_org_answers_a_soql_query_with_its_users(served: Served) -> None:
    line = served.line
    response = requests.get(
        f"{line['instance_url']}/services/data/v59.0/query",
        params={"q": "SELECT Id, Username FROM User"},
        headers={"Authorization": f"Bearer {line['access_token']}"},
        verify=line["ca_bundle"], timeout=10)
    assert response.status_code == 200
    usernames = {r["Username"] for r in response.json()["records"]}
    assert "admin@acme.example.com" in usernames
    assert "copilot.integration@acme.example.com" in usernames


@needs_soap
def test_served_org_answers_raw_soap_read_metadata_of_a_connected_app(served: Served) -> None:
    line = served.line
    response = requests.post(
        f"{line['instance_url']}/services/Soap/m/59.0",
        data=_read_metadata_envelope(line["access_token"], "ConnectedApp", "Copilot_for_Sales"),
        headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
        verify=line["ca_bundle"], timeout=10)
    assert response.status_code == 200
    records = ET.fromstring(response.content).findall(f".//{{{MD}}}records")
    assert [r.findtext(f"{{{MD}}}fullName") for r in records] == ["Copilot_for_Sales"]
    assert records[0].findtext(f"{{{MD}}}label") == "Microsoft Copilot for Sales"


def test_serve_exits_cleanly_on_sigterm_and_removes_its_certificates() -> None:
    server = _serve("--latency-ms", "1", "--fault", "http_503:api=rest,calls=1+3",
                    "--page-size", "100")
    ca = Path(server.line["ca_bundle"])
    assert ca.exists()
    code, err = server.stop()
    assert code == 0
    assert "Traceback" not in err
    assert err == ""
    assert not ca.exists()


def test_serve_exits_cleanly_on_ctrl_c() -> None:
    server = _serve()
    server.proc.send_signal(signal.SIGINT)
    _, err = server.proc.communicate(timeout=15)
    assert server.proc.returncode == 0
    assert "Traceback" not in err


def test_serve_applies_fault_switches_from_the_command_line(tmp_path: Path) -> None:
    server = _serve("--fault", "request_limit_exceeded:api=rest,calls=2",
                    "--state-dir", str(tmp_path))
    try:
        line = server.line
        assert Path(line["ca_bundle"]).parent == tmp_path
        statuses = [requests.get(f"{line['instance_url']}/services/data/v59.0/limits",
                                 headers={"Authorization": f"Bearer {line['access_token']}"},
                                 verify=line["ca_bundle"], timeout=10).status_code
                    for _ in range(3)]
        assert statuses[1] == 403
        assert statuses[0] != 403
        assert statuses[2] != 403
    finally:
        assert server.stop()[0] == 0
    assert (tmp_path / "ca.pem").exists()  # a given state dir is the caller's to keep


def test_serve_refuses_a_bad_fault_spec_with_usage_exit_code() -> None:
    result = CliRunner().invoke(cli_app, ["sandbox", "serve", "--scenario", SCENARIO,
                                          "--fault", "http_503:calls=zero"])
    assert result.exit_code == 64
    assert result.stderr.strip().count("\n") == 0
    assert "--fault" in result.stderr
    assert "calls='zero'" in result.stderr
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_serve_refuses_an_unknown_scenario_with_one_line() -> None:
    result = CliRunner().invoke(cli_app, ["sandbox", "serve", "--scenario", "no-such-org"])
    assert result.exit_code != 0
    assert result.stderr.strip().count("\n") == 0
    assert "unknown scenario 'no-such-org'" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


# ---- the in-thread server -----------------------------------------------------------------


def test_in_thread_server_sets_and_clears_the_server_host(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv:
        assert sandbox.server_host == f"127.0.0.1:{srv.port}"
        assert srv.url == f"https://{sandbox.server_host}"
        ca = srv.ca_bundle
        assert ca.exists()
    assert sandbox.server_host is None
    assert not ca.exists()


def test_plain_tls_request_without_the_ca_fails_verification(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv:
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{srv.url}/services/data/", timeout=10)
        trusted = requests.get(f"{srv.url}/services/data/", verify=str(srv.ca_bundle),
                               timeout=10)
        assert trusted.status_code > 0


def test_certificate_is_valid_for_localhost_too(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv:
        response = requests.get(f"https://localhost:{srv.port}/services/data/",
                                verify=str(srv.ca_bundle), timeout=10)
        assert response.status_code > 0


def test_the_tls_material_is_a_ca_certificate_and_a_30_day_server_key_pair_only(
        tmp_path: Path) -> None:
    """The CA's private key is never written, and the server certificate is short-lived
    (ADR 0037: trustme's own default would be valid for centuries)."""
    import datetime as dt

    from cryptography import x509

    from remediate.sandbox.server import make_certificates

    certs = make_certificates(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    assert (certs.key_file.stat().st_mode & 0o777) == 0o600
    assert "PRIVATE KEY" not in certs.ca_bundle.read_text() + certs.cert_file.read_text()
    leaf = x509.load_pem_x509_certificate(certs.cert_file.read_bytes())
    ca = x509.load_pem_x509_certificate(certs.ca_bundle.read_bytes())
    assert leaf.issuer == ca.subject
    left = leaf.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29) < left <= dt.timedelta(days=30)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


def test_request_headers_are_looked_up_whatever_their_case() -> None:
    headers = CaseInsensitiveDict({"Authorization": "Bearer x", "X-Trace": "t"})
    assert headers.get("authorization") == "Bearer x" and headers["x-TRACE"] == "t"
    assert "AUTHORIZATION" in headers and "Cookie" not in headers


def test_each_request_reaches_the_sandbox_as_it_was_sent(sandbox: Sandbox,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Request] = []

    def handle(request: Request) -> Response:
        seen.append(request)
        return Response(202, b"accepted!", {"X-Answer": "42", "Content-Type": "text/plain"})

    monkeypatch.setattr(sandbox, "handle", handle)
    with serve_in_thread(sandbox) as srv:
        response = requests.patch(f"{srv.url}/services/data/v59.0/sobjects/User/005x?a=1&b=2",
                                  data=b'{"IsActive": false}',
                                  headers={"X-Trace": "t-1", "Content-Type": "application/json"},
                                  verify=str(srv.ca_bundle), timeout=10)
        chunked = requests.post(f"{srv.url}/chunked", data=iter([b"part one, ", b"part two"]),
                                verify=str(srv.ca_bundle), timeout=10)
    assert (response.status_code, response.content) == (202, b"accepted!")
    assert response.headers["X-Answer"] == "42"
    assert response.headers["Content-Length"] == "9"
    first = seen[0]
    assert first.method == "PATCH"
    assert first.url == f"{srv.url}/services/data/v59.0/sobjects/User/005x?a=1&b=2"
    assert first.body == b'{"IsActive": false}'
    assert isinstance(first.headers, CaseInsensitiveDict)
    assert first.headers["x-trace"] == "t-1"
    assert first.client_ip == "127.0.0.1"
    assert chunked.status_code == 202
    assert seen[1].body == b"part one, part two"


def test_a_failing_sandbox_answers_500_unknown_exception(sandbox: Sandbox,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(request: Request) -> Response:
        raise RuntimeError("bug")

    monkeypatch.setattr(sandbox, "handle", broken)
    with serve_in_thread(sandbox) as srv:
        response = requests.get(f"{srv.url}/services/data/v59.0/limits",
                                verify=str(srv.ca_bundle), timeout=10)
    assert response.status_code == 500
    assert response.json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"


def test_keep_alive_connection_serves_several_requests(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv, requests.Session() as s:
        s.verify = str(srv.ca_bundle)
        for _ in range(3):
            s.get(f"{srv.url}/services/data/", timeout=10)
    assert sandbox.counts["total"] == 3


def test_dropped_connection_over_tls_raises_connection_error(sandbox: Sandbox) -> None:
    sandbox.inject("drop_connection", calls=1)
    with serve_in_thread(sandbox) as srv:
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"{srv.url}/services/data/v59.0/limits", verify=str(srv.ca_bundle),
                         timeout=10)
        after = requests.get(f"{srv.url}/services/data/v59.0/limits",
                             verify=str(srv.ca_bundle), timeout=10)
    assert after.status_code > 0
    assert sandbox.counts["total"] == 2


def test_server_host_is_treated_as_the_orgs_my_domain(sandbox: Sandbox, org: Org) -> None:
    with serve_in_thread(sandbox) as srv:
        assert sandbox.resolve_host("127.0.0.1") == (org, "server")
        requests.get(f"{srv.url}/services/data/v59.0/limits", verify=str(srv.ca_bundle),
                     timeout=10)
    assert sandbox.requests[0].org == org.my_domain


@needs_rest
def test_unmodified_simple_salesforce_queries_over_https(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv, requests.Session() as s:
        s.verify = str(srv.ca_bundle)
        token = startup_line(sandbox, srv, "healthy")["access_token"]
        sf = Salesforce(session_id=token, instance_url=srv.url, session=s)
        result = sf.query("SELECT Id, Username FROM User")
    assert result["totalSize"] >= 4
    assert "admin@acme.example.com" in {r["Username"] for r in result["records"]}


@needs_soap
def test_unmodified_metadata_client_reads_over_https(sandbox: Sandbox) -> None:
    with serve_in_thread(sandbox) as srv, requests.Session() as s:
        s.verify = str(srv.ca_bundle)
        token = startup_line(sandbox, srv, "healthy")["access_token"]
        sf = Salesforce(session_id=token, instance_url=srv.url, session=s)
        sf.mdapi._client.transport.session = s  # zeep's own session must trust the CA too
        app = sf.mdapi.ConnectedApp.read("Copilot_for_Sales")
    assert app.fullName == "Copilot_for_Sales"


needs_oauth = pytest.mark.skipif(_placeholder("oauth"), reason="oauth.py is still a placeholder")


@needs_oauth
@needs_rest
def test_client_credentials_over_https_hand_back_the_servers_own_url(sandbox: Sandbox) -> None:
    copilot = scenarios.load("healthy").integration("copilot-for-sales")
    with serve_in_thread(sandbox) as srv:
        token = requests.post(f"{srv.url}/services/oauth2/token",
                              data={"grant_type": "client_credentials",
                                    "client_id": copilot.client_id,
                                    "client_secret": copilot.client_secret},
                              verify=str(srv.ca_bundle), timeout=10)
        assert token.status_code == 200
        assert token.json()["instance_url"] == srv.url
        query = requests.get(f"{token.json()['instance_url']}/services/data/v59.0/query",
                             params={"q": "SELECT Id, Name FROM Organization"},
                             headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                             verify=str(srv.ca_bundle), timeout=10)
    assert query.status_code == 200
    assert query.json()["records"][0]["Name"] == "Acme Corporation"
    assert (sandbox.counts["oauth"], sandbox.counts["rest"]) == (1, 1)


# ---- the startup session ------------------------------------------------------------------


def test_startup_session_belongs_to_the_sandbox_admin(sandbox: Sandbox, org: Org) -> None:
    with serve_in_thread(sandbox) as srv:
        line = startup_line(sandbox, srv, "healthy")
    session = org.session_for(line["access_token"])
    assert session is not None
    admin = org.user_by_username("admin@acme.example.com")
    assert admin is not None
    assert session.user_id == admin["Id"]
    assert session.scopes == ("api", "refresh_token")


def test_startup_session_falls_back_to_an_active_modify_all_data_user(org: Org,
                                                                      sandbox: Sandbox) -> None:
    admin = org.user_by_username("admin@acme.example.com")
    assert admin is not None
    admin["Username"] = "boss@acme.example.com"
    assert admin_user_id(sandbox) == admin["Id"]
    admin["IsActive"] = False
    with pytest.raises(LookupError, match="Modify All Data"):
        admin_user_id(sandbox)
