"""Built-in orgs: the one place the product reaches the sandbox (ADR 0074).

``demo`` is the sandbox's ``demo`` scenario and ``sandbox:<scenario>`` any shipped scenario;
each runs in process against the sandbox org emulator, with both shipped playbooks bound to the
scenario's users and apps, and its state kept in the user's cache directory between commands
(``remediate sandbox reset`` starts it over).

Everything else in the product sees an ``OrgHandle`` like any configured org's. The import
contracts in pyproject.toml ([tool.importlinter]) keep it so: no other module of the product
imports ``remediate.sandbox``. Imports of the sandbox and the client stack are made inside the
functions, so the CLI can register the ``sandbox`` commands without loading either.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    from remediate.orgs import OrgHandle
    from remediate.salesforce.gateway import Credentials, IntegrationLogin

BUILTIN_PLAYBOOKS = ("copilot-for-sales", "workato")  # bound to every built-in org
NOT_BUILTIN = "{org!r} is not a built-in sandbox org (demo or sandbox:<scenario>)"


def is_builtin(name: str) -> bool:
    return name == "demo" or name.startswith("sandbox:")


def builtin_scenario(name: str) -> str:
    """The shipped scenario a built-in org name names; anything else (a path, a name with a
    dot or a slash) is refused, so a name can never reach a file outside the cache dir."""
    scenario = "demo" if name == "demo" else name.split(":", 1)[1]
    _check_scenario(name, scenario)
    return scenario


def _check_scenario(org: str, scenario: str) -> None:
    from remediate.errors import ConfigError
    from remediate.sandbox.scenario import scenario_dir
    from remediate.untrusted import valid_scenario_name

    if valid_scenario_name(scenario) and (scenario_dir() / f"{scenario}.yaml").is_file():
        return
    known = ", ".join(sorted(p.stem for p in scenario_dir().glob("*.yaml")))
    raise ConfigError(f"org {org!r}: {scenario!r} is not a shipped scenario (known: {known}; "
                      "'remediate sandbox scenarios' lists them)")


def check_scenario(name: str) -> None:
    """Refuse a built-in org name whose scenario the sandbox does not ship (ConfigError)."""
    builtin_scenario(name)


def sandbox_state_path(scenario_name: str) -> Path:
    """Where a built-in org keeps its state: always a file directly in the cache dir."""
    from remediate.settings import cache_dir

    _check_scenario(f"sandbox:{scenario_name}", scenario_name)
    return cache_dir() / "sandbox" / f"{scenario_name}.json"


def scenarios() -> dict[str, str]:
    """The shipped scenarios: name -> one-line description."""
    from remediate.sandbox import scenario

    return scenario.available()


def sandbox_cli() -> typer.Typer:
    """The ``remediate sandbox`` command group (serve); the CLI adds the commands
    that act on built-in orgs (scenarios, reset, status, integration) to it."""
    from remediate.sandbox.cli import sandbox_app

    return sandbox_app


def _require_builtin(org: str) -> None:
    from remediate.errors import UsageError

    if not is_builtin(org):
        raise UsageError(NOT_BUILTIN.format(org=org))


def reset(org: str) -> str:
    """Forget a built-in org's saved state; returns the scenario it starts from next."""
    _require_builtin(org)
    sandbox_state_path(builtin_scenario(org)).unlink(missing_ok=True)
    return builtin_scenario(org)


def status(org: str) -> dict[str, Any]:
    """A built-in org's saved counters (requests, writes)."""
    from remediate.sandbox import persist

    _require_builtin(org)
    path = sandbox_state_path(builtin_scenario(org))
    extra = persist.load(path)[1] if path.exists() else {}
    return {"org": org, "state": str(path), "saved": path.exists(),
            "writes": extra.get("writes", 0), "requests": extra.get("requests", 0)}


def set_login_url(org: str, integration: str, login_url: str) -> None:
    """Act as the admin of the external system: the URL an integration signs in to."""
    _require_builtin(org)
    handle = open_builtin(org, None)
    handle.extra.setdefault("integrations", {}).setdefault(integration, {})["login_url"] = \
        login_url
    handle.close()


def open_builtin(name: str, only: list[str] | None, *, in_flight: int | None = None) -> OrgHandle:
    from remediate.errors import ConfigError
    from remediate.sandbox import persist
    from remediate.sandbox import scenario as scenarios
    from remediate.sandbox.app import Sandbox

    scenario_name = builtin_scenario(name)
    try:
        spec = scenarios.load(scenario_name)
    except scenarios.ScenarioError as exc:
        raise ConfigError(f"org {name!r}: {exc}") from None
    path = sandbox_state_path(scenario_name)
    extra: dict[str, Any] = {}
    if path.exists():
        try:
            org, extra = persist.load(path)
        except (ValueError, KeyError, TypeError, OSError):
            raise ConfigError(f"org {name!r}: the saved sandbox state at {path} is unreadable; "
                              f"run 'remediate sandbox reset --org {name}'") from None
    else:
        org = scenarios.build_org(spec)
    return open_on_sandbox(name, spec, Sandbox([org]), only=only, extra=extra, state_path=path,
                           in_flight=in_flight)


