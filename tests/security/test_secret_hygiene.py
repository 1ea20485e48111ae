"""No credential ever leaves remediate: every command, run on the sandbox with known secrets.

The known secrets are the demo scenario's: the admin app's and the integrations' client secrets,
the Workato integration's private key, the users' passwords, and every access token the sandbox
mints while the commands run. Every command runs with ``-vv --log-format json`` (debug logs,
rendered as JSON), and the test searches stdout, stderr, the logs, the plan file, the snapshot,
the journal, the webhook notifications, error messages, and the cassettes in the repository:
zero occurrences. (``sandbox serve`` prints a sandbox access token by design, for the user to
call the emulator with; it is the one command not run here.)
"""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orgstate as st
import pytest
import registry
import structlog
from cliharness import run
from webhooks import receiver

from remediate import logging as rlogging
from remediate.errors import RemediateError
from remediate.journal import Journal
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import FAULT_KINDS
from remediate.sandbox.state import Org, Session
from remediate.settings import state_dir

REPO = Path(__file__).resolve().parents[2]
ALL_KINDS = registry.automatic_kinds("demo")


def scenario_secrets(name: str = "demo") -> list[str]:
    spec = scenarios.load(name)
    found: list[str] = []
    found += [app.consumer_secret for app in spec.connected_apps]
    found += [app.consumer_secret for app in spec.external_client_apps]
    for integ in spec.integrations:
        found += [s for s in (integ.client_secret,) if s]
        if integ.private_key:
            found.append(integ.private_key.strip())
            # each line of the key's body: a partial leak counts too
            found += [line for line in integ.private_key.splitlines()
                      if len(line) >= 40 and not line.startswith("-----")]
    found += [u.password for u in spec.users if u.password]
    return sorted({s for s in found if s and len(s) >= 8})


@pytest.fixture
def minted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every access token the sandbox mints from now on."""
    tokens: list[str] = []
    original = Org.new_session

    def new_session(self: Org, *args: Any, **kwargs: Any) -> Session:
        session = original(self, *args, **kwargs)
        tokens.append(session.token)
        return session

    monkeypatch.setattr(Org, "new_session", new_session)
    return tokens


#: Credentials by shape, whoever minted them: session ids, bearer headers, private keys, JWTs.
LEAK_PATTERNS = (
    re.compile(r"00D\w{12,15}![\w.\-]{20,}"),
    re.compile(r"(?i)\b(bearer|oauth)\s+[\w.!\-]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"eyJ[\w-]{10,}\.[\w-]{10,}\.[\w-]{10,}"),
)


def leaks(text: str, secrets: list[str]) -> list[str]:
    found = [s[:12] + "..." for s in secrets if s in text]
    found += [f"pattern {p.pattern[:20]}" for p in LEAK_PATTERNS if p.search(text)]
    return found


def test_every_command_keeps_every_secret_out_of_output_logs_files_and_notifications(
        tmp_path: Path, minted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    st.fast_setup(monkeypatch)
    outputs: list[str] = []
    plan, baseline = tmp_path / "plan.json", tmp_path / "baseline.yaml"

    def cli(*args: str, config: Path | None = None) -> Any:
        extra = ["--config", str(config)] if config else []
        result = run(*extra, "-vv", "--log-format", "json", *args)
        outputs.append(f"$ remediate {' '.join(args)}\n{result.out}\n{result.err}")
        return result

    with receiver() as hook:
        cfg = tmp_path / "remediate.toml"
        cfg.write_text(f"""
