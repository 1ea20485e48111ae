"""The sandbox's request pipeline: one function from an HTTP request to an HTTP response.

``Sandbox`` holds one or more orgs (a fleet shares one ``Sandbox``), routes each request by host
and path to the OAuth, REST/Tooling or Metadata SOAP handler, and applies the switches that
tests and benchmarks use: injected latency, fault rules and request counters. Both ways in, the
requests transport adapter (``adapter.py``) and the HTTPS server (``server.py``), call
``Sandbox.handle`` and nothing else.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from remediate.sandbox import oauth, rest, soap
from remediate.sandbox.state import Org

# The shared types live in wire.py (docs/adr/0031); they stay importable from here.
from remediate.sandbox.wire import (
    API_VERSIONS as API_VERSIONS,
)
from remediate.sandbox.wire import (
    DAILY_API_MAX as DAILY_API_MAX,
)
from remediate.sandbox.wire import (
    LOGIN_HOSTS as LOGIN_HOSTS,
)
from remediate.sandbox.wire import (
    MAX_API_VERSION as MAX_API_VERSION,
)
from remediate.sandbox.wire import (
    MIN_API_VERSION as MIN_API_VERSION,
)
from remediate.sandbox.wire import (
    RELEASE_NAMES as RELEASE_NAMES,
)
from remediate.sandbox.wire import (
    Api as Api,
)
from remediate.sandbox.wire import (
    CaseInsensitiveDict as CaseInsensitiveDict,
)
from remediate.sandbox.wire import (
    Context as Context,
)
from remediate.sandbox.wire import (
    Request as Request,
)
from remediate.sandbox.wire import (
    Response as Response,
)
from remediate.sandbox.wire import (
    api_versions as api_versions,
)
from remediate.sandbox.wire import (
    release_name as release_name,
)
from remediate.sandbox.wire import (
    rest_error as rest_error,
)
from remediate.sandbox.wire import (
    soap_fault as soap_fault,
)

FaultKind = Literal[
    "http_503", "unable_to_lock_row", "request_limit_exceeded", "expired_session", "drop_connection",
    "html_error_page", "truncated_json", "bad_soap_body", "error_in_200",
]
FAULT_KINDS: tuple[str, ...] = (
    "http_503", "unable_to_lock_row", "request_limit_exceeded", "expired_session", "drop_connection",
    "html_error_page", "truncated_json", "bad_soap_body", "error_in_200",
)
#: Malformed answers: the request is handled, then its answer is garbled (see fault_response).
MALFORMED_KINDS = frozenset({"html_error_page", "truncated_json", "bad_soap_body", "error_in_200"})


@dataclass
class FaultRule:
    """Make matching requests fail. ``calls`` picks which matching calls (1-based) fail;
    None fails every one. ``after`` lets the request take effect before the fault answers, the
    way a connection lost after the server committed looks to a client."""

    kind: FaultKind
    api: Api | None = None
    method: str | None = None
    path: str | None = None  # regular expression searched in the URL path
    operation: str | None = None  # SOAP operation or REST resource (query, composite, User, ...)
    calls: frozenset[int] | None = None
    after: bool = False
    org: str | None = None  # My Domain name; None matches every org
    seen: int = 0
    fired: int = 0

    def matches(self, info: RequestInfo, org: Org | None) -> bool:
        if self.api is not None and info.api != self.api:
            return False
        if self.method is not None and info.method.upper() != self.method.upper():
            return False
        if self.path is not None and not re.search(self.path, info.path):
            return False
        if self.operation is not None and (info.operation or "").lower() != self.operation.lower():
            return False
        return not (self.org is not None and (org is None or org.my_domain != self.org))


@dataclass(frozen=True)
class RequestInfo:
    api: Api
    method: str
    path: str
    host: str
    operation: str | None
    org: str | None
    status: int = 0
    write: bool = False


class Sandbox:
    """A set of emulated orgs and the switches that act on every request to them."""

    def __init__(self, orgs: list[Org] | None = None) -> None:
        self.orgs: dict[str, Org] = {}
        self.latency_s: float = 0.0
        self.faults: list[FaultRule] = []
        self.page_size: int = 2000
        #: Children per child sub-query result before ``nextRecordsUrl`` (docs/sandbox.md).
        self.child_page_size: int = 200
        self.requests: list[RequestInfo] = []
        self.counts: Counter[str] = Counter()
        self.server_host: str | None = None  # host:port when served over HTTPS
        self._lock = threading.RLock()
        self._org_locks: dict[str, threading.RLock] = {}
        for org in orgs or []:
            self.add_org(org)

    # ---- orgs ------------------------------------------------------------------------------

    def add_org(self, org: Org) -> Org:
        self.orgs[org.my_domain_host] = org
        self._org_locks[org.org_id] = threading.RLock()
        return org

    @property
    def org(self) -> Org:
        """The only org, for the common one-org sandbox."""
        if len(self.orgs) != 1:
            raise ValueError("this sandbox holds several orgs; pick one from .orgs")
        return next(iter(self.orgs.values()))

    def org_by_id(self, org_id: str) -> Org | None:
        for org in self.orgs.values():
            if org.org_id[:15] == org_id[:15]:
                return org
        return None

    def org_for_token(self, token: str | None) -> Org | None:
        if not token:
            return None
        # the token's prefix is the org id; whether the session is live is the API's question
        return self.org_by_id(token.split("!", 1)[0])

    def resolve_host(self, host: str) -> tuple[Org | None, str]:
        if host in self.orgs:
            return self.orgs[host], "my_domain"
        if self.server_host and host == self.server_host.split(":")[0]:
            return (self.org if len(self.orgs) == 1 else None), "server"
        if host in LOGIN_HOSTS:
            return None, "login"
        for org in self.orgs.values():
            if host == org.instance_host:
                return org, "instance"
            for log in org.tables["OrgDomainLog"].values():
                if host.startswith(f"{str(log['MyDomainName']).lower()}."):
                    return org, "old_domain"
        return None, "unknown"

    def hosts(self) -> list[str]:
        """Every host name the sandbox answers for (the adapter mounts these)."""
        out = set(LOGIN_HOSTS)
        for org in self.orgs.values():
            out.add(org.my_domain_host)
            out.add(org.instance_host)
            for log in org.tables["OrgDomainLog"].values():
                out.add(f"{str(log['MyDomainName']).lower()}.my.salesforce.com")
        return sorted(out)

    # ---- switches --------------------------------------------------------------------------

    def inject(self, kind: FaultKind, **match: Any) -> FaultRule:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        calls = match.pop("calls", None)
        if isinstance(calls, int):
            calls = frozenset({calls})
        elif calls is not None:
            calls = frozenset(calls)
        rule = FaultRule(kind=kind, calls=calls, **match)
        with self._lock:
            self.faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.counts.clear()

    @property
    def writes(self) -> int:
        """Requests that changed, or tried to change, org state."""
        return self.counts["writes"]

    # ---- the pipeline ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        org, host_kind = self.resolve_host(request.host)
        api = classify(request.path)
        if org is None and api in ("rest", "tooling", "soap"):
            org = self.org_for_token(request.bearer() or _soap_session(request))
        ctx = Context(self, request, org, host_kind)  # type: ignore[arg-type]
        operation = _operation(request, api)
        info = RequestInfo(api, request.method, request.path, request.host, operation,
                           org.my_domain if org else None)
        fault = self._pick_fault(info, org)
        lock = self._org_locks.get(org.org_id) if org else None
        with lock or self._lock:
            if fault is not None and not fault.after and fault.kind not in MALFORMED_KINDS:
                response = fault_response(fault.kind, api, ctx)
            else:
                response = dispatch(ctx, api)
                if fault is not None:
                    response = fault_response(fault.kind, api, ctx, response)
        self._record(info, response, ctx.wrote)
        if org is not None:
            _limit_headers(response, org, api, request.path)
        return response

    def _pick_fault(self, info: RequestInfo, org: Org | None) -> FaultRule | None:
        with self._lock:
            for rule in self.faults:
                if not rule.matches(info, org):
                    continue
                rule.seen += 1
                if rule.calls is None or rule.seen in rule.calls:
                    rule.fired += 1
                    return rule
        return None

    def _record(self, info: RequestInfo, response: Response, wrote: bool) -> None:
        done = RequestInfo(info.api, info.method, info.path, info.host, info.operation, info.org,
                           response.status, wrote)
        with self._lock:
            self.requests.append(done)
            self.counts[info.api] += 1
            self.counts["total"] += 1
            if wrote:
                self.counts["writes"] += 1


def classify(path: str) -> Api:
    if path.startswith("/services/oauth2/") or path.startswith("/id/"):
        return "oauth"
    if re.match(r"^/services/data/v\d+\.\d+/tooling(/|$)", path):
        return "tooling"
    if path.startswith("/services/data"):
        return "rest"
    if path.startswith("/services/Soap/m/"):
        return "soap"
    return "other"


def _operation(request: Request, api: Api) -> str | None:
    if api == "soap":
        match = re.search(rb"<(?:[\w.-]+:)?Body[^>]*>\s*<(?:[\w.-]+:)?(\w+)", request.body)
        return match.group(1).decode() if match else None
    if api in ("rest", "tooling"):
        parts = [p for p in request.path.split("/") if p]
        if parts == ["services", "data"]:
            return "versions"  # GET /services/data/: the versions the org serves
        # services data vXX.X [tooling] resource ...
        rest = parts[3:] if api == "rest" else parts[4:]
        if not rest:
            return None
        if rest[0] == "sobjects" and len(rest) > 1:
            return rest[1]
        if rest[0] == "composite" and len(rest) > 1:
            return f"composite/{rest[1]}"
        return rest[0]
    if api == "oauth":
        return request.path.rsplit("/", 1)[-1] if request.path.startswith("/services") else "id"
    return None


def _soap_session(request: Request) -> str | None:
    match = re.search(rb"<(?:[\w.-]+:)?sessionId>([^<]+)</", request.body)
    return match.group(1).decode() if match else None


def dispatch(ctx: Context, api: Api) -> Response:
    if api == "oauth":
        return oauth.handle(ctx)
    if api in ("rest", "tooling"):
        return rest.handle(ctx, tooling=api == "tooling")
    if api == "soap":
        return soap.handle(ctx)
    return Response.of_json(404, [{"errorCode": "NOT_FOUND",
                                   "message": "The requested resource does not exist"}])


def fault_response(kind: str, api: Api, ctx: Context, answer: Response | None = None) -> Response:
    """What Salesforce answers for each injected fault, per API (see docs/sandbox.md).

    The malformed kinds garble ``answer``, the real answer (the request took effect):
    ``html_error_page`` a 200 HTML maintenance page, ``truncated_json`` the body cut in half,
    ``bad_soap_body`` a well-formed answer of the wrong shape, ``error_in_200`` an error inside
    a 200 answer."""
    if kind in MALFORMED_KINDS:
        return _malformed(kind, api, answer or Response(200, b""))
    if kind == "drop_connection":
        return Response(0, drop=True)
    if kind == "expired_session":
        if ctx.org is not None:
            ctx.org.expire_sessions()
        if api == "soap":
            return soap_fault("sf:INVALID_SESSION_ID",
                              "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: "
                              "Illegal Session")
        if api == "oauth":
            return Response.of_json(400, {"error": "invalid_grant",
                                          "error_description": "expired access/refresh token"})
        return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    if kind == "http_503":
        if api in ("rest", "tooling"):
            return rest_error(503, "SERVER_UNAVAILABLE",
                              "Server is temporarily unavailable, please try again later")
        return Response(503, b"<html><body>Service Unavailable</body></html>",
                        {"Content-Type": "text/html"})
    if kind == "unable_to_lock_row":
        record = "0000000000000000"
        message = f"unable to obtain exclusive access to this record or 1 records: {record}"
        if api == "soap":
            return soap_fault("sf:UNABLE_TO_LOCK_ROW", f"UNABLE_TO_LOCK_ROW: {message}")
        if api == "oauth":
            return Response.of_json(400, {"error": "unknown_error",
                                          "error_description": "retry your request"})
        return rest_error(400, "UNABLE_TO_LOCK_ROW", message, [])
    if kind == "request_limit_exceeded":
        if api == "soap":
            return soap_fault("sf:REQUEST_LIMIT_EXCEEDED",
                              "REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded.")
        if api == "oauth":
            return Response.of_json(400, {"error": "rate_limit_exceeded",
                                          "error_description": "Number of logins exceeded"})
        return rest_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    raise ValueError(kind)


def _malformed(kind: str, api: Api, answer: Response) -> Response:
    if kind == "html_error_page":
        return Response(200, b"<html><head><title>Down For Maintenance</title></head><body>"
                             b"Salesforce is down for maintenance.</body></html>",
                        {"Content-Type": "text/html;charset=UTF-8"})
    if kind == "truncated_json":
        return Response(answer.status, answer.body[:max(1, len(answer.body) // 2)],
                        dict(answer.headers))
    if kind == "bad_soap_body":
        if api == "soap":
            return Response.of_xml(200, '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                                   'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
                                   '<soapenv:Body><unexpectedResponse xmlns="urn:unexpected">'
                                   "<value>1</value></unexpectedResponse></soapenv:Body>"
                                   "</soapenv:Envelope>")
        return Response.of_json(200, {"unexpected": True})
    # error_in_200
    if api == "soap":
        fault = soap_fault("sf:UNKNOWN_EXCEPTION", "UNKNOWN_EXCEPTION: An unexpected error "
                                                   "occurred")
        return Response(200, fault.body, fault.headers)
    if api == "oauth":
        return Response.of_json(200, {"error": "unknown_error",
                                      "error_description": "an error inside a 200 answer"})
    return Response.of_json(200, [{"errorCode": "UNKNOWN_EXCEPTION",
                                   "message": "An unexpected error occurred"}])



def _limit_headers(response: Response, org: Org, api: Api, path: str) -> None:
    """``Sforce-Limit-Info`` on every REST/Tooling answer that reached the API, and
    ``WWW-Authenticate: Token`` on a 401. Recorded traffic (tests/conformance): a 401 and a 404
    for a version the org does not serve carry no usage header and count no call."""
    if api not in ("rest", "tooling") or response.drop:
        return
    if response.status == 401:
        response.headers["WWW-Authenticate"] = "Token"
        return
    version = re.match(r"^/services/data/v([^/]+)/", path)
    if version is not None and version.group(1) not in api_versions(org.max_api_version):
        return
    used = org.count_api_call()
    response.headers["Sforce-Limit-Info"] = f"api-usage={used}/{DAILY_API_MAX}"
