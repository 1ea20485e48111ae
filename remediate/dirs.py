"""Where remediate keeps its state and its cache (ADR 0037), without importing anything heavy:
the help cache (remediate.helpcache) asks before typer, pydantic or settings are loaded.

``$XDG_STATE_HOME/remediate`` / ``$XDG_CACHE_HOME/remediate`` when the variable is set (on every
platform: the scheduling docs and the tests set them), else the platform's own directory from
platformdirs. On Linux that answer is ``~/.local/state`` / ``~/.cache``, computed here without
importing platformdirs (about 15 ms of a cached help request).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def state_dir() -> str:
    """Where the journal, the locks and the kill switch live."""
    return _directory("XDG_STATE_HOME", "~/.local/state", "user_state_dir")


def cache_dir() -> str:
    """Where built-in orgs' state, the trimmed WSDL, kept API versions and help texts live."""
    return _directory("XDG_CACHE_HOME", "~/.cache", "user_cache_dir")


def _directory(variable: str, linux_home: str, platform_function: str) -> str:
    explicit = os.environ.get(variable, "").strip()
    if explicit:
        return os.path.join(explicit, "remediate")
    if sys.platform == "linux" and os.environ.get("ANDROID_DATA") != "/data":
        return os.path.join(os.path.expanduser(linux_home), "remediate")
    import platformdirs

    where: str = getattr(platformdirs, platform_function)("remediate", appauthor=False)
    return where


def keyed_cache_file(directory: str, key: str) -> Path:
    """``<cache dir>/<directory>/<digest of key>.json``: one small file per org, so a fleet of
    thousands of orgs reads and writes only its own (kept API versions, remembered composites)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(cache_dir()) / directory / f"{digest}.json"


def write_json_whole(path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` to ``path`` whole or not at all (a temporary file then a rename), for
    processes writing at once. Raises OSError; the caches that call it ignore it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(entry, out, sort_keys=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
