"""Cause C12: a snapshot of a working org pins it; a later change shows as drift and reverts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cliharness import run

from remediate import playbook as playbooks
from remediate.orgs import sandbox_state_path
from remediate.sandbox import persist

pytestmark = pytest.mark.e2e
ORG = "sandbox:healthy"


def test_snapshot_writes_a_valid_playbook_of_every_bound_step(tmp_path: Path) -> None:
    out = tmp_path / "baseline.yaml"
    result = run("snapshot", "--org", ORG, "--out", str(out))
    assert result.code == 0, result.err
    loaded = playbooks.load(out)
    assert len(loaded.model.steps) == 20
    assert {s.cause for s in loaded.model.steps} == {"C12"}
    data = yaml.safe_load(out.read_text())
    relax = next(s for s in data["steps"] if s["kind"] == "app.ip_relaxation")
    assert relax["with"] == {"app": "Workato", "type": "connected_app", "policy": "ENFORCE"}


def test_unintended_change_after_a_snapshot_is_c12_drift_and_apply_reverts_it(
        tmp_path: Path) -> None:
    out = tmp_path / "baseline.yaml"
    assert run("snapshot", "--org", ORG, "--out", str(out)).code == 0
    assert run("audit", "--org", ORG, "--playbook", str(out)).code == 0

    # someone relaxes Workato's IP policy by hand
    path = sandbox_state_path("healthy")
    org, extra = persist.load(path)
    org.metadata["ConnectedApp"]["Workato"]["oauthPolicy"]["ipRelaxation"] = "BYPASS"
    persist.save(path, org, extra)

    audit = run("audit", "--org", ORG, "--playbook", str(out), "--format", "json")
    assert audit.code == 2
    drift = [f for f in audit.json()["findings"] if f["status"] != "ok"]
    assert [(f["cause"], f["kind"]) for f in drift] == [("C12", "app.ip_relaxation")]
    assert drift[0]["changes"][0]["before"] == "BYPASS"

    assert run("apply", "--org", ORG, "--playbook", str(out), "--yes").code == 0
    assert run("audit", "--org", ORG, "--playbook", str(out)).code == 0
    assert run("audit", "--org", ORG).code == 0


def test_playbook_that_is_neither_bound_nor_a_file_is_refused() -> None:
    result = run("audit", "--org", ORG, "--playbook", "nope")
    assert result.code == 64
    assert "not bound to this org" in result.err