[enforce.orgs.demo]
auto_approve_kinds = {json.dumps(ALL_KINDS)}
webhooks = [{{ url = "{hook.url}", kind = "json" }}, {{ url = "{hook.url}", kind = "slack" }}]
""", encoding="utf-8")
        cfg.chmod(0o600)
        cli("sandbox", "reset", "--org", "demo")
        cli("sandbox", "scenarios")
        for fmt in ("text", "json", "markdown"):
            cli("audit", "--org", "demo", "--format", fmt)
        cli("plan", "--org", "demo", "--out", str(plan), "--format", "json")
        cli("diagnose", "--org", "demo")
        cli("diagnose", "--org", "demo", "--error",
            "invalid_grant: no client credentials user enabled")
        assert cli("apply", str(plan), "--org", "demo", "--yes").code == 0
        assert cli("apply", str(plan), "--org", "demo", "--yes").code in (0, 3)  # stale
        cli("verify", "--org", "demo")
        cli("snapshot", "--org", "demo", "--out", str(baseline))
        cli("sandbox", "status", "--org", "demo")
        cli("sandbox", "integration", "copilot-for-sales", "--org", "demo", "--login-url",
            "https://login.salesforce.com")
        assert cli("verify", "--org", "demo").code != 0  # a failing token request, reported
        cli("history", config=cfg)
        cli("sandbox", "reset", "--org", "demo")
        assert cli("enforce", "--org", "demo", config=cfg).code == 0
        runs = [e["run_id"] for e in Journal(state_dir() / "journal.jsonl").read()
                if e["event"] == "apply.start"]
        cli("rollback", runs[-1], "--yes", config=cfg)
        cli("history", "--format", "json", config=cfg)
        cli("demo")
        cli("kinds")
        for fmt in ("text", "json"):
            cli("doctor", "--org", "demo", "--format", fmt)
        cli("playbook", "validate", *map(str, sorted((REPO / "playbooks").glob("*.yaml"))))
        cli("playbook", "schema")
        cli("audit", "--org", "sandbox:no-such-scenario")  # an error message
        notifications = hook.text

    assert minted, "the commands should have signed in"
    secrets = scenario_secrets() + minted
    files = {"plan": plan.read_text(), "snapshot": baseline.read_text(),
             "journal": (state_dir() / "journal.jsonl").read_text(),
             "notifications": notifications}
    for path in (REPO / "cassettes").rglob("*"):
        if path.is_file():  # recorded HTTP exchanges, sandbox secrets and all if unscrubbed
            files[str(path.relative_to(REPO))] = path.read_text(encoding="utf-8", errors="replace")
    assert files["notifications"], "enforce should have notified"
    assert any('"level": "debug"' in o or '"level": "info"' in o for o in outputs), \
        "the commands should have logged (-vv)"
    for text in outputs:
        assert leaks(text, secrets) == [], text[:200]
    for name, text in files.items():
        assert leaks(text, secrets) == [], name


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """remediate's own log set-up (JSON, debug, redaction) writing into a buffer."""
    buffer = io.StringIO()
    old = sys.stderr
    sys.stderr = buffer
    try:
        rlogging.configure("json", "debug")
        yield buffer
    finally:
        sys.stderr = old
        structlog.reset_defaults()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_faulted_runs_keep_secrets_out_of_errors_and_logs(
        kind: str, tmp_path: Path, minted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fault kind, at every request of the demo apply, persistent (so runs give up):
    the error messages and the debug logs hold no secret."""
    st.fast_setup(monkeypatch)
    texts: list[str] = []
    with captured_logs() as buffer:
        for position in (1, 2, 3, 4, 8, 9, 10, 14):  # sign-in, reads, writes, re-read
            spec, sandbox = st.demo_sandbox()
            sandbox.inject(kind, calls=range(position, position + 12))  # type: ignore[arg-type]
            outcome = st.run_apply(st.open_demo(spec, sandbox), Journal(tmp_path / "j.jsonl"))
            if isinstance(outcome.error, RemediateError):
                texts.append(f"{outcome.error.message} {outcome.error.hint or ''} "
                             f"{getattr(outcome.error, 'applied', '')}")
    texts.append(buffer.getvalue())
    texts.append((tmp_path / "j.jsonl").read_text() if (tmp_path / "j.jsonl").exists() else "")
    assert any(texts[:-2]), "the persistent faults should make runs give up"
    secrets = scenario_secrets() + minted
    for text in texts:
        assert leaks(text, secrets) == [], text[:300]


def test_scenario_secrets_are_what_the_scan_looks_for() -> None:
    found = scenario_secrets()
    assert "sandbox-admin-app-secret-0001" in found and "sandbox-admin-password" in found
    assert any(s.startswith("-----BEGIN PRIVATE KEY-----") for s in found)
    assert leaks("x sandbox-copilot-secret-0002 y", found)
    assert re.search(r"\w{40}", next(s for s in found if not s.startswith("-----")
                                     and len(s) >= 40))
