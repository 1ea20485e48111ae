"""Per org: whether a permission set assignment was refused in the same composite as its licence.

Salesforce does not document whether a PermissionSetAssignment inserted by a later subrequest
of one ``composite`` request (one transaction) is checked against a PermissionSetLicenseAssign
inserted by an earlier one (docs/sandbox.md, assumptions; ADR 0044). remediate sends both in one
composite; when an org answers that the assignment needs the licence, it remembers that here,
one small file per org id under ``<user cache dir>/composite-licence/``, and later applies to
that org send the two apart. Nothing in the file is secret: an org id and a time.

Like versioncache.py, an optimisation: a file that cannot be read or written is ignored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

DIRECTORY = "composite-licence"


def path_for(org_id: str) -> Path:
    from remediate.dirs import keyed_cache_file

    return keyed_cache_file(DIRECTORY, org_id[:15])


def apart(org_id: str) -> bool:
    """True when this org refused an assignment beside its licence in one composite."""
    try:
        data = json.loads(path_for(org_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("org") == org_id[:15] and bool(data.get("apart"))


def remember_apart(org_id: str) -> None:
    from remediate.dirs import write_json_whole

    try:
        write_json_whole(path_for(org_id), {"org": org_id[:15], "apart": True, "at": time.time()})
    except OSError:
        return


def forget(org_id: str) -> None:
    try:
        path_for(org_id).unlink(missing_ok=True)
    except OSError:
        return
