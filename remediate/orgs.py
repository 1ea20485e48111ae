"""Turning ``--org NAME`` into a signed-in gateway, bound playbook steps and verify logins.

Configured orgs come from remediate.toml. Built-in orgs need no configuration: ``demo`` is the
sandbox's ``demo`` scenario, and ``sandbox:<scenario>`` any shipped scenario; each runs in
process against the sandbox org emulator, with both shipped playbooks bound to the scenario's
users and apps, and its state kept in the user's cache directory between commands
(``remediate sandbox reset`` starts it over).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediate import playbook as playbooks
from remediate.errors import ConfigError
from remediate.playbook import BoundStep
from remediate.salesforce import versions
from remediate.salesforce.gateway import Credentials, Gateway, IntegrationLogin, TimeoutSession
from remediate.settings import OrgConfig, Settings, cache_dir, secret_from_env

BUILTIN_PLAYBOOKS = ("copilot-for-sales", "workato")


@dataclass
class OrgHandle:
    name: str
    config: OrgConfig
    gateway: Gateway
    steps: list[BoundStep]
    digest: str
    logins: list[IntegrationLogin] = field(default_factory=list)
    sandbox: Any = None  # remediate.sandbox.app.Sandbox for built-in orgs
    state_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def builtin(self) -> bool:
        return self.sandbox is not None

    def close(self) -> None:
        """Keep a built-in org's state (and its write counter) for the next command."""
        if self.sandbox is not None and self.state_path is not None:
            from remediate.sandbox import persist

            self.extra["writes"] = int(self.extra.get("writes", 0)) + self.sandbox.writes
            self.extra["requests"] = int(self.extra.get("requests", 0)) + \
                self.sandbox.counts["total"]
            self.sandbox.reset_counters()
            persist.save(self.state_path, self.sandbox.org, self.extra)


def is_builtin(name: str) -> bool:
    return name == "demo" or name.startswith("sandbox:")


def builtin_scenario(name: str) -> str:
    return "demo" if name == "demo" else name.split(":", 1)[1]


def sandbox_state_path(scenario_name: str) -> Path:
    return cache_dir() / "sandbox" / f"{scenario_name}.json"


def open_org(name: str, settings: Settings, *, only: list[str] | None = None,
             config_dir: Path | None = None) -> OrgHandle:
    if is_builtin(name):
        return _open_builtin(name, only)
    config = settings.orgs.get(name)
    if config is None:
        known = ", ".join(sorted(settings.orgs)) or "none configured"
        raise ConfigError(f"unknown org {name!r} (configured: {known}; built in: demo, "
                          "sandbox:<scenario>)")
    steps, digest = bind_playbooks(config.playbooks, only, base=config_dir)
    gateway = Gateway(_credentials(name, config), ca_bundle=str(config.ca_bundle)
                      if config.ca_bundle else None,
                      version=versions.check_pin(config.api_version, f"org {name!r}")
                      if config.api_version else None,
                      timeout=config.timeout_s, org_label=f"org {name!r}")
    logins = [_login(name, integration, v) for integration, v in config.verify.items()]
    return OrgHandle(name, config, gateway, steps, digest, logins)


def bind_playbooks(bindings: dict[str, dict[str, Any]], only: list[str] | None,
                   base: Path | None = None) -> tuple[list[BoundStep], str]:
    if not bindings:
        raise ConfigError("no playbooks are bound to this org (add [orgs.<name>.playbooks.<p>])")
    steps: list[BoundStep] = []
    selected = list(bindings)
    if only:
        # a playbook file that is not bound (a snapshot, say) runs with no variables
        missing = [p for p in only if p not in bindings and not Path(p).is_file()]
        if missing:
            raise ConfigError(f"playbook {missing[0]!r} is not bound to this org (bound: "
                              f"{', '.join(bindings)}) and is not a playbook file")
        selected = list(only)
    for ref in selected:
        loaded = playbooks.load(playbooks.resolve(ref, base))
        steps.extend(playbooks.bind(loaded, bindings.get(ref, {})))
    return steps, playbooks.digest(steps)


def _credentials(name: str, c: OrgConfig) -> Credentials:
    what = f"org {name!r}"
    if c.auth == "access_token":
        token = secret_from_env(c.access_token_env, what=f"{what}: access token")
        return Credentials("access_token", c.login_url, access_token=token.get_secret_value(),
                           instance_url=c.instance_url or c.login_url)
    if c.auth == "client_credentials":
        secret = secret_from_env(c.client_secret_env, what=f"{what}: client secret")
        if not c.client_id:
            raise ConfigError(f"{what}: client_credentials needs client_id")
        return Credentials("client_credentials", c.login_url, client_id=c.client_id,
                           client_secret=secret.get_secret_value())
    if c.auth == "jwt":
        if not (c.client_id and c.username and c.private_key_file):
            raise ConfigError(f"{what}: jwt needs client_id, username and private_key_file")
        return Credentials("jwt", c.login_url, client_id=c.client_id, username=c.username,
                           private_key=_read_key(c.private_key_file, what))
    if c.auth == "sf_cli":
        return _sf_cli(name, c)
    raise ConfigError(f"{what}: auth {c.auth!r} is only for built-in sandbox orgs")


