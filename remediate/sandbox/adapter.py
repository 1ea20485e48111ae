"""In-process way in: a requests transport adapter that answers for Salesforce host names.

Mount it on a ``requests.Session`` and every request to a host the sandbox knows
(``https://acme.my.salesforce.com``, ``login.salesforce.com``, ...) is answered by
``Sandbox.handle`` without a socket, so client code keeps production URLs. simple-salesforce's
Metadata client talks through zeep, which owns a separate session; ``attach`` mounts the adapter
there too.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict as RequestsHeaders
from urllib3.response import HTTPResponse

from remediate.sandbox.app import Sandbox
from remediate.sandbox.wire import CaseInsensitiveDict, Request


class SandboxAdapter(BaseAdapter):
    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):  # a generator or file: read it whole
            body = b"".join(body)
        answer = self.sandbox.handle(Request(
            method=request.method or "GET",
            url=request.url or "",
            headers=CaseInsensitiveDict(dict(request.headers)),
            body=body,
        ))
        if answer.drop:
            raise requests.exceptions.ConnectionError(
                "Connection aborted: the sandbox dropped the connection", request=request)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = RequestsHeaders(answer.headers)
        response._content = answer.body
        response.raw = HTTPResponse(body=b"", status=answer.status, preload_content=False)
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        response.reason = _REASONS.get(answer.status, "")
        return response

    def close(self) -> None:
        pass


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 300: "Multiple Choices",
            400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 500: "Server Error", 503: "Service Unavailable"}


def mount(session: requests.Session, sandbox: Sandbox) -> requests.Session:
    """Route the sandbox's hosts on this session to the sandbox; other hosts are untouched."""
    adapter = SandboxAdapter(sandbox)
    for host in sandbox.hosts():
        session.mount(f"https://{host}/", adapter)
    return session


def session_for(sandbox: Sandbox) -> requests.Session:
    return mount(requests.Session(), sandbox)


def attach(sf: Any, sandbox: Sandbox) -> Any:
    """Mount the sandbox on a ``simple_salesforce.Salesforce`` and on its Metadata client.

    simple-salesforce builds its zeep client with zeep's own requests session; pointing that
    transport at ``sf.session`` is the only change, and it leaves the library's code untouched.
    """
    mount(sf.session, sandbox)
    sf.mdapi._client.transport.session = sf.session
    return sf
