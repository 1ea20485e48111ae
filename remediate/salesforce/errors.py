"""Vendor exceptions mapped once onto the project's error tree."""

from __future__ import annotations

import re
from typing import Any

from remediate.errors import AuthenticationError, ConnectionFailure, SalesforceError

TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE"})
_TOKENISH = re.compile(r"00D\w{12,15}![\w.]+|Bearer\s+\S+|Basic\s+\S+")


def scrub(text: str) -> str:
    """Remove anything shaped like a session id or an auth header from a message."""
    return _TOKENISH.sub("[redacted]", text)


def rest_error_details(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) from a REST error body (a list of {message, errorCode})."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode") or first.get("statusCode"), str(first.get("message", ""))
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(
            content.get("message") or content.get("error_description") or "")
    return None, str(content)[:300]


def map_exception(exc: BaseException, *, what: str) -> SalesforceError:
    """One project error for any vendor or transport exception, naming the request."""
    import requests
    from simple_salesforce.exceptions import (
        SalesforceAuthenticationFailed,
    )
    from simple_salesforce.exceptions import (
        SalesforceError as VendorError,
    )

    if isinstance(exc, SalesforceError):
        return exc
    if isinstance(exc, SalesforceAuthenticationFailed):
        code = getattr(exc, "code", None)
        message = getattr(exc, "auth_message", None) or getattr(exc, "message", None) or str(exc)
        return AuthenticationError(scrub(f"{what}: authentication failed: {code}: {message}"),
                                   code=str(code) if code else None)
    if isinstance(exc, VendorError):
        code, message = rest_error_details(exc.content)
        return SalesforceError(scrub(f"{what}: HTTP {exc.status} {code or ''}: {message}"),
                               code=code)
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectionFailure(f"{what}: TLS verification failed ({type(exc).__name__}); "
                                 "set ca_bundle for this org if it uses a private CA")
    if isinstance(exc, requests.exceptions.Timeout):
        return ConnectionFailure(f"{what}: the request timed out", code="TIMEOUT")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ConnectionFailure(f"{what}: cannot reach the org ({_reason(exc)})",
                                 code="CONNECTION")
    fault_code = getattr(exc, "code", None)
    if type(exc).__name__ == "Fault":  # zeep.exceptions.Fault
        code = str(fault_code or "").removeprefix("sf:")
        return SalesforceError(scrub(f"{what}: SOAP fault {code}: {getattr(exc, 'message', exc)}"),
                               code=code or None)
    return SalesforceError(scrub(f"{what}: {type(exc).__name__}: {exc}"))


def _reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"(Name or service not known|Connection refused|Failed to resolve|"
                      r"Connection aborted|dropped the connection|Max retries exceeded)", text)
    return match.group(1) if match else type(exc).__name__


def is_transient(err: SalesforceError) -> bool:
    if isinstance(err, ConnectionFailure):
        return True
    if err.code in TRANSIENT_CODES:
        return True
    return bool(re.search(r"HTTP 5\d\d", err.message))
