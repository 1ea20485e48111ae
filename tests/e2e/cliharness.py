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


def lab_config(tmp_path: Path, url: str, ca: str, *, token_env: str = "LAB_TOKEN",
               playbook: str = "copilot-for-sales",
               variables: dict[str, str] | None = None, org_extra: str = "",
               tail: str = "") -> Path:
    """``tmp_path/remediate.toml`` with one org, ``lab``: the sandbox served over HTTPS at ``url``
    (login and instance URL), signed in with an access token read from ``token_env``, its TLS
    checked against ``ca``; ``playbook`` bound with ``variables`` (default: the integration
    user of the scenarios). ``org_extra`` adds lines to ``[orgs.lab]``, ``tail`` whole tables
    after it. Owner-readable only, as a configuration file should be."""
    bound = variables if variables is not None else \
        {"integration_user": "copilot.integration@acme.example.com"}
    lines = "".join(f'{key} = "{value}"\n' for key, value in bound.items())
    path = tmp_path / "remediate.toml"
    path.write_text(f"""
[orgs.lab]
login_url = "{url}"
instance_url = "{url}"
auth = "access_token"
access_token_env = "{token_env}"
ca_bundle = "{ca}"
{org_extra}

[orgs.lab.playbooks.{playbook}]
{lines}
{tail}""", encoding="utf-8")
    path.chmod(0o600)
    return path


def writes(org: str = "demo") -> int:
    """The built-in org's cumulative write counter (requests that changed org state)."""
    scenario = "demo" if org == "demo" else org.split(":", 1)[1]
    path = sandbox_state_path(scenario)
    if not path.exists():
        return 0
    return int(json.loads(path.read_text())["extra"].get("writes", 0))
