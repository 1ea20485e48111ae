"""The API version negotiated with an org is kept for 24 hours (ADR 0039, as the Salesforce
CLI keeps ``instanceApiVersion``): a second command asks no version list, a day-old or
foreign entry is asked again, and a kept version the org no longer serves is re-negotiated
without a wrong claim. Through the real client stack against the sandbox."""

from __future__ import annotations

import json
import time

import pytest

from remediate import builtin, engine, orgs
from remediate.salesforce import versioncache, versions
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org
from remediate.settings import cache_dir


def _org(name: str = "healthy") -> tuple[Sandbox, Org, scenarios.Scenario]:
    spec = scenarios.load(name)
    org = scenarios.build_org(spec)
    return Sandbox([org]), org, spec


def _open(sandbox: Sandbox, spec: scenarios.Scenario) -> orgs.OrgHandle:
    return builtin.open_on_sandbox("sandbox:healthy", spec, sandbox)


def _version_lists(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests if r.path == "/services/data/")


def test_a_second_command_talks_at_the_kept_version_without_asking() -> None:
    sandbox, org, spec = _org()
    first = engine.assess(_open(sandbox, spec))
    assert _version_lists(sandbox) == 1
    kept = json.loads(versioncache.path_for(org.my_domain_url).read_text())
    assert kept["version"] == "67.0" and kept["url"] == org.my_domain_url.lower()
    assert versioncache.path_for(org.my_domain_url).parent == cache_dir() / "api-versions"
    sandbox.requests.clear()
    handle = _open(sandbox, spec)
    second = engine.assess(handle)
    assert _version_lists(sandbox) == 0
    assert handle.gateway.version == "67.0"
    assert second.plan.checksum == first.plan.checksum


def test_a_kept_version_the_org_no_longer_serves_is_negotiated_again() -> None:
    sandbox, org, spec = _org()
    before = engine.assess(_open(sandbox, spec))  # keeps 67.0
    org.max_api_version = "62.0"  # the org now serves up to 62.0 only
    sandbox.requests.clear()
    handle = _open(sandbox, spec)
    after = engine.assess(handle)
    assert handle.gateway.version == "62.0"
    assert after.inventory.api_version == "62.0"
    assert _version_lists(sandbox) == 1  # asked once, when the kept version was refused
    assert versioncache.get(org.my_domain_url) == "62.0"
    # the same findings as a fresh negotiation at 62.0 gives: nothing claimed from the refusal
    fresh_sandbox, fresh_org, _ = _org()
    fresh_org.max_api_version = "62.0"
    versioncache.put(fresh_org.my_domain_url, None)
    fresh = engine.assess(_open(fresh_sandbox, spec))
    assert [(f.step, f.status) for f in after.findings] == \
        [(f.step, f.status) for f in fresh.findings]
    assert after.plan.checksum == fresh.plan.checksum == before.plan.checksum
    refused = [r for r in sandbox.requests if "/v67.0/" in r.path or "/m/67.0" in r.path]
    assert refused and all(r.status >= 400 for r in refused)


def test_a_day_old_entry_is_asked_again() -> None:
    sandbox, org, spec = _org()
    versioncache.put(org.my_domain_url, "62.0", now=time.time() - versioncache.MAX_AGE_S - 1)
    handle = _open(sandbox, spec)
    engine.assess(handle)
    assert _version_lists(sandbox) == 1
    assert handle.gateway.version == "67.0"
    assert versioncache.get(org.my_domain_url) == "67.0"


@pytest.mark.parametrize("entry", [
    {"version": "62.0", "newest": "66.0"},  # written by a remediate that knew less
    {"version": "99.0", "newest": versions.NEWEST},  # not a version remediate talks
    {"version": "59.0", "newest": versions.NEWEST},  # below what a step needs (A10: 60.0)
    {"version": "62.0", "newest": versions.NEWEST, "url": "https://other.my.salesforce.com"},
    {"version": "62.0", "newest": versions.NEWEST, "future": True},  # clock set back
])
def test_an_entry_remediate_cannot_trust_is_asked_again(entry: dict[str, object]) -> None:
    sandbox, org, spec = _org()
    at = time.time() + (3600 if entry.pop("future", False) else 0)
    path = versioncache.path_for(org.my_domain_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": org.my_domain_url.lower(), **entry, "at": at}))
    # (an entry naming another org's URL is another org's: never used for this one)
    engine.assess(_open(sandbox, spec))
    assert _version_lists(sandbox) == 1


def test_an_unreadable_cache_file_is_ignored() -> None:
    sandbox, org, spec = _org()
    path = versioncache.path_for(org.my_domain_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    handle = _open(sandbox, spec)
    engine.assess(handle)
    assert handle.gateway.version == "67.0"
    assert versioncache.get(org.my_domain_url) == "67.0"


def test_a_pinned_api_version_neither_reads_nor_writes_the_kept_one() -> None:
    sandbox, org, spec = _org()
    versioncache.put(org.my_domain_url, "66.0")
    handle = _open(sandbox, spec)
    handle.gateway.pinned_version = handle.gateway.version = "62.0"
    handle.gateway._negotiated = True
    engine.assess(handle)
    assert _version_lists(sandbox) == 0
    assert [p for p in (r.path for r in sandbox.requests) if p.endswith("/composite")] == \
        ["/services/data/v62.0/composite"]
    assert versioncache.get(org.my_domain_url) == "66.0"
