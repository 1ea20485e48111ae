"""A fleet of 200 sandbox orgs in one Sandbox, with latency and permanent faults in some:
enforce completes, faulted orgs are reported failed, every other org clean or fixed."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import registry

from remediate import enforce
from remediate import playbook as playbooks
from remediate.builtin import BUILTIN_PLAYBOOKS, builtin_bindings, sandbox_admin, sandbox_logins
from remediate.journal import Journal
from remediate.orgs import OrgHandle
from remediate.salesforce.gateway import Gateway, TimeoutSession
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import mount
from remediate.sandbox.app import FaultKind, Sandbox
from remediate.sandbox.state import Org
from remediate.settings import OrgConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FLEET = 200
FAULTS: dict[int, FaultKind] = {1: "http_503", 4: "drop_connection", 16: "http_503", 29: "drop_connection"}
WRITE_FAULT = 3  # a demo org whose writes fail: apply stops, the org is failed
APPROVE_ALL = enforce.Policy(auto_approve_kinds=frozenset(
    {"user.permission_set", "user.license", "user.api_enabled", "profile.login_ip_ranges",
     "app.client_credentials", "org.stored_urls"}))


def fleet_targets(sandbox: Sandbox, orgs: list[tuple[Org, Any]]) -> list[enforce.Target]:
    session = mount(TimeoutSession(), sandbox)
    loaded = {p: playbooks.load(playbooks.resolve(p)) for p in BUILTIN_PLAYBOOKS}

    def opener(org: Org, spec: Any) -> OrgHandle:
        url = org.my_domain_url
        gateway = Gateway(sandbox_admin(org), session=session,
                          org_label=f"org {org.my_domain!r}")
        bindings = builtin_bindings(spec, url, {i.name: {"login_url": url}
                                                for i in spec.integrations})
        steps = [s for p in BUILTIN_PLAYBOOKS for s in playbooks.bind(loaded[p], bindings[p])]
        logins = sandbox_logins(spec)
        config = OrgConfig(login_url=url, auth="client_credentials", production=True, playbooks=bindings)
        return OrgHandle(org.my_domain, config, gateway, steps, playbooks.digest(steps), logins)

    targets = []
    for org, spec in orgs:
        policy = APPROVE_ALL if spec.name == "demo" else enforce.Policy()
        targets.append(enforce.Target(org.my_domain, partial(opener, org, spec), policy))
    return targets


def build_fleet() -> tuple[Sandbox, list[tuple[Org, Any]]]:
    healthy, demo = scenarios.load("healthy"), scenarios.load("demo")
    orgs = []
    for i in range(FLEET):
        spec = demo if i % 10 == 3 else healthy  # 20 drifting orgs, 180 healthy ones
        org = scenarios.build_org(spec, pod=i, my_domain=f"org{i}")
        orgs.append((org, spec))
    sandbox = Sandbox([org for org, _ in orgs])
    sandbox.latency_s = 0.005
    for i, kind in FAULTS.items():
        sandbox.inject(kind, org=f"org{i}")  # every request to that org, for the whole run
    # every write of the licence and the permission sets (one composite, ADR 0044; the read
    # composite before it is call 1) answers 503
    sandbox.inject("http_503", org=f"org{WRITE_FAULT}", api="rest", operation="composite",
                   calls=range(2, 100))
    return sandbox, orgs


def test_fleet_of_200_orgs_with_latency_and_faults_completes_with_faulted_orgs_failed(
        tmp_path: Path) -> None:
    sandbox, orgs = build_fleet()
    journal = Journal(tmp_path / "journal.jsonl")
    result = enforce.run_fleet(fleet_targets(sandbox, orgs), journal=journal, workers=16,
                               lock_dir=tmp_path / "locks")

    by_org = {r.org: r for r in result.reports}
    assert len(by_org) == FLEET
    failed = {name for name, r in by_org.items() if r.outcome == "failed"}
    assert failed == {f"org{i}" for i in FAULTS} | {f"org{WRITE_FAULT}"}
    for name, report in by_org.items():
        if name in failed:
            assert report.message, name
            continue
        drifting = int(name[3:]) % 10 == 3
        assert report.outcome == ("fixed" if drifting else "clean"), (name, report.message)
        if drifting:
            assert len(report.applied) == len(registry.automatic_changes("demo"))
            assert report.pending == []
    assert result.worst == "failed" and result.exit_code == 1
    assert "503" in by_org["org1"].message and "cannot reach" in by_org["org4"].message
    assert "apply stopped" in by_org[f"org{WRITE_FAULT}"].message

    enforced = [e for e in journal.read() if e["event"] == "enforce"]
    assert len(enforced) == FLEET and len({e["fleet_run"] for e in enforced}) == 1
    applied_runs = {e["run_id"] for e in journal.read() if e["event"] == "apply.end"
                    and e["status"] == "applied"}
    assert len(applied_runs) == FLEET // 10 - 1  # every drifting org but the write-faulted one


def test_fleet_shards_cover_every_org_once() -> None:
    names = [f"org{i}" for i in range(FLEET)]
    shards = [enforce.select_shard(names, i, 4) for i in range(4)]
    assert sorted(n for s in shards for n in s) == sorted(names)
    assert all(shards)  # 200 names over 4 shards: none is empty
    assert enforce.select_shard(names, 1, 4) == shards[1]  # the same split every time


