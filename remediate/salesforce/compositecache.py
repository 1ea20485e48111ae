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

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

DIRECTORY = "composite-licence"


def path_for(org_id: str) -> Path:
    from remediate.settings import cache_dir

    digest = hashlib.sha256(org_id[:15].encode()).hexdigest()[:32]
    return cache_dir() / DIRECTORY / f"{digest}.json"


def apart(org_id: str) -> bool:
    """True when this org refused an assignment beside its licence in one composite."""
    try:
        data = json.loads(path_for(org_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("org") == org_id[:15] and bool(data.get("apart"))


def remember_apart(org_id: str) -> None:
    path = path_for(org_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"org": org_id[:15], "apart": True, "at": time.time()}, out)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return


def forget(org_id: str) -> None:
    try:
        path_for(org_id).unlink(missing_ok=True)
    except OSError:
        return
