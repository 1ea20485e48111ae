"""Small guards between remediate and what it does not control: names that could be paths,
and text from an org or a server on its way to a terminal (issue 12, points 1, 7 and 8)."""

from __future__ import annotations

import re

from remediate.hosts import LOOPBACK_HOSTS

#: C0 controls but tab and newline, DEL, and C1 controls (CSI among them): the bytes that let
#: text move the cursor, recolour or retitle a terminal, or hide what came before.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: A whole escape sequence (CSI ... final byte, OSC ... BEL/ST), dropped as a unit so no
#: printable remainder ("[31m") is left behind.
_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x9b[0-?]*[ -/]*[@-~]")
#: A shipped scenario's name: what ``sandbox:<scenario>`` may say. No separators, no dots.
SCENARIO_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def for_terminal(text: str) -> str:
    """``text`` with escape sequences and control characters (but newline and tab) removed."""
    return _CONTROL.sub("", _ESCAPE.sub("", text))


def valid_scenario_name(name: str) -> bool:
    return SCENARIO_NAME.fullmatch(name) is not None




def url_problem(url: str) -> str | None:
    """Why ``url`` may not be used to reach an org or a webhook, or None: https only, plain
    http for a loopback host (a local emulator or proxy), no other scheme."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return None
    if parts.scheme == "http":
        return "uses plain http (only https is allowed, plain http only for a loopback host)"
    if not host and parts.scheme in ("http", "https"):
        return "names no host"
    return f"has scheme {parts.scheme or '(none)'!r} (only https is allowed)"
