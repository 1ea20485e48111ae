"""Configuration: remediate.toml, overridden by REMEDIATE_* environment variables.

::

    journal = "~/.local/state/remediate/journal.jsonl"   # optional

    [orgs.prod]
    login_url = "https://acme.my.salesforce.com"
    auth = "jwt"                      # sf_cli | jwt | client_credentials | access_token
    username = "remediate@acme.com"   # jwt
    client_id = "3MVG9..."            # jwt, client_credentials (the admin app's consumer key)
    private_key_file = "~/.keys/remediate.pem"          # jwt
    client_secret_env = "ACME_REMEDIATE_SECRET"         # client_credentials
    access_token_env = "ACME_TOKEN"                     # access_token (+ instance_url)
    sf_alias = "acme-prod"                              # sf_cli
    ca_bundle = "/etc/ssl/acme-ca.pem"                  # optional
    production = true          # allow apply to a production org (IsSandbox = false)

    [orgs.prod.playbooks.copilot-for-sales]            # playbook name or path -> variables
    integration_user = "copilot@acme.com"

    [orgs.prod.verify.copilot-for-sales]               # the integration's own credentials
    flow = "client_credentials"
    client_id_env = "COPILOT_CLIENT_ID"
    client_secret_env = "COPILOT_CLIENT_SECRET"

Secrets never sit in this file: it names the environment variables (or the key file, or the
Salesforce CLI alias) that hold them. Environment variables override the file with
``REMEDIATE_`` and ``__`` between levels: ``REMEDIATE_ORGS__PROD__LOGIN_URL=...``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from remediate import dirs
from remediate.errors import ConfigError


def state_dir() -> Path:
    """Where the journal, the locks and the kill switch live (remediate.dirs)."""
    return Path(dirs.state_dir())


def cache_dir() -> Path:
    """Where built-in orgs' state and the trimmed WSDL live (remediate.dirs)."""
    return Path(dirs.cache_dir())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VerifyLogin(_Strict):
    """Where an integration's own credentials live, for ``verify``'s token request."""

    flow: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    client_id_env: str | None = None
    client_id: str | None = None  # a consumer key is not a secret; the env form is optional
    client_secret_env: str | None = None
    username: str | None = None
    private_key_file: Path | None = None


class Webhook(_Strict):
    """Where ``enforce`` posts its notifications. A Slack webhook URL is itself a secret: name
    the environment variable that holds it (``url_env``) rather than writing it here."""

    url: str | None = None
    url_env: str | None = None
    kind: Literal["slack", "json"] = "json"
    #: Hosts a redirect from this webhook may lead to; any other redirect fails the post (a
    #: redirect re-sends the payload to the host it names).
    allow_redirect_hosts: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        from remediate.untrusted import url_problem

        problem = url_problem(self.url) if self.url is not None else None
        if problem:
            raise ValueError(f"url {problem}")
        return self


class EnforcePolicy(_Strict):
    """What ``enforce`` may change in one org without a person. The default approves nothing:
    enforce is then an audit that notifies."""

    auto_approve_steps: list[str] = Field(default_factory=list)  # "playbook/step-id"
    auto_approve_kinds: list[str] = Field(default_factory=list)  # step kinds, e.g. "user.active"
    max_changes: int = Field(10, ge=0)  # a plan with more changes than this is refused whole
    webhooks: list[Webhook] = Field(default_factory=list)


class EnforceSettings(_Strict):
    """``[enforce]``: the kill switch, the worker pool, webhooks for every org, and policies
    by org name (``[enforce.orgs."sandbox:demo"]`` works for built-in orgs too)."""

    kill_switch_file: Path | None = None  # default: <state dir>/enforce.disabled
    # Orgs at once in each process: an org waits 2-3 round trips (100-300 ms each) for about
    # 35 ms of CPU, so about 10 (at 100 ms) to 26 (at 300 ms) keep a core busy; more make each
    # org dearer (threads contending for the GIL). 16 was faster than 32 and 24 at 100 and at
    # 300 ms (ADR 0040, docs/performance.md).
    workers: int = Field(16, ge=1, le=64)
    # Processes across cores, each with ``workers`` orgs at once; None: the cores available
    # (ADR 0035).
    processes: int | None = Field(None, ge=1, le=64)
    webhooks: list[Webhook] = Field(default_factory=list)
    orgs: dict[str, EnforcePolicy] = Field(default_factory=dict)


