"""enforce never reports an org clean when some of its steps could not be checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cliharness import lab_config, run

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def healthy() -> Iterator[tuple[str, str, str]]:
    sandbox = Sandbox([scenarios.build_org(scenarios.load("healthy"))])
    admin = sandbox.org.user_by_username("admin@acme.example.com")
    assert admin is not None
    token = sandbox.org.new_session(admin["Id"], None, ("api",), "test").token
    with serve_in_thread(sandbox) as srv:
        yield srv.url, token, str(srv.ca_bundle)


def test_an_org_whose_steps_could_not_be_checked_is_not_clean(
        tmp_path: Path, healthy: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    url, token, ca = healthy
    monkeypatch.setenv("I11_TOKEN", token)
    cfg = lab_config(tmp_path, url, ca, token_env="I11_TOKEN", org_extra="production = true",
                     variables={"integration_user": "copilot.integration@acme.example.com",
                                "permission_set": "No_Such_Set"})
    audit = run("--config", str(cfg), "audit", "--org", "lab", "--format", "json")
    assert audit.code == 2, audit.err
    data = audit.json()
    assert data["drift"] is False and data["clean"] is False
    assert data["summary"]["unknown"] >= 1
    result = run("--config", str(cfg), "enforce", "--org", "lab", "--format", "json")
    assert result.code == 2, result.out + result.err
    [org] = result.json()["orgs"]
    assert org["outcome"] == "pending approval"
    assert "could not check: copilot-for-sales/" in org["message"]
    assert "No_Such_Set" in org["message"]
