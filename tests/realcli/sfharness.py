"""The served sandbox org and the logged-in `sf` that tests/realcli's tests share."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Served:
    """One served sandbox org and a `sf` logged in to it under alias `box`."""

    url: str
    ca_bundle: str
    org_id: str
    env: dict[str, str]
    sf: Path
    project: Path
    token: str = ""
    login: subprocess.CompletedProcess[str] | None = None

    def sf_run(self, *args: str, timeout: float = 180,
               extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.sf), *args], capture_output=True, text=True,
                              env={**self.env, **(extra_env or {})}, cwd=self.project,
                              timeout=timeout, check=False)

    def sf_json(self, *args: str) -> dict[str, Any]:
        done = self.sf_run(*args, "--json")
        try:
            out: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"sf {' '.join(args)}: no JSON\n{done.stdout}\n"
                                 f"{done.stderr}") from None
        return out