class OrgConfig(_Strict):
    login_url: str
    auth: Literal["sf_cli", "jwt", "client_credentials", "access_token"]
    client_id: str | None = None
    client_secret_env: str | None = None
    username: str | None = None
    private_key_file: Path | None = None
    access_token_env: str | None = None
    instance_url: str | None = None
    sf_alias: str | None = None
    ca_bundle: Path | None = None
    #: None: the highest version the org lists that remediate knows (salesforce/versions.py).
    api_version: str | None = None
    timeout_s: float = 30.0
    in_flight: int | None = Field(None, ge=1, le=25)  # None: the top-level in_flight
    production: bool = False
    min_api_requests: int = Field(1000, ge=0)  # apply refuses below this DailyApiRequests left
    playbooks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    verify: dict[str, VerifyLogin] = Field(default_factory=dict)
    enforce: EnforcePolicy | None = None

    @model_validator(mode="after")
    def _checked(self) -> OrgConfig:
        """URLs and the CA bundle are checked when the configuration loads, not at run time."""
        from remediate.untrusted import url_problem

        for name in ("login_url", "instance_url"):
            value = getattr(self, name)
            problem = url_problem(value) if value is not None else None
            if problem:
                raise ValueError(f"{name} {value!r} {problem}")
        if self.auth in ("client_credentials", "jwt"):
            from remediate import hosts

            # remediate's secret goes to this host: a Salesforce partition or loopback only
            host = hosts.host_of(self.login_url)
            if not (hosts.is_salesforce_host(host) or hosts.is_loopback(host)):
                raise ValueError(f"login_url {self.login_url!r} "
                                 f"{hosts.org_host_problem(self.login_url)}")
        if self.ca_bundle is not None:
            path = Path(os.path.expanduser(str(self.ca_bundle)))
            if not path.is_file() or not os.access(path, os.R_OK):
                raise ValueError(f"ca_bundle {str(self.ca_bundle)!r} is not a readable file")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REMEDIATE_", env_nested_delimiter="__",
                                      extra="forbid")

    journal: Path | None = None
    default_org: str | None = None  # the org when --org and REMEDIATE_ORG are not given
    log_format: Literal["auto", "console", "json"] = "auto"
    # Requests one org may have in flight at once (a wave's calls; issue 17, point 6). A wave
    # of n calls costs ceil(n / in_flight) round trips; [orgs.NAME] in_flight and --in-flight
    # override it. At most 25: Salesforce's limit on concurrent long-running requests
    # (salesforce/waves.py has the source).
    in_flight: int = Field(25, ge=1, le=25)
    orgs: dict[str, OrgConfig] = Field(default_factory=dict)
    enforce: EnforceSettings = Field(default_factory=EnforceSettings)

    _toml_path: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file") is not None:  # see _reading
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)

    @property
    def journal_path(self) -> Path:
        return Path(os.path.expanduser(str(self.journal))) if self.journal else \
            state_dir() / "journal.jsonl"


def load_settings(path: Path | None) -> tuple[Settings, list[str]]:
    """Settings from ``path`` (or ./remediate.toml when present) and the environment.

    Returns the settings and warnings (a config file others can read is one).
    """
    warnings: list[str] = []
    if path is None:
        env = os.environ.get("REMEDIATE_CONFIG")
        path = Path(env) if env else Path("remediate.toml")
        if not path.exists():
            path = None
    elif not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    if path is not None:
        from remediate.inputs import read_text

        read_text(path, "configuration")  # bounded, regular, UTF-8: or refused naming the file
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH) and _mentions_secret(path):
            warnings.append(f"{path} looks like it holds a secret and is readable by other "
                            "users; keep secrets in environment variables, or chmod 600 it")
    try:
        settings = (Settings if path is None else _reading(path))()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{path or 'environment'}: {where}: {msg}") from None
    except ValueError as exc:  # TOML syntax
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for name in settings.orgs:
        if name == "demo" or name.startswith("sandbox:"):
            raise ConfigError(f"{path or 'environment'}: orgs.{name}: the org name {name!r} is "
                              "reserved for the built-in sandbox orgs (demo, sandbox:<scenario>); "
                              "give the org another name")
    return settings, warnings


def _reading(path: Path) -> type[Settings]:
    """``Settings`` that also read the TOML file ``path`` (below the environment). pydantic-settings
    takes its sources from the class, so the file is named on a subclass made for this load, not
    in module state (issue 13)."""

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    return FileSettings


def _mentions_secret(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False
    return any(word in text for word in ("secret =", "password =", "token =",
                                         "-----begin"))


def secret_from_env(name: str | None, *, what: str) -> SecretStr:
    if not name:
        raise ConfigError(f"{what}: no environment variable is named for it")
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{what}: environment variable {name} is not set")
    return SecretStr(value)
