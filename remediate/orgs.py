"""Turning ``--org NAME`` into a signed-in gateway, bound playbook steps and verify logins.

Configured orgs come from remediate.toml. Built-in orgs (``demo``, ``sandbox:<scenario>``) need
no configuration: remediate.builtin opens them, and is the only module that knows the sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from remediate import playbook as playbooks
from remediate.errors import ConfigError
from remediate.playbook import BoundStep
from remediate.salesforce import versions
from remediate.salesforce.gateway import Credentials, Gateway, IntegrationLogin
from remediate.settings import OrgConfig, Settings, secret_from_env


@dataclass
class OrgHandle:
    name: str
    config: OrgConfig
    gateway: Gateway
    steps: list[BoundStep]
    digest: str
    logins: list[IntegrationLogin] = field(default_factory=list)
    sandbox: Any = None  # the emulator behind a built-in org (tests inject faults on it)
    state_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: integrations bound in [orgs.NAME.verify] whose credentials are not available, with why:
    #: only ``verify`` needs them, and it reports these as "not tried"
    not_tried: dict[str, str] = field(default_factory=dict)
    on_close: Callable[[], None] | None = None  # a built-in org saves its state here

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()


def open_org(name: str, settings: Settings, *, only: list[str] | None = None,
             config_dir: Path | None = None, in_flight: int | None = None) -> OrgHandle:
    """``in_flight`` (``--in-flight``) beats the org's ``in_flight``, which beats the
    top-level one: requests of one org in flight at once (issue 17, point 6)."""
    from remediate import builtin

    if builtin.is_builtin(name):
        return builtin.open_builtin(name, only, in_flight=in_flight or settings.in_flight)
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
                      timeout=config.timeout_s, org_label=f"org {name!r}",
                      parallel=in_flight or config.in_flight or settings.in_flight)
    logins: list[IntegrationLogin] = []
    not_tried: dict[str, str] = {}
    for integration, v in config.verify.items():
        try:  # audit and plan never need an integration's own credentials
            logins.append(_login(name, integration, v))
        except ConfigError as err:
            not_tried[integration] = err.message
    return OrgHandle(name, config, gateway, steps, digest, logins, not_tried=not_tried)


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
    raise ConfigError(f"{what}: unknown auth {c.auth!r}")


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
    def sf_json(*args: str) -> Any:
        done = subprocess.run([exe, *args, "--target-org", str(c.sf_alias), "--json"],
                              capture_output=True, text=True, timeout=120, check=False)
        return json.loads(done.stdout)["result"]

    try:
        result = sf_json("org", "display")
        token = result.get("accessToken")
        if not isinstance(token, str) or not token or token.startswith("[REDACTED]"):
            # sf 2.1xx hides the token in `org display`; `org auth show-access-token` (with
            # --json, no prompt) is the command it names for reading it.
            token = sf_json("org", "auth", "show-access-token")["accessToken"]
        return Credentials("access_token", c.login_url, access_token=token,
                           instance_url=str(result["instanceUrl"]).rstrip("/"))
    except (ValueError, KeyError, TypeError, AttributeError, subprocess.TimeoutExpired):
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
