"""Opt-in: remediate against a real Salesforce org (Developer Edition or sandbox).

Skipped unless REMEDIATE_LIVE_ORG names an org in a remediate.toml (REMEDIATE_LIVE_CONFIG,
default ./remediate.toml). Read-only by default: doctor, the platform probes, a full audit.
With REMEDIATE_LIVE_APPLY=1, REMEDIATE_LIVE_USER and REMEDIATE_LIVE_PERMISSION_SET, and only
when the org's Organization.IsSandbox is true, it also assigns that (throwaway) permission set
to that user through apply and removes it again through rollback. README, "Testing against a
real org", says how to run it and how to record cassettes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.e2e.cliharness import Result, run

ORG = os.environ.get("REMEDIATE_LIVE_ORG", "")
CONFIG = os.environ.get("REMEDIATE_LIVE_CONFIG", "remediate.toml")
APPLY = os.environ.get("REMEDIATE_LIVE_APPLY") == "1"
SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "doctor.schema.json").read_text())

if not ORG:  # one line in the summary (pytest -rs; .ci/run passes it), not one per test
    pytest.skip("live org tests: set REMEDIATE_LIVE_ORG (and REMEDIATE_LIVE_CONFIG) to run them "
                "against a real org (README, 'Testing against a real org')",
                allow_module_level=True)

pytestmark = pytest.mark.live
CASSETTES = os.environ.get("REMEDIATE_LIVE_CASSETTES", "")


@pytest.fixture(autouse=True)
def _cassette(request: pytest.FixtureRequest) -> Iterator[None]:
    """With REMEDIATE_LIVE_CASSETTES=DIR, record each test's traffic to DIR/<test>.yaml through
    the cassettes' scrubber (tests/cassette/vcrkit.py), then check that no secret the
    configuration names (every *_env variable's value) reached the file."""
    if not CASSETTES:
        yield
        return
    from tests.cassette.vcrkit import make_vcr

    path = Path(CASSETTES) / f"{request.node.name}.yaml"
    path.unlink(missing_ok=True)
    with make_vcr().use_cassette(str(path), record_mode="all"):
        yield
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for secret in _configured_secrets():
        assert secret not in text, f"a configured secret reached {path}"


def _configured_secrets() -> list[str]:
    import tomllib

    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).endswith("_env") and isinstance(value, str):
                    secret = os.environ.get(value, "")
                    if len(secret) >= 8:
                        found.append(secret)
                else:
                    walk(value)

    walk(tomllib.loads(Path(CONFIG).read_text(encoding="utf-8")))
    return found


def cli(*args: str) -> Result:
    return run("--config", str(Path(CONFIG).resolve()), *args)


def _doctor() -> dict[str, Any]:
    result = cli("doctor", "--org", ORG, "--format", "json")
    assert result.code in (0, 2), f"doctor could not sign in: {result.out}{result.err}"
    data: dict[str, Any] = result.json()
    jsonschema.validate(data, SCHEMA)
    return data


def test_live_doctor_finds_everything_remediate_needs() -> None:
    data = _doctor()
    assert data["sign_in"]["ok"]
    assert data["missing"] == [], "\n".join(data["missing"])


def test_live_probes_each_get_an_answer_from_the_org() -> None:
    data = _doctor()
    for probe in data["probes"]:
        print(f"{probe['fact'] or '-'} {probe['id']}: {probe['verdict']}: "
              f"{probe['answer']}")
        assert not probe["answer"].startswith("could not read"), probe


def test_live_full_audit_reads_every_bound_step() -> None:
    result = cli("audit", "--org", ORG, "--format", "json")
    assert result.code in (0, 2), result.err
    print(result.out)


def _is_sandbox() -> bool:
    from remediate.orgs import open_org
    from remediate.settings import load_settings

    settings, _ = load_settings(Path(CONFIG).resolve())
    handle = open_org(ORG, settings, config_dir=Path(CONFIG).resolve().parent)
    try:
        rows = handle.gateway.query("SELECT IsSandbox FROM Organization")
    finally:
        handle.close()
    return bool(rows and rows[0].get("IsSandbox") is True)


@pytest.mark.skipif(not APPLY, reason="live apply: set REMEDIATE_LIVE_APPLY=1, "
                                      "REMEDIATE_LIVE_USER and REMEDIATE_LIVE_PERMISSION_SET")
def test_live_apply_then_rollback_of_a_throwaway_permission_set_assignment(
        tmp_path: Path) -> None:
    user = os.environ.get("REMEDIATE_LIVE_USER", "")
    permission_set = os.environ.get("REMEDIATE_LIVE_PERMISSION_SET", "")
    if not (user and permission_set):
        pytest.fail("REMEDIATE_LIVE_APPLY=1 needs REMEDIATE_LIVE_USER and "
                    "REMEDIATE_LIVE_PERMISSION_SET")
    if not _is_sandbox():
        pytest.skip("live apply: the org's Organization.IsSandbox is not true; refusing to write")
    playbook = tmp_path / "live-throwaway.yaml"
    playbook.write_text(f"""apiVersion: remediate/v1
kind: Playbook
name: live-throwaway
integration: remediate live test
description: Assign a throwaway permission set, then roll it back.
steps:
  - id: throwaway-assignment
    kind: user.permission_set
    with: {{username: "{user}", permission_set: "{permission_set}"}}
""")
    before = cli("audit", "--org", ORG, "--playbook", str(playbook))
    if before.code == 0:
        pytest.skip(f"{user} already has {permission_set}: nothing throwaway to assign")
    assert before.code == 2, before.err
    applied = cli("apply", "--org", ORG, "--playbook", str(playbook), "--yes")
    assert applied.code == 0, applied.out + applied.err
    assert cli("audit", "--org", ORG, "--playbook", str(playbook)).code == 0
    runs = json.loads(cli("history", "--org", ORG, "--format", "json").out)
    run_id = runs[-1]["run_id"]
    rolled = cli("rollback", run_id, "--yes")
    assert rolled.code == 0, rolled.out + rolled.err
    assert cli("audit", "--org", ORG, "--playbook", str(playbook)).code == 2
