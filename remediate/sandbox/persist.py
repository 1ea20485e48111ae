"""Saving a sandbox org between commands (the built-in ``demo`` org lives in the cache dir)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from remediate.sandbox.ids import IdFactory
from remediate.sandbox.state import Org

FORMAT = 1


def dump(org: Org, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "org": {
            "org_id": org.org_id, "name": org.name, "my_domain": org.my_domain,
            "instance_name": org.instance_name, "is_sandbox": org.is_sandbox,
            "sandbox_name": org.sandbox_name, "organization_type": org.organization_type,
            "default_client_ip": org.default_client_ip, "api_usage": org.api_usage,
            "max_api_version": org.max_api_version, "clock": org.clock,
            "licence_in_composite": org.licence_in_composite,
        },
        "ids": org.ids.state(),
        "pod": org.ids._pod,
        "tables": org.tables,
        "metadata": org.metadata,
        "passwords": org.passwords,
        "package_apps": org.package_apps,
        "uninstalled_apps": org.uninstalled_apps,
        "jwt_audiences": org.jwt_audiences,
        "extra": extra or {},
    }


def restore(data: dict[str, Any]) -> tuple[Org, dict[str, Any]]:
    if data.get("format") != FORMAT:
        raise ValueError("saved sandbox state has an unknown format")
    ids = IdFactory(int(data.get("pod", 0)))
    ids.restore({k: int(v) for k, v in data["ids"].items()})
    org = Org(ids=ids, **data["org"])
    for name, rows in data["tables"].items():
        org.tables.setdefault(name, {}).update(rows)
    org.metadata = data["metadata"]
    org.passwords = data["passwords"]
    org.package_apps = data.get("package_apps") or {}
    org.uninstalled_apps = data.get("uninstalled_apps") or {}
    org.jwt_audiences = data.get("jwt_audiences") or {}
    return org, dict(data.get("extra") or {})


def save(path: Path, org: Org, extra: dict[str, Any] | None = None) -> None:
    """Write atomically, so a crash never leaves half a state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(dump(org, extra), fh)
    os.replace(tmp, path)


def load(path: Path) -> tuple[Org, dict[str, Any]]:
    return restore(json.loads(path.read_text(encoding="utf-8")))
