"""auth = "sf_cli": the token comes from the Salesforce CLI, also when `org display` hides it.

A stand-in `sf` on PATH answers as sf 2.150.6 does (tests/realcli runs the real one): `org
display --json` with the token redacted, `org auth show-access-token --json` with the token.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from remediate.errors import ConfigError
from remediate.orgs import _sf_cli
from remediate.settings import OrgConfig

TOKEN = "00D000000000001!FAKE.token.value"


def fake_sf(tmp_path: Path, display_token: str, show_works: bool = True) -> None:
    display = {"status": 0, "result": {"accessToken": display_token,
                                       "instanceUrl": "https://acme.my.salesforce.com/"}}
    show = {"status": 0, "result": {"accessToken": TOKEN}} if show_works else \
        {"status": 1, "name": "NoAuthInfoFound"}
    script = tmp_path / "sf"
    script.write_text(
        "#!/bin/sh\n"
        f"if [ \"$1 $2\" = 'org display' ]; then echo '{json.dumps(display)}'; exit 0; fi\n"
        f"if [ \"$1 $2 $3\" = 'org auth show-access-token' ]; then echo '{json.dumps(show)}'; "
        "exit 0; fi\nexit 1\n")
    script.chmod(0o755)


def config() -> OrgConfig:
    return OrgConfig(login_url="https://acme.my.salesforce.com", auth="sf_cli", sf_alias="acme")


def test_redacted_display_token_is_read_with_show_access_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sf(tmp_path, "[REDACTED] Use 'sf org auth show-access-token' to view")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    creds = _sf_cli("acme", config())
    assert creds.access_token == TOKEN
    assert creds.instance_url == "https://acme.my.salesforce.com"


def test_a_token_shown_by_display_is_used_as_it_is(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sf(tmp_path, "00D000000000001!shown", show_works=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert _sf_cli("acme", config()).access_token == "00D000000000001!shown"


def test_no_token_anywhere_is_one_clear_config_error(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sf(tmp_path, "[REDACTED]", show_works=False)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(ConfigError, match="gave no access token; run 'sf org login'"):
        _sf_cli("acme", config())
