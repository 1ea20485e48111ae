"""Sandbox orgs for the benchmarks: the demo org, orgs with N integrations, and fleets.

Each org gets a handle like the built-in ``demo`` org's (builtin.py): the real gateway, signed in
with the client credentials flow through remediate's admin connected app, on a session whose
Salesforce hosts are answered in process by the sandbox. ``Timing`` records when each request
started and ended, to count the round trips of latency a command really cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from remediate import playbook as playbooks
from remediate.builtin import builtin_bindings, sandbox_admin, sandbox_logins
from remediate.orgs import OrgHandle, bind_playbooks
from remediate.salesforce.gateway import Gateway, IntegrationLogin, TimeoutSession
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.adapter import SandboxAdapter
from remediate.sandbox.app import LOGIN_HOSTS, Request, Response, Sandbox
from remediate.sandbox.state import Org
from remediate.settings import OrgConfig


@dataclass
class Timing:
    """Wraps ``Sandbox.handle`` and keeps (start, end) per request."""

    sandbox: Sandbox
    spans: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        inner = self.sandbox.handle

        def handle(request: Request) -> Response:
            start = time.perf_counter()
            try:
                return inner(request)
            finally:
                self.spans.append((start, time.perf_counter()))

        self.sandbox.handle = handle  # type: ignore[method-assign]

    def reset(self) -> None:
        self.spans.clear()
        self.sandbox.reset_counters()

    def round_trips(self) -> int:
        """The longest chain of requests each sent after the previous one ended: the number of
        round trips of latency the work waited for (requests in flight together count once)."""
        chain, last_end = 0, float("-inf")
        for start, end in sorted(self.spans, key=lambda s: s[1]):
            if start >= last_end:
                chain += 1
                last_end = end
        return chain


def mount_org(session: Any, sandbox: Sandbox, org: Org) -> Any:
    """Route only this org's hosts (and the login hosts) to the sandbox: requests looks its
    adapters up one by one, so a session that mounted a whole fleet's hosts would be slow."""
    adapter = SandboxAdapter(sandbox)
    for host in {org.my_domain_host, org.instance_host, *LOGIN_HOSTS}:
        session.mount(f"https://{host}/", adapter)
    return session


def handle_for(org: Org, sandbox: Sandbox, steps: list[Any], digest: str,
               logins: list[IntegrationLogin] | None = None, name: str = "bench") -> OrgHandle:
    gateway = Gateway(sandbox_admin(org), session=mount_org(TimeoutSession(), sandbox, org),
                      org_label=f"org {name!r}")
    config = OrgConfig(login_url=org.my_domain_url, auth="client_credentials")
    return OrgHandle(name, config, gateway, steps, digest, logins or [], sandbox=sandbox)


def logins_for(spec: scenarios.Scenario) -> list[IntegrationLogin]:
    return sandbox_logins(spec)


# ---- the demo org ---------------------------------------------------------------------------


def demo_sandbox() -> tuple[Sandbox, Org, scenarios.Scenario]:
    spec = scenarios.load("demo")
    org = scenarios.build_org(spec)
    return Sandbox([org]), org, spec


def demo_handle(sandbox: Sandbox, org: Org, spec: scenarios.Scenario) -> OrgHandle:
    """A new connection to the demo org (a new sign-in), as each CLI command makes."""
    steps, digest = bind_playbooks(builtin_bindings(spec, org.my_domain_url, {}), None)
    return handle_for(org, sandbox, steps, digest, logins_for(spec), name="demo")


# ---- an org with N integrations -------------------------------------------------------------


def scaled_scenario(n: int) -> scenarios.Scenario:
    """The healthy org with ``n`` Copilot-style integrations: per integration one integration
    user, one permission set (on the API integration licence) and one connected app with the
    client credentials flow, run as that user and granted through that set."""
    base = scenarios.load("healthy")
    admin_app = next(a for a in base.connected_apps if a.name == "Remediate_Admin")
    copilot_app = next(a for a in base.connected_apps if a.name == "Copilot_for_Sales")
    ps = next(p for p in base.permission_sets if p.name == "Copilot_for_Sales_Integration")
    user = next(u for u in base.users if u.username.startswith("copilot."))
    users = [u for u in base.users if not u.username.startswith(("copilot.", "workato."))]
    sets, apps = [], [admin_app]
    for i in range(1, n + 1):
        sets.append(ps.model_copy(update={"name": f"Integration_{i}_Access",
                                          "label": f"Integration {i} Access"}))
        users.append(user.model_copy(update={"username": f"integration{i}@acme.example.com",
                                             "last_name": f"Integration {i}",
                                             "permission_sets": [f"Integration_{i}_Access"]}))
        apps.append(copilot_app.model_copy(update={
            "name": f"Integration_{i}", "label": f"Integration {i}",
            "consumer_key": f"3MVG9SANDBOXintegration{i:04d}".ljust(64, "0"),
            "consumer_secret": f"sandbox-integration-secret-{i:04d}",
            "run_as": f"integration{i}@acme.example.com",
            "handler_run_as": f"integration{i}@acme.example.com",
            "permission_sets": [f"Integration_{i}_Access"]}))
    return base.model_copy(update={"name": f"scaled-{n}", "permission_sets": sets,
                                   "users": users, "connected_apps": apps, "integrations": [],
                                   "named_credentials": [], "remote_sites": [], "packages": []})


@cache
def _copilot() -> playbooks.LoadedPlaybook:
    return playbooks.load(playbooks.resolve("copilot-for-sales"))


def scaled_handle(n: int) -> tuple[OrgHandle, Sandbox]:
    spec = scaled_scenario(n)
    org = scenarios.build_org(spec)
    sandbox = Sandbox([org])
    steps = []
    for i in range(1, n + 1):
        steps.extend(playbooks.bind(_copilot(), {
            "integration_user": f"integration{i}@acme.example.com", "app": f"Integration_{i}",
            "permission_set": f"Integration_{i}_Access", "login_url": org.my_domain_url}))
    return handle_for(org, sandbox, steps, playbooks.digest(steps), name=f"scaled-{n}"), sandbox


# ---- a fleet ---------------------------------------------------------------------------------


def fleet_sandbox(count: int) -> tuple[Sandbox, list[Org], scenarios.Scenario]:
    """``count`` distinct demo orgs (own org id, My Domain and ids) in one sandbox."""
    spec = scenarios.load("demo")
    orgs = [scenarios.build_org(spec, pod=i + 1, my_domain=f"fleet{i:04d}") for i in range(count)]
    return Sandbox(orgs), orgs, spec
