"""structlog redaction by key and by pattern, and the warning for a readable config file."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import structlog
from cliharness import run

from remediate.logging import REDACTED, configure, redact, redact_text
from remediate.salesforce.errors import scrub
from remediate.settings import load_settings

SESSION = "00D5e000000AbCdE!AQ0AQPx7.token_body-with.dots"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIzTVZHOSJ9.c2lnbmF0dXJlX2J5dGVz"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize("key", ["client_secret", "password", "access_token", "private_key",
                                 "Authorization", "session_id", "api_key", "assertion",
                                 "refresh_token", "credentials"])
def test_a_value_under_a_secret_looking_key_is_redacted_whatever_it_holds(key: str) -> None:
    event = redact(None, "info", {"event": "x", key: "plain-looking-value"})
    assert event[key] == REDACTED


def test_secret_keys_are_redacted_inside_nested_dicts_and_lists() -> None:
    event = redact(None, "info", {"event": "x", "request": {
        "headers": {"Authorization": "whatever"}, "items": [{"client_secret": "s3"}]}})
    assert event["request"]["headers"]["Authorization"] == REDACTED
    assert event["request"]["items"][0]["client_secret"] == REDACTED


@pytest.mark.parametrize(("secret", "label"), [
    (SESSION, "session id"), (f"Bearer {SESSION}", "bearer header"),
    ("Basic dXNlcjpwYXNzd29yZA==", "basic header"), (PEM, "private key"), (JWT, "JWT")])
def test_secret_shapes_are_redacted_in_any_value_and_in_the_event_text(secret: str,
                                                                       label: str) -> None:
    event = redact(None, "info", {"event": f"failed with {secret}", "detail": f"x {secret} y",
                                  "list": [secret]})
    for value in (event["event"], event["detail"], event["list"][0]):
        assert secret not in value, label
        assert REDACTED in value, label


def test_ordinary_values_pass_through_unchanged() -> None:
    event = redact(None, "info", {"event": "gateway.retry", "call": "org 'demo': reading",
                                  "attempt": 2, "code": "UNABLE_TO_LOCK_ROW"})
    assert event == {"event": "gateway.retry", "call": "org 'demo': reading", "attempt": 2,
                     "code": "UNABLE_TO_LOCK_ROW"}


def test_redact_text_and_error_scrub_remove_session_ids() -> None:
    assert SESSION not in redact_text(f"token {SESSION}")
    assert SESSION not in scrub(f"HTTP 401: {SESSION}")


def test_configured_json_logs_render_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buffer)
    try:
        configure("json", "debug")
        structlog.get_logger().warning("login", token=SESSION, note=f"header Bearer {SESSION}")
    finally:
        structlog.reset_defaults()
    line = json.loads(buffer.getvalue().strip())
    assert line["token"] == REDACTED and SESSION not in buffer.getvalue()


# ---- a config file others can read ---------------------------------------------------------


def _config(tmp_path: Path, body: str, mode: int) -> Path:
    path = tmp_path / "remediate.toml"
    path.write_text(body, encoding="utf-8")
    path.chmod(mode)
    return path


SECRETIVE = """
# a pasted key: password = hunter2
[orgs.prod]
login_url = "https://acme.my.salesforce.com"
auth = "client_credentials"
client_id = "3MVG9"
client_secret_env = "ACME_SECRET"
"""
PLAIN = SECRETIVE.replace("# a pasted key: password = hunter2\n", "")


def test_a_config_file_holding_a_secret_and_readable_by_others_draws_a_warning(
        tmp_path: Path) -> None:
    _, warnings = load_settings(_config(tmp_path, SECRETIVE, 0o644))
    assert len(warnings) == 1 and "readable by other users" in warnings[0]


@pytest.mark.parametrize(("body", "mode"), [(SECRETIVE, 0o600), (PLAIN, 0o644)],
                         ids=["private-file", "no-secret"])
def test_no_warning_for_a_private_file_or_one_without_a_secret(tmp_path: Path, body: str,
                                                               mode: int) -> None:
    _, warnings = load_settings(_config(tmp_path, body, mode))
    assert warnings == []


def test_the_cli_logs_the_readable_config_warning_on_stderr(tmp_path: Path) -> None:
    path = _config(tmp_path, SECRETIVE, 0o644)
    result = run("--config", str(path), "--log-format", "json", "audit", "--org", "prod")
    assert any(json.loads(line).get("event") == "config.readable_by_others"
               for line in result.err.splitlines() if line.startswith("{"))
    assert "hunter2" not in result.out + result.err
