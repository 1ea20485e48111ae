"""remediate's own sign-in at hosts simple-salesforce cannot address.

simple-salesforce builds its token URL as ``https://{domain}.salesforce.com``, so it reaches the
commercial partition only. An org in another Salesforce partition (``.salesforce.mil``,
``.sfcrmproducts.cn``, ``.my-salesforce.com``: remediate/hosts.py) or a local emulator on a
loopback address is signed in to here with the same OAuth 2.0 token request (client credentials
with HTTP Basic client authentication; JWT bearer with the login URL as ``aud``, as
simple-salesforce does for its own domain), and the connection is then opened with the token it
returns. Secrets go only into the request; errors carry the token endpoint's ``error`` and
``error_description``, scrubbed, never a body.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import requests

from remediate.errors import AuthenticationError, SalesforceError
from remediate.salesforce.errors import bad_answer, map_exception, scrub


def grant(flow: str, *, client_id: str | None, client_secret: str | None = None,
          username: str | None = None, private_key: str | None = None,
          audience: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """(headers, form) of an OAuth 2.0 token request: client credentials with HTTP Basic
    client authentication, or a JWT bearer assertion for ``audience``. Secrets go only here."""
    if flow == "client_credentials":
        pair = f"{client_id or ''}:{client_secret or ''}"
        return ({"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()},
                {"grant_type": "client_credentials"})
    import jwt

    claims = {"iss": client_id, "sub": username, "aud": audience, "exp": int(time.time()) + 180}
    return {}, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": jwt.encode(claims, private_key or "", algorithm="RS256")}


def post_token(session: requests.Session, base: str, data: dict[str, str],
               headers: dict[str, str], *, what: str) -> tuple[requests.Response, Any]:
    """POST the token request to ``base``; (the answer, its JSON object or None)."""
    try:
        response = session.post(f"{base}/services/oauth2/token", data=data, headers=headers)
    except requests.RequestException as exc:
        raise map_exception(exc, what=what) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    return response, payload if isinstance(payload, dict) else None


def token_sign_in(session: requests.Session, creds: Any, *, what: str) -> tuple[str, str]:
    """(access token, instance URL) from the token endpoint of ``creds.login_url``."""
    base = str(creds.login_url).rstrip("/")
    if creds.auth not in ("client_credentials", "jwt"):
        raise AuthenticationError(f"{what}: unknown auth mode {creds.auth!r}")
    extra, data = grant(creds.auth, client_id=creds.client_id, client_secret=creds.client_secret,
                        username=creds.username, private_key=creds.private_key, audience=base)
    response, payload = post_token(session, base, data, {"Accept": "application/json", **extra},
                                   what=what)
    if payload is None:
        if response.status_code >= 500:
            raise SalesforceError(f"{what}: HTTP {response.status_code} from the token endpoint")
        raise bad_answer(what, f"HTTP {response.status_code} from the token endpoint, not JSON")
    if response.status_code != 200 or not payload.get("access_token"):
        code = str(payload.get("error") or f"HTTP {response.status_code}")
        text = str(payload.get("error_description") or "no access_token in the answer")
        raise AuthenticationError(scrub(f"{what}: authentication failed: {code}: {text}"),
                                  code=code)
    return str(payload["access_token"]), str(payload.get("instance_url") or base).rstrip("/")


def connect_at(session: requests.Session, creds: Any, *, what: str, version: str) -> Any:
    """A simple-salesforce connection on the token :func:`token_sign_in` gets."""
    from simple_salesforce.api import Salesforce

    token, instance = token_sign_in(session, creds, what=what)
    return Salesforce(session_id=token, instance_url=instance, session=session, version=version)
