"""The fleet over several processes (remediate.fleet, ADR 0035): every org once, in order, under
one fleet run id in one journal, worked on in other processes; org locks hold across
processes; SIGTERM to the parent starts no new org and leaves no apply half-journalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from remediate import enforce, fleet
from remediate import playbook as playbooks
from remediate.builtin import BUILTIN_PLAYBOOKS, builtin_bindings, sandbox_admin, sandbox_logins
from remediate.journal import Journal
from remediate.orgs import OrgHandle
from remediate.salesforce.gateway import Gateway, TimeoutSession
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import mount
from remediate.sandbox.app import Sandbox
from remediate.settings import OrgConfig

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not fleet.can_fork(), reason="needs fork")]

APPROVE_ALL = enforce.Policy(auto_approve_kinds=frozenset(
    {"user.permission_set", "user.license", "user.api_enabled", "profile.login_ip_ranges",
     "app.client_credentials", "org.stored_urls"}))


def build(count: int, latency_s: float = 0.0) -> tuple[Sandbox, list[tuple[Any, Any]]]:
    healthy, demo = scenarios.load("healthy"), scenarios.load("demo")
    orgs = [(scenarios.build_org(demo if i % 3 == 0 else healthy, pod=i, my_domain=f"org{i}"),
             demo if i % 3 == 0 else healthy) for i in range(count)]
    sandbox = Sandbox([o for o, _ in orgs])
    sandbox.latency_s = latency_s
    return sandbox, orgs


def targets(sandbox: Sandbox, orgs: list[tuple[Any, Any]], pids: Path) -> list[enforce.Target]:
    session = mount(TimeoutSession(), sandbox)
    loaded = {p: playbooks.load(playbooks.resolve(p)) for p in BUILTIN_PLAYBOOKS}

    def opener(org: Any, spec: Any) -> OrgHandle:
        with pids.open("a") as fh:  # which process worked on the org
            fh.write(f"{org.my_domain} {os.getpid()}\n")
        url = org.my_domain_url
        gateway = Gateway(sandbox_admin(org), session=session, org_label=f"org {org.my_domain!r}")
        bindings = builtin_bindings(spec, url, {i.name: {"login_url": url}
                                                for i in spec.integrations})
        steps = [s for p in BUILTIN_PLAYBOOKS for s in playbooks.bind(loaded[p], bindings[p])]
        config = OrgConfig(login_url=url, auth="client_credentials", production=True,
                           playbooks=bindings)
        return OrgHandle(org.my_domain, config, gateway, steps, playbooks.digest(steps),
                         sandbox_logins(spec))

    return [enforce.Target(o.my_domain, partial(opener, o, spec),
                           APPROVE_ALL if spec.name == "demo" else enforce.Policy())
            for o, spec in orgs]


def test_two_processes_report_every_org_once_in_order_under_one_run_in_one_journal(
        tmp_path: Path) -> None:
    sandbox, orgs = build(12)
    journal = Journal(tmp_path / "journal.jsonl")
    heard: list[str] = []
    result = fleet.run_fleet(targets(sandbox, orgs, tmp_path / "pids"), journal=journal,
                             processes=2, workers=3, lock_dir=tmp_path / "locks",
                             on_done=lambda r: heard.append(r.org))

    assert [r.org for r in result.reports] == [f"org{i}" for i in range(12)]
    assert sorted(heard) == sorted(r.org for r in result.reports)  # progress heard each org
    for i, report in enumerate(result.reports):
        assert report.outcome == ("fixed" if i % 3 == 0 else "clean"), (report.org,
                                                                         report.message)
    worked = dict(line.split() for line in (tmp_path / "pids").read_text().splitlines())
    assert len(worked) == 12
    assert len(set(worked.values())) == 2 and str(os.getpid()) not in worked.values()
    records = list(journal.read())  # every line whole: no two processes' records interleaved
    enforced = [r for r in records if r["event"] == "enforce"]
    assert sorted(r["org"] for r in enforced) == sorted(f"org{i}" for i in range(12))
    assert {r["fleet_run"] for r in enforced} == {result.run_id}
    assert len([r for r in records if r["event"] == "apply.end"]) == 4


def test_an_org_locked_by_this_process_is_reported_locked_by_the_fleet_processes(
        tmp_path: Path) -> None:
    sandbox, orgs = build(4)
    with enforce.org_lock("org1", tmp_path / "locks") as held:
        assert held
        result = fleet.run_fleet(targets(sandbox, orgs, tmp_path / "pids"),
                                 journal=Journal(tmp_path / "journal.jsonl"), processes=2,
                                 workers=2, lock_dir=tmp_path / "locks")
    outcomes = {r.org: r.outcome for r in result.reports}
    assert outcomes["org1"] == "locked"
    assert outcomes["org0"] == "fixed" and outcomes["org2"] == "clean"


SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_fleet_processes import build, targets
from remediate import fleet, runguard
from remediate.journal import Journal
tmp = Path({tmp!r})
sandbox, orgs = build(40, latency_s=0.05)
with runguard.guarded():
    try:
        fleet.run_fleet(targets(sandbox, orgs, tmp / "pids"), journal=Journal(tmp / "j.jsonl"),
                        processes=2, workers=2, lock_dir=tmp / "locks")
    except KeyboardInterrupt:
        sys.exit(130)
"""


def test_sigterm_to_the_parent_starts_no_new_org_and_leaves_every_apply_journalled_whole(
        tmp_path: Path) -> None:
    script = SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    journal = tmp_path / "j.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.exists() and
                                               b'"enforce"' in journal.read_bytes()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    enforced = [r["org"] for r in records if r["event"] == "enforce"]
    started = [line.split()[0] for line in (tmp_path / "pids").read_text().splitlines()]
    assert 0 < len(enforced) < 40  # stopped early, but after the orgs already started
    assert sorted(enforced) == sorted(started)  # every org started was finished and journalled
    starts = {r["run_id"] for r in records if r["event"] == "apply.start"}
    ends = {r["run_id"] for r in records if r["event"] == "apply.end"}
    assert starts == ends
    pids = {int(line.split()[1]) for line in (tmp_path / "pids").read_text().splitlines()}
    for pid in pids:  # no fleet process outlives the run
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_enforce_over_two_processes_reports_both_orgs_and_refuses_zero_processes() -> None:
    from cliharness import run

    result = run("enforce", "--org", "demo", "--org", "sandbox:healthy", "--processes", "2",
                 "--format", "json")
    assert result.code == 2, result.err  # demo drifts (pending approval), healthy is clean
    outcomes = {o["org"]: o["outcome"] for o in result.json()["orgs"]}
    assert outcomes == {"demo": "pending approval", "sandbox:healthy": "clean"}
    assert run("enforce", "--org", "demo", "--processes", "0").code == 64
