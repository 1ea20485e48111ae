"""Vendor exceptions mapped once onto the project's error tree.

Everything simple-salesforce, zeep, lxml or requests can raise on a call (an error answer, a
dropped connection, or garbage: an HTML page, truncated JSON, an unexpected SOAP body) becomes
one ``SalesforceError`` whose message names the request and never carries the answer's body
(which may hold a token). ``code`` tells the retry policy (``retry.py``) what happened:
Salesforce's own error code, or one of ``CONNECTION``/``CONNECT_FAILED``/``CONNECT_TIMEOUT``/
``TIMEOUT``/``TLS`` (transport) and ``BAD_ANSWER`` (an answer that cannot be read).
"""

from __future__ import annotations

import json
import re
from typing import Any

from remediate.errors import AuthenticationError, ConnectionFailure, SalesforceError
from remediate.salesforce.retry import TRANSIENT_CODES
from remediate.salesforce.retry import is_transient as is_transient

__all__ = ["TRANSIENT_CODES", "TruncatedAnswer", "is_transient", "map_exception",
           "rest_error_details", "scrub"]

_NOT_SENT = re.compile(r"NewConnectionError|Failed to resolve|Name or service not known|"
                       r"Connection refused|nodename nor servname|No route to host")


class TruncatedAnswer(Exception):
    """An answer that ends before its document does (raised by the gateway's session)."""


def scrub(text: str) -> str:
    """Remove anything shaped like a session id, an auth header, a key or a JWT from a message
    (the log redactor's patterns: one set for the whole product)."""
    from remediate.logging import redact_text

    return redact_text(text)


def rest_error_details(content: Any) -> tuple[str | None, str]:
    """(errorCode, message) from a REST error body (a list of {message, errorCode})."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode") or first.get("statusCode"), str(first.get("message", ""))
    if isinstance(content, dict):
        return content.get("errorCode") or content.get("error"), str(
            content.get("message") or content.get("error_description") or "")
    return None, _describe_body(content)


def _describe_body(content: Any) -> str:
    """What an unreadable body looked like, without quoting it (it may hold a secret)."""
    text = str(content or "").strip()
    if not text:
        return "an empty answer"
    if text[:1] == "<":
        title = re.search(r"<title>([^<]{1,80})</title>", text, re.IGNORECASE)
        return "an HTML page" + (f" ({title.group(1).strip()!r})" if title else "") + \
            ", not a Salesforce answer"
    return "an answer that is not a Salesforce error body"


def bad_answer(what: str, detail: str) -> SalesforceError:
    return SalesforceError(f"{what}: unexpected answer: {detail}", code="BAD_ANSWER")


#: The packages whose exceptions are the org's doing (an answer, a dropped connection, garbage)
#: rather than remediate's: the vendor boundary.
VENDOR_MODULES = ("simple_salesforce", "zeep", "lxml", "requests", "urllib3", "json", "xml",
                  "http", "ssl", "socket", "remediate.salesforce.transport",
                  "vcr")  # vcr: the tests' recorded network, below the transport


def raised_in_vendor(exc: BaseException) -> bool:
    """Whether the innermost frame that raised ``exc`` is in a vendor library (or the
    transport), not in remediate's own code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.startswith(VENDOR_MODULES)