def open_on_sandbox(name: str, spec: Any, sandbox: Any, *, only: list[str] | None = None,
                    extra: dict[str, Any] | None = None, state_path: Path | None = None,
                    retry: Any = None, in_flight: int | None = None) -> OrgHandle:
    """A built-in org's handle on a ``Sandbox`` the caller holds (its only org, built from
    ``spec``): tests and benchmarks inject faults and read counters on it. Without
    ``state_path`` nothing is saved on close."""
    from remediate.orgs import OrgHandle, bind_playbooks
    from remediate.salesforce.gateway import Gateway, TimeoutSession
    from remediate.salesforce.waves import DEFAULT_PARALLEL
    from remediate.sandbox.adapter import mount
    from remediate.settings import OrgConfig

    org = sandbox.org
    extra = {} if extra is None else extra
    integrations = extra.setdefault("integrations", {})
    session = mount(TimeoutSession(), sandbox)
    session.trust_env = False  # answered in process: no proxy or .netrc look-ups per request
    admin = sandbox_admin(org)
    gateway = Gateway(admin, session=session, org_label=f"org {name!r}", retry=retry,
                      parallel=in_flight or DEFAULT_PARALLEL)
    gateway.install_poll_s = 0.0  # the sandbox's installs advance per read, not per second
    # signs in like a configured client-credentials org; the secret is the scenario's
    config = OrgConfig(login_url=org.my_domain_url, auth="client_credentials",
                       client_id=admin.client_id,
                       production=True,  # an emulator: marked production-allowed
                       playbooks=builtin_bindings(spec, org.my_domain_url, integrations))
    steps, digest = bind_playbooks(config.playbooks, only)
    # a built-in org's integrations are named after their playbooks: verify only the selected
    logins = sandbox_logins(spec, {s.playbook for s in steps})

    def save() -> None:
        """Keep the org's state (and its counters) for the next command."""
        from remediate.sandbox import persist

        if state_path is None:
            return
        extra["writes"] = int(extra.get("writes", 0)) + sandbox.writes
        extra["requests"] = int(extra.get("requests", 0)) + sandbox.counts["total"]
        sandbox.reset_counters()
        persist.save(state_path, sandbox.org, extra)

    return OrgHandle(name, config, gateway, steps, digest, logins, sandbox=sandbox,
                     state_path=state_path, extra=extra, on_close=save)


def sandbox_admin(org: Any) -> Credentials:
    """How remediate signs in to a sandbox org: the scenario's ``Remediate_Admin`` app, client
    credentials at the org's My Domain."""
    from remediate.salesforce.gateway import Credentials

    admin = org.metadata["ConnectedApp"]["Remediate_Admin"]["oauthConfig"]
    return Credentials("client_credentials", org.my_domain_url, client_id=admin["consumerKey"],
                       client_secret=admin["consumerSecret"])


def sandbox_logins(spec: Any, names: set[str] | None = None) -> list[IntegrationLogin]:
    """The scenario's integrations as ``verify`` signs in with them, each calling from its own
    address (the sandbox-only X-Sandbox-Client-IP header). ``names`` keeps only those."""
    from remediate.salesforce.gateway import IntegrationLogin

    return [IntegrationLogin(i.name, i.flow, i.client_id, i.client_secret, i.username,
                             i.private_key, {"X-Sandbox-Client-IP": i.source_ip})
            for i in spec.integrations if names is None or i.name in names]


def builtin_bindings(spec: Any, my_domain_url: str,
                     overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Playbook variables for a sandbox scenario (all scenarios share healthy.yaml's names)."""
    integrations = {i.name: i for i in spec.integrations}
    eca_names = {e.name for e in spec.external_client_apps}

    def login_url(integration: str) -> str:
        override = overrides.get(integration, {}).get("login_url")
        if override:
            return str(override)
        configured = integrations[integration].login_url if integration in integrations \
            else None
        return configured or my_domain_url

    copilot = {
        "integration_user": "copilot.integration@acme.example.com",
        "app_type": "external_client_app" if "Copilot_for_Sales" in eca_names
        else "connected_app",
        "login_url": login_url("copilot-for-sales"),
        "allow_reactivation": True,
    }
    workato_spec = integrations.get("workato")
    workato = {
        "integration_user": "workato.integration@acme.example.com",
        "login_url": login_url("workato"),
        "package_version_id": "04t5e000000WkAtAAK",
        "ip_ranges": [{"start": "203.0.113.0", "end": "203.0.113.255",
                       "description": "Workato"}],
        "named_credentials": [n.name for n in spec.named_credentials],
        "remote_sites": [r.name for r in spec.remote_sites],
        "allow_reactivation": True,
        # what the scenario's Workato uses (C15); the healthy one uses nothing
        "objects": list(workato_spec.objects) if workato_spec else [],
        "fields": list(workato_spec.fields) if workato_spec else [],
        "record_types": list(workato_spec.record_types) if workato_spec else [],
        "allow_login_hours_change": True,
    }
    bindings: dict[str, dict[str, Any]] = {"copilot-for-sales": copilot, "workato": workato}
    for playbook, values in (getattr(spec, "playbook_variables", None) or {}).items():
        bindings.setdefault(playbook, {}).update(values)
    return bindings


def setup_change(org: str, app: str, settings: dict[str, str]) -> list[tuple[str, Any, Any]]:
    """Act as the org's admin in Setup: change an installed (or local) connected app's
    policies on its Edit Policies page (sandbox/metadata.py, setup_change). Returns what changed."""
    from remediate.errors import UsageError
    from remediate.sandbox import metadata as managed

    _require_builtin(org)
    handle = open_builtin(org, None)
    try:
        assert handle.sandbox is not None
        changed = managed.setup_change(handle.sandbox.org, app, settings)
    except managed.SetupError as exc:
        handle.on_close = None  # nothing changed: keep the saved state as it was
        raise UsageError(f"org {org!r}: {exc}") from None
    finally:
        handle.close()
    return changed
