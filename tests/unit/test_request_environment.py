"""The transport session reads what requests reads from the environment (proxies, CA bundle,
~/.netrc) once per host instead of on every request (issue 17, the fleet's CPU), and keeps
requests' answers: the same proxies, CA bundle and credentials reach the adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from remediate.salesforce import transport
from remediate.salesforce.transport import TimeoutSession


class Recorder(BaseAdapter):
    """Answers 200 and keeps what requests handed the adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.sent.append({"proxies": dict(proxies or {}), "verify": verify,
                          "authorization": request.headers.get("Authorization")})
        response = requests.Response()
        response.status_code = 200
        response._content = b"{}"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def session_with(recorder: Recorder) -> TimeoutSession:
    session = TimeoutSession()
    session.mount("https://", recorder)
    return session


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY",
                 "no_proxy", "ALL_PROXY", "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_environment_proxies_and_ca_bundle_reach_the_adapter_as_requests_would_send_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    ours, theirs = Recorder(), Recorder()
    plain = requests.Session()
    plain.mount("https://", theirs)
    for url in ("https://acme.my.salesforce.com/services/data/",
                "https://bypassed.example.com/x"):
        session_with(ours).get(url)
        plain.get(url)
    assert ours.sent == theirs.sent
    assert ours.sent[0]["proxies"]["https"] == "http://proxy.example.invalid:3128"
    assert ours.sent[0]["verify"] == "/etc/ssl/corporate.pem"
    assert "https" not in ours.sent[1]["proxies"]  # no_proxy still bypasses


def test_a_session_reads_the_environment_once_per_host_not_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    proxies_looked_up: list[str] = []
    netrc_looked_up: list[str] = []
    real_proxies, real_netrc = transport.get_environ_proxies, transport.get_netrc_auth

    def proxies(url: str, no_proxy: Any = None) -> Any:
        proxies_looked_up.append(url)
        return real_proxies(url, no_proxy=no_proxy)

    def netrc(url: str, raise_errors: bool = False) -> Any:
        netrc_looked_up.append(url)
        return real_netrc(url, raise_errors)

    monkeypatch.setattr(transport, "get_environ_proxies", proxies)
    monkeypatch.setattr(transport, "get_netrc_auth", netrc)
    session = session_with(Recorder())
    for path in ("a", "b", "c"):
        session.get(f"https://acme.my.salesforce.com/{path}")
    session.post("https://login.salesforce.com/services/oauth2/token", data={"x": "1"})
    assert len(proxies_looked_up) == 2
    assert len(netrc_looked_up) == 2


def test_netrc_credentials_for_a_host_are_sent_as_requests_sends_them(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine proxied.example.com login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    ours, theirs = Recorder(), Recorder()
    plain = requests.Session()
    plain.mount("https://", theirs)
    session = session_with(ours)
    for url in ("https://proxied.example.com/a", "https://proxied.example.com/b",
                "https://acme.my.salesforce.com/a"):
        session.get(url)
        plain.get(url)
    assert ours.sent == theirs.sent
    assert ours.sent[1]["authorization"].startswith("Basic ")
    assert ours.sent[2]["authorization"] is None


def test_an_explicit_authorization_header_is_left_alone() -> None:
    recorder = Recorder()
    session_with(recorder).get("https://acme.my.salesforce.com/a",
                               headers={"Authorization": "Bearer t"})
    assert recorder.sent[0]["authorization"] == "Bearer t"
