"""Run the remediate CLI in process, the way a user runs it, and read what it left behind."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from remediate.builtin import sandbox_state_path
from remediate.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """The command's data: the ``result`` of the JSON envelope (docs/json.md)."""
        return self.envelope()["result"]

    def envelope(self) -> Any:
        data = json.loads(self.out)
        assert isinstance(data, dict) and data.get("schema_version") == 1, self.out[:200]
        return data


def run(*args: str, stdin: str = "", cwd: Path | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv, sys.stdin, sys.stdout, sys.stderr
    sys.argv = ["remediate", *args]
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
    finally:
        sys.argv, sys.stdin, sys.stdout, sys.stderr = old
    return Result(code, out.getvalue(), err.getvalue())


def writes(org: str = "demo") -> int:
    """The built-in org's cumulative write counter (requests that changed org state)."""
    scenario = "demo" if org == "demo" else org.split(":", 1)[1]
    path = sandbox_state_path(scenario)
    if not path.exists():
        return 0
    return int(json.loads(path.read_text())["extra"].get("writes", 0))
