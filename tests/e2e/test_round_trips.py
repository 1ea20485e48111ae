"""Requests and round trips per command on the demo org, pinned (ADR 0010).

Each command runs through the CLI in process; the handle it opens is caught on close, with the
sandbox's request counters by API and the gateway's round trips (``rounds``: one per request
outside a wave, one per wave of up to ``parallel`` calls). A change that adds a request, or that
makes a call of a wave wait for another, fails here. The benchmark (benchmarks/run.py) measures
the same at 100 ms of latency from request timings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cliharness import run

from remediate import orgs

APIS = ("oauth", "rest", "tooling", "soap")


@dataclass
class Seen:
    requests: dict[str, int]
    operations: Counter[str]
    rounds: int


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Seen]]:
    """What each handle the CLI opened sent, recorded when the command closes it."""
    out: list[Seen] = []
    close = orgs.OrgHandle.close

    def recording_close(self: orgs.OrgHandle) -> None:
        counts = self.sandbox.counts
        ops = Counter(f"{r.api} {r.operation}" for r in self.sandbox.requests)
        out.append(Seen({api: counts[api] for api in APIS}, ops, self.gateway.rounds))
        close(self)

    monkeypatch.setattr(orgs.OrgHandle, "close", recording_close)
    yield out


def test_audit_of_the_demo_org_is_ten_requests_in_two_round_trips(seen: list[Seen]) -> None:
    assert run("audit", "--org", "demo").code == 2
    [audit] = seen
    # token and, alongside it, the org's API versions; one composite (User, PermissionSet,
    # PermissionSetLicense, Profile, Organization); the Tooling package query; readMetadata for
    # ConnectedApp, NamedCredential, RemoteSiteSetting and Profile (its login IP ranges, ADR
    # 0021), one listMetadata of ConnectedApp, to find the apps by name and namespace (issue 9),
    # and of Profile, for the profile's API name (two queries in one call, ADR 0048), all in
    # one wave
    assert audit.requests == {"oauth": 1, "rest": 3, "tooling": 1, "soap": 5}
    assert audit.operations["soap readMetadata"] == 4
    assert audit.operations["soap listMetadata"] == 1
    assert audit.operations["rest versions"] == 1
    assert audit.rounds == 2  # the token (with the version list beside it), then one wave


def test_plan_costs_what_audit_costs(seen: list[Seen]) -> None:
    assert run("plan", "--org", "demo").code == 0
    assert seen[0].requests == {"oauth": 1, "rest": 2, "tooling": 1, "soap": 5}
    assert seen[0].rounds == 2


def test_apply_of_the_demo_org(seen: list[Seen]) -> None:
    assert run("apply", "--org", "demo", "--yes").code == 0
    [apply] = seen
    assert apply.requests == {"oauth": 1, "rest": 5, "tooling": 2, "soap": 13}
    assert apply.operations == Counter({
        "oauth token": 1, "rest versions": 1,
        "rest limits": 1,  # the daily API allowance, checked before writing (ADR 0029)
        "rest composite": 3,  # the read before, the licence and the permission sets that
        # need it as one composite (ADR 0044), the re-read after
        "tooling query": 2,  # the read before and the re-read after
        "soap readMetadata": 8,  # 4 read, 4 re-read
        "soap listMetadata": 2,  # the apps and the profile's API name, read and re-read
        "soap upsertMetadata": 3,  # ConnectedApp, Profile, RemoteSiteSetting
    })
    # token, read wave, /limits, the licence and permission sets' composite with the 3
    # upserts as one wave (ADR 0039, ADR 0044), re-read
    assert apply.rounds == 5


def test_verify_of_the_demo_org_after_apply(seen: list[Seen]) -> None:
    run("apply", "--org", "demo", "--yes")
    seen.clear()
    assert run("verify", "--org", "demo").code == 0
    [verify] = seen
    # the sign-in (the instance URL is the My Domain; no version list: apply's negotiated
    # version is kept for 24 hours, ADR 0039), then together: the re-read wave and both
    # integrations' token request followed by its API call
    assert verify.requests == {"oauth": 3, "rest": 3, "tooling": 1, "soap": 5}
    assert verify.operations["rest versions"] == 0
    assert verify.rounds == 1 + 2


def test_diagnose_adds_one_login_history_query_to_the_audits_read(seen: list[Seen]) -> None:
    run("diagnose", "--org", "demo")
    [diagnose] = seen
    assert diagnose.requests == {"oauth": 1, "rest": 4, "tooling": 1, "soap": 5}
    assert diagnose.rounds == 3


def test_snapshot_costs_what_audit_costs(seen: list[Seen], tmp_path: pytest.TempPathFactory
                                         ) -> None:
    assert run("snapshot", "--org", "demo", "--out", f"{tmp_path}/baseline.yaml",
               "--capture-drift").code == 0
    assert seen[0].requests == {"oauth": 1, "rest": 2, "tooling": 1, "soap": 5}
    assert seen[0].rounds == 2


def test_reads_of_fifty_integrations_still_take_one_wave() -> None:
    """As the playbooks grow, the calls grow (10 names per readMetadata) but not the waits."""
    from benchmarks.orgs import scaled_handle
    from remediate import engine

    for n, metadata_calls, rounds in ((1, 1, 2), (10, 1, 2), (50, 5, 2)):
        handle, sandbox = scaled_handle(n)
        engine.assess(handle)
        ops = Counter(f"{r.api} {r.operation}" for r in sandbox.requests)
        # the version list once: the version it gives is kept for the next orgs' sign-ins
        # (the same My Domain, ADR 0039)
        assert ops == Counter({"oauth token": 1, "rest versions": int(n == 1),
                               "rest composite": 1,
                               "soap listMetadata": 1,  # the apps, found by name (issue 9)
                               "soap readMetadata": metadata_calls}), n
        assert handle.gateway.rounds == rounds, n