def map_exception(exc: BaseException, *, what: str) -> SalesforceError:
    """One project error for a vendor or transport exception, naming the request.

    Only exceptions of the vendor libraries' own types, or raised from inside them (a KeyError
    in simple-salesforce reading a token answer with no token), are the org's answer. Anything
    else is a bug in remediate and is raised again unchanged: the CLI reports it as an internal
    error (with its traceback under ``-vv``), never as "the org answered something odd"."""
    import requests
    from simple_salesforce.exceptions import (
        SalesforceAuthenticationFailed,
    )
    from simple_salesforce.exceptions import (
        SalesforceError as VendorError,
    )

    from remediate.salesforce.transport import AnswerTooLarge, DeadlineExceeded, RedirectRefused

    if isinstance(exc, SalesforceError):
        return exc
    if isinstance(exc, RedirectRefused):
        return ConnectionFailure(f"{what}: the server answered with a redirect (HTTP "
                                 f"{exc.status}) to {exc.target_host}; Salesforce APIs do not "
                                 "redirect, so remediate does not follow it and sent nothing "
                                 "there", code="REDIRECT")
    if isinstance(exc, AnswerTooLarge):
        return bad_answer(what, str(exc))
    if isinstance(exc, SalesforceAuthenticationFailed):
        return _auth_failure(exc, what)
    if isinstance(exc, VendorError):
        code, message = rest_error_details(exc.content)
        return SalesforceError(scrub(f"{what}: HTTP {exc.status} {code or ''}: {message}"),
                               code=code)
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectionFailure(f"{what}: TLS verification failed ({type(exc).__name__}); "
                                 "set ca_bundle for this org if it uses a private CA", code="TLS")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectionFailure(f"{what}: timed out connecting to the org",
                                 code="CONNECT_TIMEOUT")
    if isinstance(exc, DeadlineExceeded):
        return ConnectionFailure(f"{what}: the request timed out: {exc}", code="TIMEOUT")
    if isinstance(exc, requests.exceptions.Timeout):
        return ConnectionFailure(f"{what}: the request timed out", code="TIMEOUT")
    if isinstance(exc, requests.exceptions.ConnectionError):
        code = "CONNECT_FAILED" if _NOT_SENT.search(str(exc)) else "CONNECTION"
        return ConnectionFailure(f"{what}: cannot reach the org ({_reason(exc)})", code=code)
    if isinstance(exc, TruncatedAnswer):
        return bad_answer(what, f"{exc} (cut short)")
    vendor_type = type(exc).__module__.startswith(VENDOR_MODULES)
    if not vendor_type and not raised_in_vendor(exc):
        raise exc  # a bug in remediate: not the org's answer
    if isinstance(exc, json.JSONDecodeError):
        return bad_answer(what, _describe_body(exc.doc) if exc.doc.strip()[:1] == "<" else
                          "the JSON is malformed or cut short")
    name = type(exc).__name__
    module = type(exc).__module__
    if name == "Fault":  # zeep.exceptions.Fault
        code = str(getattr(exc, "code", None) or "").removeprefix("sf:")
        message = str(getattr(exc, "message", None) or exc)
        if not code:
            # zeep's "Unknown fault occured": an HTTP error whose body is no SOAP fault, the
            # page a load balancer or maintenance window answers with (5xx, as a rule)
            return SalesforceError(f"{what}: HTTP error page instead of a SOAP answer (the org "
                                   "may be unavailable)", code="ERROR_PAGE")
        code = code if code and ":" not in code else _fault_code(message) or code
        return SalesforceError(scrub(f"{what}: SOAP fault {code}: {message}"), code=code or None)
    if name == "TransportError" and module.startswith("zeep"):
        status = int(getattr(exc, "status_code", 0) or 0)
        content = getattr(exc, "content", b"")
        body = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        return SalesforceError(f"{what}: HTTP {status}: {_describe_body(body)}",
                               code=None if status >= 500 else "BAD_ANSWER")
    if module.startswith(("zeep", "lxml")) or name in ("XMLSyntaxError", "ParseError"):
        return bad_answer(what, f"the SOAP answer cannot be read ({name})")
    if isinstance(exc, KeyError | IndexError | TypeError | AttributeError | ValueError):
        return bad_answer(what, f"the answer does not have the expected shape ({name})")
    return SalesforceError(scrub(f"{what}: {name}: {exc}"))


def _auth_failure(exc: Any, what: str) -> SalesforceError:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        # simple-salesforce passes the HTTP status (and the raw body) when the token endpoint's
        # answer is not JSON. The body is never shown: it may be a token cut short.
        if code >= 500:
            return SalesforceError(f"{what}: HTTP {code} from the token endpoint", code=None)
        return bad_answer(what, f"HTTP {code} from the token endpoint, not JSON")
    message = getattr(exc, "auth_message", None) or getattr(exc, "message", None) or str(exc)
    return AuthenticationError(scrub(f"{what}: authentication failed: {code}: {message}"),
                               code=str(code) if code else None)


def _fault_code(message: str) -> str | None:
    match = re.match(r"([A-Z_]{4,}):", message)
    return match.group(1) if match else None


def _reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"(Name or service not known|Connection refused|Failed to resolve|"
                      r"Connection aborted|dropped the connection|Max retries exceeded)", text)
    return match.group(1) if match else type(exc).__name__
