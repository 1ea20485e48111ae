"""Act as an external integration: ask for a token the way it does, then make one API call.

A scenario's ``integrations`` section says how Copilot for Sales or Workato is configured (the
credentials, the URL it logs in through, the address it calls from). ``request_token`` sends
exactly that, with plain ``requests`` through the session it is given, so the same code probes
the sandbox (a session from ``adapter.session_for``) or, with a real session, a real org.
The source address travels in ``X-Sandbox-Client-IP``, a header only the sandbox reads.
"""

from __future__ import annotations

import base64
import functools
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from remediate.sandbox.oauth import CLIENT_IP_HEADER, JWT_GRANT
from remediate.sandbox.scenario import IntegrationSpec

API_VERSION = "59.0"  # simple-salesforce 1.12.x's default; integrations rarely pin another
JWT_LIFETIME_S = 180


@dataclass(frozen=True)
class TokenOutcome:
    ok: bool
    status: int
    error: str | None = None
    error_description: str | None = None
    access_token: str | None = None
    instance_url: str | None = None


@dataclass(frozen=True)
class ApiOutcome:
    ok: bool
    status: int
    error_code: str | None = None
    message: str | None = None


@functools.lru_cache(maxsize=16)
def signing_key(pem: str) -> PrivateKeyTypes:
    """The parsed private key; parsing validates the RSA key, which is slow, so do it once."""
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _base(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def request_token(session: requests.Session, integration: IntegrationSpec, *,
                  url: str | None = None, my_domain_url: str | None = None,
                  timeout: float = 30.0) -> TokenOutcome:
    """Ask for a token as ``integration`` does.

    The token URL's base is ``url`` when given, else the integration's configured
    ``login_url``, else ``my_domain_url`` (what a correctly configured integration uses).
    """
    base = url or integration.login_url or my_domain_url
    if not base:
        raise ValueError(f"integration {integration.name!r} has no login_url; pass url= or "
                         "my_domain_url=")
    base = _base(base)
    headers = {CLIENT_IP_HEADER: integration.source_ip}
    data: dict[str, str]
    if integration.flow == "client_credentials":
        pair = f"{integration.client_id}:{integration.client_secret or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        data = {"grant_type": "client_credentials"}
    else:
        if not integration.private_key or not integration.username:
            raise ValueError(f"integration {integration.name!r} needs private_key and username "
                             "for the JWT bearer flow")
        claims = {"iss": integration.client_id, "sub": integration.username, "aud": base,
                  "exp": str(int(time.time()) + JWT_LIFETIME_S)}
        assertion = jwt.encode(claims, signing_key(integration.private_key),  # type: ignore[arg-type]
                               algorithm="RS256")
        data = {"grant_type": JWT_GRANT, "assertion": assertion}
    response = session.post(f"{base}/services/oauth2/token", data=data, headers=headers,
                            timeout=timeout)
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 200 and body.get("access_token"):
        return TokenOutcome(True, 200, access_token=body["access_token"],
                            instance_url=body.get("instance_url"))
    return TokenOutcome(False, response.status_code, error=body.get("error"),
                        error_description=body.get("error_description")
                        or (response.text[:200] if not body else None))


def call_api(session: requests.Session, outcome: TokenOutcome, *,
             timeout: float = 30.0) -> ApiOutcome:
    """One REST call with the token, as an integration's first request: the org's limits."""
    if not outcome.ok or not outcome.access_token or not outcome.instance_url:
        raise ValueError("call_api needs a successful token outcome")
    response = session.get(f"{outcome.instance_url}/services/data/v{API_VERSION}/limits/",
                           headers={"Authorization": f"Bearer {outcome.access_token}"},
                           timeout=timeout)
    if response.status_code < 300:
        return ApiOutcome(True, response.status_code)
    code = message = None
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        code, message = body[0].get("errorCode"), body[0].get("message")
    return ApiOutcome(False, response.status_code, code, message)
