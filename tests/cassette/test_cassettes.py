"""Each step kind's read, apply and verify traffic, replayed from the cassettes under cassettes/.

Replay is strict: a request the cassette does not hold raises vcr's
CannotOverwriteExistingCassetteException, and an interaction the run did not make fails the
phase. ``REMEDIATE_RECORD_CASSETTES=1`` records them again through the sandbox's HTTPS server
(cassettes/README.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import registry
from vcr.errors import CannotOverwriteExistingCassetteException
from vcrkit import (
    CASES,
    CASSETTES,
    DEMO,
    PHASES,
    Case,
    known_secrets,
    org_for,
    phase,
    recording,
    scrub_text,
)

from remediate import engine
from remediate.errors import SalesforceError
from remediate.journal import Journal
from remediate.orgs import OrgHandle
from remediate.plan import Approval
from remediate.salesforce.versions import NEWEST
from remediate.steps.base import kinds

APPROVAL = Approval(by="cassette-test", how="flag", at="2025-01-01T00:00:00+00:00")


@pytest.fixture(autouse=True)
def _no_ca_override(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets these override Session.verify, which must be the sandbox server's own CA
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def kind_findings(assessment: engine.Assessment, kind: str) -> list[engine.Finding]:
    return [f for f in assessment.findings if f.kind == kind]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_step_kind_read_apply_and_verify_replay_their_cassettes(case: Case,
                                                                tmp_path: Path) -> None:
    with org_for(case) as handle:
        assert handle.steps, f"no shipped playbook step has kind {case.kind}"

        with phase(case, "read") as read:
            assessment = engine.assess(handle)
        assert len(read) > 0
        drifting = [f for f in kind_findings(assessment, case.kind) if f.status != "ok"]
        assert drifting, f"{case.scenario} should drift {case.kind}"

        with phase(case, "apply") as apply:
            result = engine.apply(handle, assessment, APPROVAL, Journal(tmp_path / "j.jsonl"))
        if case.automatic:
            assert result.applied and len(apply) > 0
        else:
            assert not result.applied and len(apply) == 0  # manual changes write nothing

        with phase(case, "verify"):
            verified = engine.verify(handle)
        after = kind_findings(verified.assessment, case.kind)
        if case.automatic:
            assert {f.status for f in after} == {"ok"}
        else:  # what needs a person is still there, and nothing else appeared
            assert [f for f in after if f.status != "ok"] == drifting
        assert [name for name, _ in verified.tokens] == [login.name for login in handle.logins]


def test_demo_org_commands_replay_their_cassettes_request_for_request(tmp_path: Path) -> None:
    """The demo org's audit (and plan), apply and verify: one more or one fewer request than
    the cassette holds fails here."""
    with org_for(DEMO) as handle:
        with phase(DEMO, "read") as read:
            assessment = engine.assess(handle)
        # the version list, composite, Tooling, readMetadata x4 (ConnectedApp, NamedCredential,
        # RemoteSiteSetting, Profile), one listMetadata of ConnectedApp (the apps found by name
        # and namespace, issue 9) and Profile (ADR 0048), and userinfo (the replay URL is no My
        # Domain)
        assert len(read) == 9
        assert {f.cause for f in assessment.findings if f.status != "ok"} >= \
            registry.scenario_causes("demo")
        with phase(DEMO, "apply") as apply:
            result = engine.apply(handle, assessment, APPROVAL, Journal(tmp_path / "j.jsonl"))
        assert len(result.applied) == len(registry.automatic_changes("demo"))
        assert len(apply) > 0
        with phase(DEMO, "verify"):
            verified = engine.verify(handle)
        assert verified.ok, [(n, t) for n, t in verified.tokens]


def test_every_step_kind_has_a_cassette_case() -> None:
    assert {c.kind for c in CASES} == set(kinds())


def test_every_case_has_its_three_cassettes_and_no_stray_ones() -> None:
    expected = {c.cassette(p).relative_to(CASSETTES) for c in (*CASES, DEMO) for p in PHASES}
    found = {p.relative_to(CASSETTES) for p in CASSETTES.rglob("*.yaml")}
    assert found == expected


# ---- strictness: changed requests and skipped interactions fail ---------------------------


def _with_extra_query(handle: OrgHandle, monkeypatch: pytest.MonkeyPatch,
                      path_pattern: str) -> None:
    """Every request whose URL matches ``path_pattern`` gains a query parameter."""
    session: Any = handle.gateway._session
    real = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if re.search(path_pattern, url):
            kwargs["params"] = {**(kwargs.get("params") or {}), "extra": "1"}
        return real(method, url, *args, **kwargs)

    monkeypatch.setattr(session, "request", request)


CC = next(c for c in CASES if c.name == "app.client_credentials")


@pytest.mark.skipif(recording(), reason="replay only")
def test_token_request_with_an_extra_query_raises_the_vcr_exception(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with org_for(CC, version=NEWEST) as handle:
        _with_extra_query(handle, monkeypatch, r"/services/oauth2/token$")
        with pytest.raises(CannotOverwriteExistingCassetteException), phase(CC, "verify"):
            engine.verify(handle)


@pytest.mark.skipif(recording(), reason="replay only")
def test_read_with_an_extra_query_fails_on_the_vcr_exception(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with org_for(CC) as handle:
        _with_extra_query(handle, monkeypatch, r"/composite$")
        # the gateway names the transport exception it could not map
        with pytest.raises(SalesforceError, match="CannotOverwriteExistingCassetteException"), \
                phase(CC, "read"):
            engine.assess(handle)


@pytest.mark.skipif(recording(), reason="replay only")
def test_skipping_recorded_interactions_fails_as_unplayed() -> None:
    # verify's cassette also holds the token requests, which assess alone never makes
    with org_for(CC, version=NEWEST) as handle, \
            pytest.raises(AssertionError, match=r"unplayed interaction\(s\).*oauth2/token"), \
            phase(CC, "verify"):
        engine.assess(handle)


# ---- no secret in any cassette ------------------------------------------------------------

TOKENISH = {
    "session id": re.compile(r"00D\w+!"),
    "bearer token": re.compile(r"Bearer "),
    "basic credentials": re.compile(r"Basic [A-Za-z0-9+/=]{8,}"),
    "PEM block": re.compile(r"-----BEGIN"),
    "JWT": re.compile(r"eyJ[\w-]{4,}"),
    "consumer secret element": re.compile(r"<(?:\w+:)?consumerSecret>(?!REDACTED<)"),
    "refresh token": re.compile(r"5Aep861"),
    "server port": re.compile(r"127\.0\.0\.1|localhost:\d"),
    "binary (unscannable) body": re.compile(r"!!binary"),
}


def cassette_files() -> list[Path]:
    return sorted(p for p in CASSETTES.rglob("*") if p.is_file())


@pytest.mark.parametrize("path", cassette_files(),
                         ids=[str(p.relative_to(CASSETTES)) for p in cassette_files()])
def test_cassette_file_holds_nothing_token_like(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    hits = [what for what, pattern in TOKENISH.items() if pattern.search(text)]
    hits += [f"scenario secret {s[:6]}..." for s in known_secrets() if s in text]
    assert not hits, f"{path.relative_to(CASSETTES.parent)}: {hits}"


def test_known_secrets_include_the_scenarios_client_secrets_and_keys() -> None:
    secrets = known_secrets()
    assert "sandbox-copilot-secret-0002" in secrets
    assert any(s.startswith("-----BEGIN PRIVATE KEY-----") for s in secrets)


@pytest.mark.parametrize("raw", [
    "Authorization: Bearer 00D5e000000AbCd!AQ4AQFk.x-y_z",
    "<sessionId>00D5e000000AbCdEAF!abc</sessionId>",
    '{"access_token": "00Dxx!tok", "signature": "c2ln", "refresh_token": "5Aep861abc"}',
    "grant_type=urn%3Aietf&assertion=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
    "grant_type=password&client_secret=sandbox-copilot-secret-0002&password=pw",
    "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
    "<consumerSecret>abcdef0123456789</consumerSecret>",
    "https://127.0.0.1:41234/id/00D5e000000AbCdEAF/0055e000000XyZ1AAK",
])
def test_scrubbing_leaves_nothing_token_like(raw: str) -> None:
    text = scrub_text(raw)
    assert not [what for what, p in TOKENISH.items() if p.search(text)], text
    assert "00D5e000000AbCd" not in text


def test_the_login_ip_range_fix_sends_a_profile_with_only_full_name_and_login_ip_ranges() -> None:
    """A Profile deploy overlays (platform-truth U3): the pinned write carries nothing else."""
    import yaml

    data = yaml.safe_load((CASSETTES / "profile.login_ip_ranges" / "apply.yaml").read_text())
    bodies = [str(i["request"]["body"]) for i in data["interactions"]
              if "upsertMetadata" in str(i["request"]["body"])]
    assert len(bodies) == 1
    profile = re.search(r'xsi:type="ns0:Profile">(.*)</ns0:metadata>', bodies[0])
    assert profile is not None
    top = set(re.findall(r"<ns0:(\w+)>", re.sub(r"<ns0:loginIpRanges>.*?</ns0:loginIpRanges>",
                                                "<ns0:loginIpRanges>", profile.group(1))))
    assert top == {"fullName", "loginIpRanges"}
