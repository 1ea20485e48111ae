"""rollback shows what the org holds now (re-read) against what it will write, and marks
removals as removals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliharness import run

from remediate.builtin import sandbox_state_path
from remediate.sandbox import persist

pytestmark = pytest.mark.e2e
KINDS = ["user.permission_set", "user.license", "user.api_enabled", "profile.login_ip_ranges",
         "app.client_credentials", "org.stored_urls"]


def test_rollback_shows_the_org_now_against_what_it_writes_and_marks_removals(
        tmp_path: Path) -> None:
    cfg = tmp_path / "remediate.toml"
    cfg.write_text(f"[enforce.orgs.demo]\nauto_approve_kinds = {json.dumps(KINDS)}\n")
    enforced = run("--config", str(cfg), "enforce", "--org", "demo", "--format", "json")
    assert enforced.code in (0, 2), enforced.err
    run_id = enforced.json()["orgs"][0]["run_id"]

    # someone adds another login IP range after the run: the re-read must show it
    path = sandbox_state_path("demo")
    org, extra = persist.load(path)
    profile = org.profile_by_name("Workato Integration")
    assert profile is not None
    org.insert("LoginIpRange", {"ProfileId": profile["Id"], "StartAddress": "198.51.100.0",
                                "EndAddress": "198.51.100.9"})
    persist.save(path, org, extra)

    shown = run("rollback", run_id)  # no terminal to approve on: nothing written
    assert shown.code == 3
    assert "what the org holds now (re-read) -> what rollback will write" in shown.out
    assert "~ ConnectedApp Copilot_for_Sales: oauthConfig.isClientCredentialEnabled: " \
           "true -> false" in shown.out
    [ranges] = [line for line in shown.out.splitlines()
                if "Profile Workato Integration: loginIpRanges" in line]
    assert ranges.lstrip().startswith("- REMOVE ")
    now, after = ranges.split("]: [", 1)[1].split(" -> ")
    assert "198.51.100.0" in now and "203.0.113.0" in now  # re-read, not the journal
    assert "198.51.100.0" in after and "203.0.113.0" not in after
    assert "- REMOVE User copilot.integration@acme.example.com: permission set " \
           "Copilot_for_Sales_Integration: delete row " in shown.out
