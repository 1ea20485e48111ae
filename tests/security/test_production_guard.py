"""The production guard: writing to an org whose Organization.IsSandbox is false needs the org
marked ``production = true`` in remediate.toml, or ``--allow-production``; enforce respects the
same mark (and has no flag). A configured org is reached over HTTPS, as a real one would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orgstate as st
import pytest
from cliharness import lab_config, run

from remediate import engine
from remediate.errors import ProductionGuard
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, str, str]]:
    """The c1 scenario (a production org: IsSandbox false) over HTTPS: (sandbox, url, CA)."""
    st.fast_setup(monkeypatch)
    sandbox = Sandbox([scenarios.build_org(scenarios.load("c1-client-credentials-off"))])
    admin = sandbox.org.user_by_username("admin@acme.example.com")
    assert admin is not None and not sandbox.org.is_sandbox
    monkeypatch.setenv("LAB_TOKEN", sandbox.org.new_session(admin["Id"], None, ("api",),
                                                            "test").token)
    with serve_in_thread(sandbox) as srv:
        yield sandbox, srv.url, str(srv.ca_bundle)


def config(tmp_path: Path, url: str, ca: str, mark: str = "") -> Path:
    return lab_config(tmp_path, url, ca, org_extra=mark, tail="""
[enforce.orgs.lab]
auto_approve_kinds = ["app.client_credentials"]
""")


def test_apply_to_an_unmarked_production_org_is_refused_with_exit_3_and_nothing_written(
        tmp_path: Path, lab: tuple[Sandbox, str, str]) -> None:
    sandbox, url, ca = lab
    result = run("--config", str(config(tmp_path, url, ca)), "apply", "--org", "lab", "--yes")
    assert result.code == 3, result.err
    assert "production org" in result.err and "--allow-production" in result.err
    assert sandbox.writes == 0


def test_allow_production_flag_lets_apply_write(tmp_path: Path,
                                                lab: tuple[Sandbox, str, str]) -> None:
    sandbox, url, ca = lab
    result = run("--config", str(config(tmp_path, url, ca)), "apply", "--org", "lab", "--yes",
                 "--allow-production")
    assert result.code == 0, result.err
    assert sandbox.writes > 0


def test_an_org_marked_production_in_the_config_is_applied_without_the_flag(
        tmp_path: Path, lab: tuple[Sandbox, str, str]) -> None:
    sandbox, url, ca = lab
    cfg = config(tmp_path, url, ca, mark="production = true")
    result = run("--config", str(cfg), "apply", "--org", "lab", "--yes")
    assert result.code == 0, result.err
    assert sandbox.writes > 0


def test_enforce_refuses_an_unmarked_production_org_even_when_its_policy_approves(
        tmp_path: Path, lab: tuple[Sandbox, str, str]) -> None:
    sandbox, url, ca = lab
    result = run("--config", str(config(tmp_path, url, ca)), "enforce", "--org", "lab")
    assert result.code == 3, result.out + result.err
    assert sandbox.writes == 0
    # the message names only what enforce has: the config mark, not apply's flag
    assert "mark it 'production = true' there" in result.out
    assert "--allow-production" not in result.out + result.err
    marked = config(tmp_path, url, ca, mark="production = true")
    assert run("--config", str(marked), "enforce", "--org", "lab").code == 0
    assert sandbox.writes > 0


def test_the_guard_passes_a_sandbox_org_and_builtin_orgs_carry_the_mark() -> None:
    spec, sandbox = st.demo_sandbox()
    handle = st.open_demo(spec, sandbox)
    org = engine.assess(handle).org
    assert not org.is_sandbox and handle.config.production  # the demo org: marked
    engine.guard_production(handle, org, allow_production=False)
    handle.config = handle.config.model_copy(update={"production": False})
    with pytest.raises(ProductionGuard, match="IsSandbox"):
        engine.guard_production(handle, org, allow_production=False)
    engine.guard_production(handle, org, allow_production=True)
    engine.guard_production(handle, org.__class__(**{**org.__dict__, "is_sandbox": True}),
                            allow_production=False)
