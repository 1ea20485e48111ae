"""Hostile and broken servers: a redirect never carries the session elsewhere, a server that
trickles bytes ends in a clear error within the deadline (and a hung enforce frees its lock),
and -v/-vv give request-level log lines."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cliharness import run

from remediate.enforce import org_lock
from remediate.errors import ConnectionFailure
from remediate.notify import Notifier
from remediate.salesforce import retry as retries
from remediate.salesforce.gateway import Credentials, Gateway
from remediate.salesforce.retry import RetryPolicy
from remediate.sandbox.server import Certificates, make_certificates
from remediate.settings import Webhook

TOKEN = "00D000000000001!AQ8AQHiddenSessionIdValue"


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    """An earlier in-process CLI run may have bound the logger to a stream since closed."""
    from remediate.logging import configure

    configure("console", "warning")


class Counting(BaseHTTPRequestHandler):
    hits: list[str]

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.hits.append(body.decode("utf-8", "replace") +  # type: ignore[attr-defined]
                                str(self.headers))
        self.server.answer(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def serve(answer: Any, certs: Certificates | None = None) -> Any:
    """A local server (HTTPS with ``certs``: simple-salesforce calls its instance over https)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    if certs is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs.cert_file, certs.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.hits = []  # type: ignore[attr-defined]
    server.answer = answer  # type: ignore[attr-defined]
    server.daemon_threads = True
    server.scheme = "https" if certs else "http"  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server: Any) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def thief() -> Iterator[Any]:
    """Where the hostile server redirects to: it must never be reached."""
    def ok(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    server = serve(ok)
    yield server
    stop(server)


@pytest.fixture
def redirector(thief: Any, certs: Certificates) -> Iterator[Any]:
    """An 'org' that answers every request with a 307 to the thief (on localhost, by name)."""
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(307)
        handler.send_header("Location", f"http://localhost:{thief.server_address[1]}/steal")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    server = serve(redirect, certs)
    yield server
    stop(server)


def gateway_at(server: Any, certs: Certificates, timeout: float = 5.0) -> Gateway:
    url = f"https://127.0.0.1:{server.server_address[1]}"
    return Gateway(Credentials("access_token", url, access_token=TOKEN, instance_url=url),
                   timeout=timeout, retry=RetryPolicy.no_wait(attempts=2),
                   ca_bundle=str(certs.ca_bundle))


def test_a_redirect_on_a_rest_call_is_an_error_naming_the_target_and_nothing_reaches_it(
        redirector: Any, thief: Any, certs: Certificates) -> None:
    gateway = gateway_at(redirector, certs)
    with pytest.raises(ConnectionFailure, match=r"redirect \(HTTP 307\) to localhost"):
        gateway.query("SELECT Id FROM User")
    assert redirector.hits and thief.hits == []


def test_a_redirect_on_a_metadata_soap_post_is_refused_and_the_session_id_stays_home(
        redirector: Any, thief: Any, certs: Certificates) -> None:
    gateway = gateway_at(redirector, certs)
    with pytest.raises(ConnectionFailure, match=r"redirect .* to localhost"):
        gateway.read_metadata("Profile", ["Admin"])
    assert any("readMetadata" in hit for hit in redirector.hits)
    assert thief.hits == []


def test_a_redirect_from_the_token_endpoint_is_refused(redirector: Any, thief: Any,
                                                       certs: Certificates) -> None:
    url = f"https://127.0.0.1:{redirector.server_address[1]}"
    gateway = Gateway(Credentials("jwt", url, client_id="x", username="u",
                                  private_key="k"), retry=RetryPolicy.no_wait(attempts=1),
                      ca_bundle=str(certs.ca_bundle))
    from remediate.salesforce.gateway import IntegrationLogin

    with pytest.raises(ConnectionFailure, match="redirect"):
        gateway.request_token(IntegrationLogin("copilot", "client_credentials", "id", "secret"),
                              url)
    assert thief.hits == []


def test_a_webhook_redirect_is_not_followed_unless_its_host_is_allowed(
        redirector: Any, thief: Any, certs: Certificates) -> None:
    url = f"https://127.0.0.1:{redirector.server_address[1]}/hook"
    notifier = Notifier(attempts=1)
    notifier.session.trust_env = False  # the CA below, not REQUESTS_CA_BUNDLE
    notifier.session.verify = str(certs.ca_bundle)
    assert notifier.post(Webhook(url=url), {"text": "drift"}, org="acme") is False
    assert thief.hits == []
    allowed = Webhook(url=url, allow_redirect_hosts=["localhost"])
    assert notifier.post(allowed, {"text": "drift"}, org="acme") is True
    assert len(thief.hits) == 1


@pytest.fixture
def slow_loris(certs: Certificates) -> Iterator[Any]:
    """A server that answers one byte at a time, a byte every 0.2 s, for ever."""
    stop_now = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X: " + b"a" * 10**6
        for byte in answer:
            if stop_now.is_set():
                return
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    server = serve(trickle, certs)
    yield server
    stop_now.set()
    stop(server)


def test_a_server_that_trickles_bytes_ends_the_call_at_its_total_deadline(
        slow_loris: Any, certs: Certificates) -> None:
    gateway = gateway_at(slow_loris, certs, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ConnectionFailure, match=r"timed out.*within 1 s"):
        gateway.query("SELECT Id FROM User")
    assert time.monotonic() - started < 5  # two attempts of 1 s each, no per-read timeout hit


def test_a_hung_enforce_ends_with_a_clear_error_and_frees_its_lock(
        slow_loris: Any, certs: Certificates, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retries, "DEFAULT_POLICY", RetryPolicy.no_wait(attempts=2))
    monkeypatch.setenv("SLOW_TOKEN", TOKEN)
    config = tmp_path / "remediate.toml"
    config.write_text(f"""
journal = "{tmp_path / 'journal.jsonl'}"
[orgs.slow]
login_url = "https://127.0.0.1:{slow_loris.server_address[1]}"
instance_url = "https://127.0.0.1:{slow_loris.server_address[1]}"
ca_bundle = "{certs.ca_bundle}"
auth = "access_token"
access_token_env = "SLOW_TOKEN"
timeout_s = 1.0
[orgs.slow.playbooks.copilot-for-sales]
integration_user = "copilot.integration@acme.example.com"
""", encoding="utf-8")
    config.chmod(0o600)
    started = time.monotonic()
    result = run("--config", str(config), "enforce", "--org", "slow")
    assert time.monotonic() - started < 15
    assert result.code == 1, result.err
    assert "timed out" in result.out
    with org_lock("slow") as held:
        assert held, "the enforce run kept the org's lock"


def test_verbose_gives_one_log_line_per_request_without_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    result = run("-v", "--log-format", "json", "audit", "--org", "demo")
    lines = [line for line in result.err.splitlines() if '"http.request"' in line]
    assert len(lines) >= 3
    assert all('"host"' in line and '"status"' in line and '"ms"' in line for line in lines)
    assert "Bearer" not in result.err and "!" not in "".join(lines)
    quiet = run("audit", "--org", "demo")
    assert "http.request" not in quiet.err
