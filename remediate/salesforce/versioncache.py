"""The API version negotiated with an org, kept for a day so a command need not ask again.

Every command used to start with ``GET /services/data/`` (the org's version list) to choose the
version it talks at. Salesforce's own CLI keeps the version it chose with the org's
authorisation (``instanceApiVersion``, with ``instanceApiVersionLastRetrieved``) and asks the
org again only when 24 hours have passed (forcedotcom/sfdx-core, src/org/connection.ts,
``loadInstanceApiVersion``); remediate does the same, per org URL, in one small file per org
under ``<user cache dir>/api-versions/`` (ADR 0039; a file per org, so a fleet of thousands
reads and writes only its own). An entry is used only when it is younger than
24 hours, was written by a remediate that knows the same newest version (``versions.NEWEST``:
an upgrade may talk higher) and names a version remediate can talk, no lower than the newest
a step needs (``versions.NEEDS``: an org upgraded within the day is never called too low).
When the org answers a request at the kept version as if the version did not exist, the session
asks the org's list again and goes on at the version it gives (session.py). Nothing in the
file is secret: URLs and version numbers.

The cache is an optimisation: a file that cannot be read or written is ignored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from remediate.salesforce import versions

#: How long a negotiated version is used without asking the org again (sfdx-core: 24 hours).
MAX_AGE_S = 24 * 3600.0
DIRECTORY = "api-versions"


def _key(url: str) -> str:
    return url.strip().rstrip("/").lower()


def path_for(url: str) -> Path:
    """The file that keeps the version of the org at ``url``."""
    from remediate.dirs import keyed_cache_file

    return keyed_cache_file(DIRECTORY, _key(url))


def _load(url: str) -> dict[str, Any]:
    try:
        data = json.loads(path_for(url).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("url") == _key(url) else {}


def get(url: str, *, now: float | None = None) -> str | None:
    """The version negotiated with the org at ``url`` in the last 24 hours, or None."""
    entry = _load(url)
    if entry.get("newest") != versions.NEWEST:
        return None
    at, version = entry.get("at"), entry.get("version")
    now = time.time() if now is None else now
    if not isinstance(at, int | float) or not 0 <= now - at < MAX_AGE_S:
        return None  # old, or written "in the future" (a clock set back): ask again
    try:
        number = versions.as_number(str(version))
    except ValueError:
        return None
    if not _lowest_trusted() <= number <= versions.as_number(versions.NEWEST):
        return None
    return f"{number:.1f}"


def _lowest_trusted() -> float:
    """Below the newest version a step needs (``versions.NEEDS``), a kept version is asked
    again: an org upgraded since would otherwise be told too low for a day."""
    return max([versions.as_number(versions.OLDEST),
                *(versions.as_number(v) for v, _ in versions.NEEDS.values())])


def put(url: str, version: str | None, *, now: float | None = None) -> None:
    """Keep ``version`` for the org at ``url`` (None forgets it)."""
    from remediate.dirs import write_json_whole

    path = path_for(url)
    try:
        if version is None:
            path.unlink(missing_ok=True)
            return
        entry = {"url": _key(url), "version": version, "newest": versions.NEWEST,
                 "at": time.time() if now is None else now}
        write_json_whole(path, entry)  # whole or not at all, for processes writing at once
    except OSError:
        return
