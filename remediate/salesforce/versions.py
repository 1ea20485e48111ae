"""Salesforce API versions: which one remediate talks to an org, and what each field needs.

remediate talks to each org at the highest version the org lists under ``GET /services/data/``,
up to the highest remediate knows (``NEWEST``); ``api_version`` in remediate.toml pins one
instead. Every metadata type or field a step uses that does not exist at every version remediate
may talk is listed in ``NEEDS``, with the version it starts at and its source; a step that reads
one calls ``require`` and an org below it gets one error naming the field and the version.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from remediate.errors import ConfigError, NotFound

#: The newest version remediate knows (Summer '26). Higher versions an org lists are not used.
NEWEST = "67.0"
#: The oldest version a real org still serves (21.0-30.0 are retired; platform-truth.md P6).
OLDEST = "31.0"
#: Used only when the org's version list cannot be read (the error then says so).
FALLBACK = "59.0"

#: (metadata type, field) -> the first API version that has it, with the fact it comes from.
NEEDS: dict[tuple[str, str], tuple[str, str]] = {
    ("ExtlClntAppOauthConfigurablePolicies", "isClientCredentialsFlowEnabled"):
        ("60.0", "platform-truth.md A10"),
    ("ExtlClntAppOauthConfigurablePolicies", "clientCredentialsFlowUser"):
        ("60.0", "platform-truth.md A10"),
    ("ExtlClntAppGlobalOauthSettings", "isClientCredentialsFlowEnabled"):
        ("60.0", "platform-truth.md A10"),
}


class VersionTooLow(NotFound):
    """The org (or the pinned ``api_version``) is below the version a field needs. A NotFound:
    what the step needs does not exist in the org at the version it is talked to."""


def as_number(version: str) -> float:
    return float(version.removeprefix("v"))


def check_pin(version: str, where: str) -> str:
    """A pinned ``api_version`` must look like ``NN.0`` and lie in what remediate can talk."""
    try:
        number = as_number(version)
    except ValueError:
        raise ConfigError(f"{where}: api_version {version!r} is not a version like '62.0'") from None
    if not as_number(OLDEST) <= number <= as_number(NEWEST):
        raise ConfigError(f"{where}: api_version {version!r} is outside {OLDEST}..{NEWEST}, the "
                          "versions remediate can talk")
    return f"{number:.1f}"


def negotiate(listed: Iterable[Any]) -> str | None:
    """The highest version in a ``/services/data/`` answer that remediate knows; None if none."""
    best: float | None = None
    for entry in listed:
        raw = entry.get("version") if isinstance(entry, dict) else None
        try:
            number = as_number(str(raw))
        except ValueError:
            continue
        if number <= as_number(NEWEST) and (best is None or number > best):
            best = number
    return None if best is None else f"{best:.1f}"


def require(version: str | None, type_name: str, field: str, *, where: str,
            how: str = "negotiated") -> None:
    """Raise ``VersionTooLow`` when ``field`` of ``type_name`` does not exist at ``version``."""
    need = NEEDS.get((type_name, field))
    if need is None or version is None or as_number(version) >= as_number(need[0]):
        return
    raise VersionTooLow(
        f"{where}: {type_name}.{field} needs Salesforce API {need[0]} ({need[1]}); this org is "
        f"talked to at {version} ({how})",
        hint="the org lists no version that high; if api_version pins a lower one in "
             "remediate.toml, raise or remove it")
