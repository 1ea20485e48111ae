"""What the router (``app.py``) and the protocol translators (``oauth``, ``rest``, ``soap``) share:
the request and response types, the handler context, the API versions and the error bodies.

This module imports neither the router nor a translator, so the router can import the
translators and the translators can import this without a cycle (docs/adr/0031).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, urlsplit

# header names match case-insensitively (RFC 9110, 5.1): requests' own map, for Request.headers
from requests.structures import CaseInsensitiveDict as CaseInsensitiveDict  # re-exported

from remediate.sandbox.state import Org

Api = Literal["oauth", "rest", "tooling", "soap", "other"]

LOGIN_HOSTS = frozenset({"login.salesforce.com", "test.salesforce.com"})
#: The API versions every path serves: real orgs answer 31.0 (Summer '14) up to the current
#: release (reference: GET /services/data lists them; the sf CLI logs in on v51.0). Generated
#: from a min and a max so the next release is one number; the issue-9 side (metadata fields by
#: version) reads the same tuple.
MIN_API_VERSION = 31
MAX_API_VERSION = 67
API_VERSIONS: tuple[str, ...] = tuple(f"{v}.0" for v in range(MIN_API_VERSION,
                                                               MAX_API_VERSION + 1))


def release_name(version: str) -> str:
    """The release a version shipped in: 57.0 is Spring '23, three releases a year."""
    step = int(float(version)) - 57
    season = ("Spring", "Summer", "Winter")[step % 3]
    year = 23 + step // 3 + (1 if season == "Winter" else 0)
    return f"{season} '{year:02d}"


RELEASE_NAMES = {v: release_name(v) for v in API_VERSIONS}


def api_versions(max_api_version: str | None = None) -> tuple[str, ...]:
    """The versions an org serves: all of API_VERSIONS, or up to its ``max_api_version``
    switch (tests of a client against an org a release behind)."""
    if max_api_version is None:
        return API_VERSIONS
    top = float(max_api_version)
    return tuple(v for v in API_VERSIONS if float(v) <= top)

#: The org's daily API allocation the sandbox reports (DailyApiRequests.Max).
DAILY_API_MAX = 15000


class Router(Protocol):
    """The part of ``app.Sandbox`` a translator may read: the orgs it serves and its paging
    switches. Translators never change the router; the org's state is the org's."""

    orgs: dict[str, Org]
    page_size: int
    child_page_size: int
    server_host: str | None

    def org_for_token(self, token: str | None) -> Org | None: ...


@dataclass
class Request:
    method: str
    url: str
    headers: CaseInsensitiveDict[str]
    body: bytes = b""
    client_ip: str | None = None  # the socket peer, when served over the network

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query, keep_blank_values=True)

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def bearer(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        for scheme in ("Bearer ", "OAuth "):
            if auth.startswith(scheme):
                return auth[len(scheme):].strip()
        return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without an answer

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(),
                   {"Content-Type": "application/json;charset=UTF-8", **(headers or {})})

    @classmethod
    def of_xml(cls, status: int, xml: str | bytes) -> Response:
        body = xml.encode() if isinstance(xml, str) else xml
        return cls(status, body, {"Content-Type": "text/xml;charset=UTF-8"})

    def json(self) -> Any:
        return json.loads(self.body)


def rest_error(status: int, code: str, message: str, fields: list[str] | None = None) -> Response:
    """The REST error body: a JSON list of {message, errorCode[, fields]} (reference 5.3)."""
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return Response.of_json(status, [item])


@dataclass
class Context:
    """What a protocol handler gets: the sandbox, the request, and the org the host names."""

    sandbox: Router
    request: Request
    org: Org | None
    host_kind: Literal["my_domain", "login", "instance", "old_domain", "server", "unknown"]
    wrote: bool = False  # handlers set this when they change state (the write counter)

    def mark_write(self) -> None:
        self.wrote = True


def soap_fault(code: str, message: str) -> Response:
    from xml.sax.saxutils import escape

    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="http://soap.sforce.com/2006/04/metadata">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>{escape(code)}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response.of_xml(500, xml)
