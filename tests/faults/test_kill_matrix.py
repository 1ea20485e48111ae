"""The kill matrix: a real ``remediate apply`` subprocess stopped by kill -9 or SIGINT at each
request position of the demo apply, and the journal, ``history`` and ``rollback`` exact every
time.

The demo org is served over HTTPS from this process; the subprocess applies to it as a
configured org. At request n the server acts on the request (a write is committed), then holds
the answer while the test signals the subprocess: the hardest moment, when the org has changed
and the client does not know. Then:

* the journal explains every change in the org: each one is in a batch journalled ``applied``
  or in a batch whose outcome is unknown (its intent was journalled, its outcome never was),
  and every batch journalled ``applied`` is in the org;
* after SIGINT, a run that had started applying has an ``interrupted`` record, and exit 130;
* ``history`` counts the run's applied and unknown changes from its batches;
* ``rollback`` of the run (which re-reads the org for the unknown batches) brings the org back
  to where it was before the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orgstate as st
import pytest
from cliharness import run

from remediate.builtin import builtin_bindings
from remediate.sandbox.server import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def write_config(tmp_path: Path, url: str, ca: str, bindings: dict[str, Any]) -> Path:
    lines = [f"journal = {_toml(str(tmp_path / 'journal.jsonl'))}", "", "[orgs.lab]",
             f"login_url = {_toml(url)}", f"instance_url = {_toml(url)}",
             'auth = "access_token"', 'access_token_env = "LAB_TOKEN"',
             f"ca_bundle = {_toml(ca)}", "production = true", ""]
    for name, variables in bindings.items():
        lines.append(f'[orgs.lab.playbooks.{name}]')
        lines += [f"{k} = {_toml(v)}" for k, v in variables.items()]
        lines.append("")
    path = tmp_path / "remediate.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.chmod(0o600)
    return path


class Held:
    """The sandbox's answer to request ``position`` held until ``release``."""

    def __init__(self, sandbox: Any, position: int) -> None:
        self.count = 0
        self.position = position
        self.reached = threading.Event()
        self.release = threading.Event()
        self._handle = sandbox.handle
        self._lock = threading.Lock()

    def __call__(self, request: Any) -> Any:
        response = self._handle(request)  # the org acts first: a write is committed
        with self._lock:
            self.count += 1
            mine = self.count == self.position
        if mine:
            self.reached.set()
            self.release.wait(30)
        return response


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    st.fast_setup(monkeypatch)
    spec, sandbox = st.demo_sandbox()
    admin = sandbox.org.user_by_username("admin@acme.example.com")
    assert admin is not None
    token = sandbox.org.new_session(admin["Id"], None, ("api",), "test").token
    monkeypatch.setenv("LAB_TOKEN", token)
    with serve_in_thread(sandbox) as srv:
        bindings = builtin_bindings(spec, sandbox.org.my_domain_url, {})
        config = write_config(tmp_path, srv.url, str(srv.ca_bundle), bindings)
        yield {"sandbox": sandbox, "config": config, "token": token,
               "journal": tmp_path / "journal.jsonl"}


def start_apply(lab: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LAB_TOKEN": lab["token"], "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "remediate", "--config", str(lab["config"]),
                             "apply", "--org", "lab", "--yes"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop_at(lab: dict[str, Any], position: int, how: signal.Signals) -> tuple[bool, int, str]:
    """Run the apply, stop it with ``how`` while request ``position`` is held. Returns (was
    the position reached, exit code, stderr)."""
    sandbox = lab["sandbox"]
    held = Held(sandbox, position)
    sandbox.handle = held
    proc = start_apply(lab)
    try:
        while not held.reached.wait(0.05):
            if proc.poll() is not None:
                break
        reached = held.reached.is_set()
        if reached:
            proc.send_signal(how)
            if how == signal.SIGINT:
                time.sleep(0.3)  # let the interrupt land while the answer is held
        held.release.set()
        _, err = proc.communicate(timeout=60)
    finally:
        held.release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        del sandbox.handle  # back to the class's method
    return reached, proc.returncode, err.decode("utf-8", "replace")


def by_content(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with LoginIpRange rows keyed by what they hold: writing a Profile's
    loginIpRanges back replaces its rows (new ids, same ranges)."""
    rows = snapshot["tables"].get("LoginIpRange", {})
    keyed = {}
    for row in rows.values():
        content = {k: v for k, v in row.items() if k not in ("Id",) and k not in st.IGNORED_FIELDS}
        keyed[json.dumps(content, sort_keys=True, default=str)] = content
    return {**snapshot, "tables": {**snapshot["tables"], "LoginIpRange": keyed}}


def check_position(lab: dict[str, Any], position: int, how: signal.Signals) -> bool:
    sandbox = lab["sandbox"]
    baseline = st.snapshot(sandbox.org)
    reached, code, err = stop_at(lab, position, how)
    if not reached:
        assert code in (0, 2), err  # the whole apply ran (2: manual changes remain)
        return False
    records = st.journal_records(lab["journal"])
    started = [r for r in records if r["event"] == "apply.start"]
    observed = st.diff_keys(baseline, st.snapshot(sandbox.org))
    if not started:
        assert observed == [], "a change with no apply.start in the journal"
        return True
    run_id = started[-1]["run_id"]
    mine = [r for r in records if r.get("run_id") == run_id]
    outcomes = {r["batch"]: r for r in mine if r["event"] == "batch"}
    intents = [r for r in mine if r["event"] == "batch.intent"]
    applied = [c for r in outcomes.values() if r["result"] == "applied" for c in r["changes"]]
    unknown = [c for r in outcomes.values() if r["result"] == "unknown" for c in r["changes"]]
    unknown += [c for r in intents if r["batch"] not in outcomes for c in r["changes"]]

    # the journal explains the org exactly
    extra, missing = st.unexplained(observed, st.record_keys(applied), st.record_keys(unknown))
    assert (extra, missing) == ([], []), (how.name, position, extra, missing, err)
    ended = any(r["event"] == "apply.end" for r in mine)
    if how == signal.SIGINT:
        assert code == 130, err
        assert ended or any(r["event"] == "interrupted" for r in mine), mine
    else:
        assert code == -signal.SIGKILL

    # history counts from the batches
    listed = run("--config", str(lab["config"]), "history", "--format", "json")
    assert listed.code == 0, listed.err
    summary = next(r for r in listed.json() if r["run_id"] == run_id)
    assert (summary["changes"], summary["unknown"]) == (len(applied), len(unknown)), summary
    if unknown:
        assert summary["status"] == "unknown outcome"

    # rollback re-reads the org and restores it
    undo = None
    if applied or unknown:
        undo = run("--config", str(lab["config"]), "rollback", run_id, "--yes")
        assert undo.code in (0, 2), undo.err
    assert st.diff_keys(by_content(baseline), by_content(st.snapshot(sandbox.org))) == [], (
        how.name, position, undo and undo.out, [r for r in mine if "batch" in r["event"]])
    return True


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "sigint"])
def test_a_killed_or_interrupted_apply_leaves_journal_history_and_rollback_exact(
        lab: dict[str, Any], how: signal.Signals) -> None:
    position = 1
    while check_position(lab, position, how):
        position += 1
        lab["journal"].unlink(missing_ok=True)
    assert position > 10, "the demo apply made fewer requests than expected"
