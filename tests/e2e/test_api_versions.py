"""remediate talks to each org at the version it negotiates from GET /services/data/ (or the one
``api_version`` pins), and a step that needs a newer field than the org has says so in one line.
Through the real client stack (simple-salesforce, zeep, requests) against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from cliharness import run

from remediate import builtin, engine, orgs
from remediate.errors import ConfigError
from remediate.journal import Journal
from remediate.plan import Approval
from remediate.salesforce.versions import VersionTooLow, negotiate
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.settings import OrgConfig


def _handle(name: str, max_api_version: str | None = None) -> orgs.OrgHandle:
    spec = scenarios.load(name)
    org = scenarios.build_org(spec)
    org.max_api_version = max_api_version
    return builtin.open_on_sandbox(f"sandbox:{name}", spec, Sandbox([org]))


def _paths(handle: orgs.OrgHandle) -> list[str]:
    assert handle.sandbox is not None
    return [r.path for r in handle.sandbox.requests]


@pytest.mark.parametrize(("org_max", "expected"), [(None, "67.0"), ("62.0", "62.0"),
                                                   ("59.0", "59.0")])
def test_the_gateway_talks_at_the_highest_version_the_org_lists(org_max: str | None,
                                                                expected: str) -> None:
    handle = _handle("healthy", org_max)
    engine.assess(handle)
    assert handle.gateway.version == expected
    composite = [p for p in _paths(handle) if p.endswith("/composite")]
    assert composite == [f"/services/data/v{expected}/composite"]


def test_a_version_above_the_newest_remediate_knows_is_not_used() -> None:
    listed = [{"version": v} for v in ("58.0", "67.0", "70.0")]
    assert negotiate(listed) == "67.0"
    assert negotiate([{"version": "nonsense"}]) is None


def test_eca_steps_converge_at_the_negotiated_version(tmp_path: Path) -> None:
    handle = _handle("eca-c1-client-credentials-off")
    assessment = engine.assess(handle)
    assert handle.gateway.version == "67.0"
    drifting = [f for f in assessment.findings if f.status != "ok"]
    assert drifting and {f.cause for f in drifting} == {"C1"}
    engine.apply(handle, assessment, Approval(by="test", how="flag", at="2026-01-01T00:00:00+00:00"),
                 Journal(tmp_path / "journal.jsonl"))
    verified = engine.verify(handle)
    assert [f for f in verified.assessment.findings if f.status != "ok"] == []
    assert all(t.ok for _, t in verified.tokens)


def test_an_org_that_lists_only_up_to_59_gets_one_error_naming_the_eca_field() -> None:
    handle = _handle("eca-healthy", "59.0")
    try:
        assessment = engine.assess(handle)
    except VersionTooLow as exc:
        message = str(exc)
    else:  # once the engine reports a step it could not check as a finding (issue 11)
        message = " ".join(str(vars(f)) for f in assessment.findings if f.status == "unknown")
    assert "isClientCredentialsFlowEnabled needs Salesforce API 60.0" in message
    assert "talked to at 59.0" in message
    assert "copilot" in message.lower()  # the playbook step it comes from


def test_a_pinned_api_version_is_used_without_asking_the_org() -> None:
    handle = _handle("healthy")
    pinned = orgs.Gateway(handle.gateway._creds, session=handle.gateway._session, version="61.0")
    pinned.fetch([])
    pinned.sf  # noqa: B018  (sign in)
    assert pinned.version == "61.0"
    assert "/services/data/" not in _paths(handle)


def test_a_malformed_pinned_api_version_is_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"org 'x': api_version '6x' is not a version"):
        orgs.versions.check_pin("6x", "org 'x'")
    with pytest.raises(ConfigError, match=r"outside 31.0..67.0"):
        orgs.versions.check_pin("99.0", "org 'x'")
    assert OrgConfig(login_url="https://a.my.salesforce.com", auth="jwt").api_version is None


def test_audit_through_the_cli_reads_at_the_negotiated_version() -> None:
    result = run("audit", "--org", "sandbox:eca-healthy")
    assert result.code == 0, result.out + result.err
