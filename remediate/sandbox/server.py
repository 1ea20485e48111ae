"""Network way in: the sandbox org as an HTTPS server on localhost.

Any HTTP client (curl, another language's Salesforce library, a browser) can reach the sandbox
this way. At start the server makes its own certificate authority and a server certificate for
``127.0.0.1`` and ``localhost`` signed by it, writes the CA certificate to ``ca_bundle``, and
serves TLS with ``http.server``. Every request becomes an ``app.Request`` for
``Sandbox.handle``; the ``Response`` is written back, or the connection is closed unanswered when
the response says ``drop``.

The server's own host (``127.0.0.1:PORT``) stands in for the org's My Domain
(``Sandbox.server_host``), so ``instance_url`` is ``https://127.0.0.1:PORT`` and clients keep
Salesforce's paths unchanged.

From Python::

    with serve_in_thread(sandbox) as srv:
        requests.get(f"{srv.url}/services/data/", verify=srv.ca_bundle)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from remediate.sandbox.app import FAULT_KINDS, Sandbox
from remediate.sandbox.wire import CaseInsensitiveDict, Request, rest_error

log = logging.getLogger("remediate.sandbox.server")

HOST = "127.0.0.1"
#: Seconds an idle keep-alive connection stays open before the server closes it.
IDLE_TIMEOUT_S = 30.0
#: What the server answers (HTTP 500) when the sandbox itself fails on a request.
UNKNOWN_EXCEPTION_MESSAGE = "An unexpected error occurred in the sandbox org."

# ---- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """Where the server's TLS material lives: ``ca_bundle`` is what clients verify against."""

    ca_bundle: Path
    cert_file: Path
    key_file: Path


