"""Calls in flight per org (issue 17, point 6): bounded (25 at most, Salesforce's limit on
concurrent long-running requests), configurable by ``in_flight`` ([orgs.NAME] or top level)
and ``--in-flight``; at the default a 200-integration playbook's reads are one wave."""

from __future__ import annotations

from collections import Counter

import pytest
from cliharness import run

from remediate import orgs
from remediate.settings import OrgConfig, Settings

pytestmark = pytest.mark.e2e


def test_reads_of_two_hundred_integrations_take_two_round_trips_at_the_default() -> None:
    from benchmarks.orgs import scaled_handle
    from remediate import engine

    handle, sandbox = scaled_handle(200)
    engine.assess(handle)
    ops = Counter(f"{r.api} {r.operation}" for r in sandbox.requests)
    assert ops["soap readMetadata"] == 20  # 10 apps per call
    assert handle.gateway.rounds == 2  # the token, then one wave of every read


def test_a_lower_in_flight_sends_the_same_calls_in_more_round_trips() -> None:
    from benchmarks.orgs import scaled_handle
    from remediate import engine

    handle, sandbox = scaled_handle(200)
    handle.gateway.parallel = 8
    engine.assess(handle)
    assert Counter(f"{r.api} {r.operation}" for r in sandbox.requests)["soap readMetadata"] \
        == 20
    assert handle.gateway.rounds == 4  # the token, then ceil(23 / 8) = 3 rounds of the wave


def test_in_flight_comes_from_the_option_then_the_org_then_the_top_level(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_TOKEN", "00Dxx!token")
    monkeypatch.setattr(orgs, "bind_playbooks", lambda *a, **k: ([], "digest"))
    base = {"login_url": "https://acme.my.salesforce.com", "auth": "access_token",
            "access_token_env": "ACME_TOKEN"}
    settings = Settings(in_flight=7, orgs={"plain": OrgConfig(**base),
                                           "own": OrgConfig(**base, in_flight=3)})
    assert orgs.open_org("plain", settings).gateway.parallel == 7
    assert orgs.open_org("own", settings).gateway.parallel == 3
    assert orgs.open_org("own", settings, in_flight=5).gateway.parallel == 5
    assert orgs.open_org("demo", settings, in_flight=2).gateway.parallel == 2
    assert orgs.open_org("demo", Settings()).gateway.parallel == 25


def test_in_flight_above_the_bound_is_bad_input_naming_the_option() -> None:
    result = run("--in-flight", "26", "audit", "--org", "demo")
    assert result.code == 64
    assert "--in-flight" in result.err + result.out