def _read_key(path: Path, what: str) -> str:
    try:
        return Path(os.path.expanduser(str(path))).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read the private key file {path} "
                          f"({exc.strerror})") from None


def _sf_cli(name: str, c: OrgConfig) -> Credentials:
    import json
    import shutil
    import subprocess

    what = f"org {name!r}"
    if not c.sf_alias:
        raise ConfigError(f"{what}: sf_cli needs sf_alias")
    exe = shutil.which("sf")
    if exe is None:
        raise ConfigError(f"{what}: the Salesforce CLI ('sf') is not on PATH")
    done = subprocess.run([exe, "org", "display", "--target-org", c.sf_alias, "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    try:
        result = json.loads(done.stdout)["result"]
        return Credentials("access_token", c.login_url, access_token=result["accessToken"],
                           instance_url=result["instanceUrl"])
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{what}: 'sf org display --target-org {c.sf_alias}' gave no access "
                          "token; run 'sf org login' for that alias first") from None


def _login(org: str, integration: str, v: Any) -> IntegrationLogin:
    what = f"org {org!r}, verify.{integration}"
    client_id = v.client_id or (secret_from_env(v.client_id_env, what=f"{what}: client id")
                                .get_secret_value())
    secret = None
    key = None
    if v.flow == "client_credentials":
        secret = secret_from_env(v.client_secret_env, what=f"{what}: client secret") \
            .get_secret_value()
    else:
        if not (v.username and v.private_key_file):
            raise ConfigError(f"{what}: jwt_bearer needs username and private_key_file")
        key = _read_key(v.private_key_file, what)
    return IntegrationLogin(integration, v.flow, client_id, secret, v.username, key)


# ---- built-in sandbox orgs ----------------------------------------------------------------


def _open_builtin(name: str, only: list[str] | None) -> OrgHandle:
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
    return open_on_sandbox(name, spec, Sandbox([org]), only=only, extra=extra, state_path=path)


def open_on_sandbox(name: str, spec: Any, sandbox: Any, *, only: list[str] | None = None,
                    extra: dict[str, Any] | None = None, state_path: Path | None = None,
                    retry: Any = None) -> OrgHandle:
    """A built-in org's handle on a ``Sandbox`` the caller holds (its only org, built from
    ``spec``): tests and benchmarks inject faults and read counters on it. Without
    ``state_path`` nothing is saved on close."""
    from remediate.sandbox.adapter import mount

    org = sandbox.org
    extra = {} if extra is None else extra
    integrations = extra.setdefault("integrations", {})
    session = mount(TimeoutSession(), sandbox)
    session.trust_env = False  # answered in process: no proxy or .netrc look-ups per request
    gateway = Gateway(sandbox_admin(org), session=session, org_label=f"org {name!r}",
                      retry=retry)
    config = OrgConfig(login_url=org.my_domain_url, auth="sandbox", scenario=spec.name or None,
                       production=True,  # an emulator: marked production-allowed
                       playbooks=builtin_bindings(spec, org.my_domain_url, integrations))
    steps, digest = bind_playbooks(config.playbooks, only)
    return OrgHandle(name, config, gateway, steps, digest, sandbox_logins(spec), sandbox,
                     state_path, extra)


def sandbox_admin(org: Any) -> Credentials:
    """How remediate signs in to a sandbox org: the scenario's ``Remediate_Admin`` app, client
    credentials at the org's My Domain."""
    admin = org.metadata["ConnectedApp"]["Remediate_Admin"]["oauthConfig"]
    return Credentials("client_credentials", org.my_domain_url, client_id=admin["consumerKey"],
                       client_secret=admin["consumerSecret"])


def sandbox_logins(spec: Any, names: set[str] | None = None) -> list[IntegrationLogin]:
    """The scenario's integrations as ``verify`` signs in with them, each calling from its own
    address (the sandbox-only X-Sandbox-Client-IP header). ``names`` keeps only those."""
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
    workato = {
        "integration_user": "workato.integration@acme.example.com",
        "login_url": login_url("workato"),
        "package_version_id": "04t5e000000WkAtAAK",
        "ip_ranges": [{"start": "203.0.113.0", "end": "203.0.113.255",
                       "description": "Workato"}],
        "named_credentials": [n.name for n in spec.named_credentials],
        "remote_sites": [r.name for r in spec.remote_sites],
        "allow_reactivation": True,
    }
    return {"copilot-for-sales": copilot, "workato": workato}