def make_certificates(directory: Path) -> Certificates:
    """Create a throwaway CA and a server certificate for 127.0.0.1/localhost signed by it.

    trustme makes both (ADR 0037): a fake CA for local test servers is what it is for. The CA's
    private key is never written and goes with this call: nothing else is ever signed with it.
    The server certificate lasts 30 days; its key is written owner-readable only, because
    ``ssl`` loads keys from files.
    """
    import trustme

    now = dt.datetime.now(dt.UTC)
    ca = trustme.CA(organization_name="remediate sandbox", path_length=0)
    leaf = ca.issue_cert(HOST, "localhost", common_name="localhost",
                         organization_name="remediate sandbox",
                         not_before=now - dt.timedelta(minutes=5),
                         not_after=now + dt.timedelta(days=30))

    directory.mkdir(parents=True, exist_ok=True)
    certs = Certificates(directory / "ca.pem", directory / "server.pem",
                         directory / "server.key")
    ca.cert_pem.write_to_path(str(certs.ca_bundle))
    certs.cert_file.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    fd = os.open(certs.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(leaf.private_key_pem.bytes())
    return certs


# ---- the HTTP side ------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Turns one HTTP request into ``Sandbox.handle`` and writes its answer back."""

    server: _TLSServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Salesforce clients expect
    timeout = IDLE_TIMEOUT_S

    def version_string(self) -> str:
        return "remediate-sandbox"

    def setup(self) -> None:
        # The handshake runs here, in the connection's own thread, so a slow or failing client
        # never holds up the accept loop.
        conn = self.request
        conn.settimeout(self.timeout)
        if isinstance(conn, ssl.SSLSocket):
            conn.do_handshake()
            self.server.count("connections")
        super().setup()

    def _serve(self) -> None:
        body = self._read_body()
        if body is None:
            return
        self.server.count("requests")
        request = Request(
            method=self.command,
            url=f"{self.server.base_url}{_origin_form(self.path)}",
            headers=CaseInsensitiveDict(dict(self.headers.items())),
            body=body,
            client_ip=self.client_address[0],
        )
        try:
            answer = self.server.sandbox.handle(request)
        except Exception:
            # A bug in the sandbox: answer the way Salesforce answers its own failures, and say
            # so on stderr (a warning-level record reaches stderr even without --verbose).
            log.exception("sandbox failed on %s %s", request.method, request.path)
            answer = rest_error(500, "UNKNOWN_EXCEPTION", UNKNOWN_EXCEPTION_MESSAGE)
        if answer.drop:
            self._drop()
            return
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        payload = b"" if self.command == "HEAD" else answer.body
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            size = int(length)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        return self.rfile.read(size) if size > 0 else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537).strip()
            size = int(line.split(b";", 1)[0] or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537).strip():  # trailers
                    pass
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)  # the CRLF after each chunk

    def _drop(self) -> None:
        """Close the connection without a byte of answer (a dropped connection)."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


def _origin_form(target: str) -> str:
    """The path and query of a request target, also when a client sends an absolute URL."""
    match = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*(/.*)?$", target)
    if match:
        return match.group(1) or "/"
    return target if target.startswith("/") else f"/{target}"


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sandbox: Sandbox, port: int, context: ssl.SSLContext) -> None:
        self.sandbox = sandbox
        self.base_url = ""
        #: TLS connections accepted (each one a full handshake) and HTTP requests answered,
        #: so a benchmark or test can see whether clients keep their connections alive.
        self.counts = {"connections": 0, "requests": 0}
        self._count_lock = threading.Lock()
        super().__init__((HOST, port), _Handler)
        self.socket = context.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)
        self.base_url = f"https://{HOST}:{self.server_address[1]}"

    def count(self, what: str) -> None:
        with self._count_lock:
            self.counts[what] += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up, distrust the certificate or time out are routine here; they
        # are worth a debug line, not a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class SandboxServer:
    """A running (or ready) HTTPS server in front of one ``Sandbox``."""

    def __init__(self, sandbox: Sandbox, port: int = 0, state_dir: Path | None = None) -> None:
        self.sandbox = sandbox
        self._own_dir = state_dir is None
        self.state_dir = Path(tempfile.mkdtemp(prefix="remediate-sandbox-")) \
            if state_dir is None else Path(state_dir)
        try:
            self.certificates = make_certificates(self.state_dir)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
            self._httpd = _TLSServer(sandbox, port, context)
        except BaseException:
            self._remove_state()
            raise
        self.port: int = self._httpd.server_address[1]
        self.url = f"https://{HOST}:{self.port}"
        sandbox.server_host = f"{HOST}:{self.port}"
        self._closed = False

    @property
    def counts(self) -> dict[str, int]:
        """TLS connections accepted and requests answered so far."""
        return dict(self._httpd.counts)

    @property
    def ca_bundle(self) -> Path:
        return self.certificates.ca_bundle

    def serve_forever(self) -> None:
        """Serve on the calling thread until ``shutdown`` (from another thread) or a signal."""
        self._httpd.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Stop a ``serve_forever`` running on another thread."""
        self._httpd.shutdown()

    def close(self) -> None:
        """Release the socket and, unless a ``state_dir`` was given, the certificate files."""
        if self._closed:
            return
        self._closed = True
        self._httpd.server_close()
        if self.sandbox.server_host == f"{HOST}:{self.port}":
            self.sandbox.server_host = None
        self._remove_state()

    def _remove_state(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def serve_in_thread(sandbox: Sandbox, port: int = 0,
                    state_dir: Path | None = None) -> Iterator[SandboxServer]:
    """Serve ``sandbox`` over HTTPS on a background thread for the duration of the block."""
    server = SandboxServer(sandbox, port, state_dir)
    thread = threading.Thread(target=server.serve_forever, name="sandbox-https", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.close()


# ---- what ``remediate sandbox serve`` prints ------------------------------------------------


def admin_user_id(sandbox: Sandbox) -> str:
    """The user the startup session belongs to: the conventional sandbox admin if present,
    otherwise the first active user whose profile has Modify All Data."""
    org = sandbox.org
    admin = org.user_by_username("admin@acme.example.com")
    if admin is not None and admin.get("IsActive"):
        return str(admin["Id"])
    powerful = {p["Id"] for p in org.rows("Profile") if p.get("PermissionsModifyAllData")}
    for user in org.tables["User"].values():
        if user.get("IsActive") and user.get("ProfileId") in powerful:
            return str(user["Id"])
    raise LookupError("the scenario has no active user with Modify All Data to hand a session to")


def startup_line(sandbox: Sandbox, server: SandboxServer, scenario: str) -> dict[str, Any]:
    """The JSON object ``serve`` prints first: everything a client needs to connect."""
    org = sandbox.org
    session = org.new_session(admin_user_id(sandbox), None, ("api", "refresh_token"),
                              "sandbox-serve")
    return {
        "instance_url": server.url,
        "access_token": session.token,
        "ca_bundle": str(server.ca_bundle),
        "scenario": scenario,
        "org_id": org.org_id,
        "my_domain": org.my_domain_host,
    }


# ---- --fault specs ------------------------------------------------------------------------

FAULT_KEYS = ("api", "method", "path", "operation", "calls", "after", "org")
_APIS = ("oauth", "rest", "tooling", "soap", "other")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


class FaultSpecError(ValueError):
    """A ``--fault`` spec that cannot be understood; the message says which part and why."""


def parse_fault_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``KIND[:key=value,...]`` -> (kind, keyword arguments for ``Sandbox.inject``).

    Keys: api, method, path (a regular expression), operation, calls (1-based, ``+``-separated,
    e.g. ``1+3``), after (true/false), org (My Domain name). A comma only separates pairs when a
    known key follows it, so a path expression may itself contain commas.
    """
    kind, _, rest = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r} in {spec!r} "
                             f"(known: {', '.join(FAULT_KINDS)})")
    match: dict[str, Any] = {}
    if not rest.strip():
        return kind, match
    pairs = re.split(rf",(?=\s*(?:{'|'.join(FAULT_KEYS)})=)", rest)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in FAULT_KEYS:
            raise FaultSpecError(f"bad part {pair!r} in {spec!r}: expected key=value with key "
                                 f"one of {', '.join(FAULT_KEYS)}")
        if key in match:
            raise FaultSpecError(f"{key!r} given twice in {spec!r}")
        if not value:
            raise FaultSpecError(f"{key!r} has no value in {spec!r}")
        match[key] = _fault_value(key, value, spec)
    return kind, match


def _fault_value(key: str, value: str, spec: str) -> Any:
    if key == "api":
        if value not in _APIS:
            raise FaultSpecError(f"api={value!r} in {spec!r}: expected one of {', '.join(_APIS)}")
        return value
    if key == "calls":
        numbers = value.split("+")
        if not all(n.strip().isdigit() and int(n) > 0 for n in numbers):
            raise FaultSpecError(f"calls={value!r} in {spec!r}: expected 1-based call numbers "
                                 "joined by '+', e.g. 1+3")
        return frozenset(int(n) for n in numbers)
    if key == "after":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise FaultSpecError(f"after={value!r} in {spec!r}: expected true or false")
    if key == "path":
        try:
            re.compile(value)
        except re.error as exc:
            raise FaultSpecError(f"path={value!r} in {spec!r}: not a regular expression "
                                 f"({exc})") from None
        return value
    if key == "method":
        return value.upper()
    return value
