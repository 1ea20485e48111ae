"""Shared fixtures: sandbox orgs built from scenarios, and clients wired to them in process."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from simple_salesforce import Salesforce

from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import attach, session_for
from remediate.sandbox.app import Sandbox
from remediate.sandbox.state import Org

ADMIN = "admin@acme.example.com"


def make_sandbox(name: str = "healthy") -> Sandbox:
    return Sandbox([scenarios.build_org(scenarios.load(name))])


@pytest.fixture
def sandbox() -> Sandbox:
    """The healthy scenario, one org, no latency, no faults."""
    return make_sandbox("healthy")


@pytest.fixture
def sandbox_for() -> Callable[[str], Sandbox]:
    return make_sandbox


@pytest.fixture
def org(sandbox: Sandbox) -> Org:
    return sandbox.org


@pytest.fixture
def http(sandbox: Sandbox) -> requests.Session:
    """A plain requests session whose Salesforce hosts are answered by the sandbox."""
    return session_for(sandbox)


def admin_token(org: Org, username: str = ADMIN) -> str:
    """An access token minted directly in the org (no OAuth round trip)."""
    user = org.user_by_username(username)
    assert user is not None
    return org.new_session(user["Id"], None, ("api", "refresh_token"), "test").token


@pytest.fixture
def admin_sf(sandbox: Sandbox, org: Org) -> Salesforce:
    """Unmodified simple-salesforce on an admin session, through the in-process adapter."""
    sf = Salesforce(session_id=admin_token(org), instance_url=org.my_domain_url,
                    session=session_for(sandbox))
    return attach(sf, sandbox)


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Built-in sandbox orgs and the journal live in the user's cache/state dirs: never touch
    the real ones from a test."""
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
