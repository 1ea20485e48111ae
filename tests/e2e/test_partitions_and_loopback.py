"""remediate signs in where Salesforce orgs live: every partition's My Domain (remediate/hosts.py,
from sfdx-core's sfdcUrl.ts) and loopback, where `remediate sandbox serve` answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cliharness import run

from remediate import hosts
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox
from remediate.sandbox.server import serve_in_thread
from remediate.settings import OrgConfig

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("url", [
    "https://acme.my.salesforce.com",
    "https://acme--dev.sandbox.my.salesforce.com",
    "https://acme.my.salesforce.mil",
    "https://acme.lightning.crmforce.mil",
    "https://acme.my.sfcrmproducts.cn",
    "https://acme.lightning.sfcrmapps.cn",
    "https://acme.my-salesforce.com",
    "https://acme.lightning.force.com",
    "https://acme.cloudforce.com",
])
def test_every_salesforce_partition_is_an_org_host(url: str) -> None:
    assert hosts.org_host_problem(url) is None
    OrgConfig(login_url=url, auth="client_credentials", client_id="k", client_secret_env="S")


@pytest.mark.parametrize("url", ["https://127.0.0.1:8443", "https://localhost:8443",
                                 "https://[::1]:8443", "http://127.0.0.1:8443"])
def test_loopback_is_an_org_host_for_a_local_emulator(url: str) -> None:
    assert hosts.org_host_problem(url) is None
    OrgConfig(login_url=url, auth="jwt", client_id="k", username="u@x.com")


def test_my_domain_hosts_of_every_partition_are_recognised() -> None:
    for host in ("acme.my.salesforce.com", "acme.my.salesforce.mil", "acme.my-salesforce.com",
                 "acme.my.sfcrmproducts.cn"):
        assert hosts.is_my_domain_host(host), host
    assert not hosts.is_my_domain_host("na85.salesforce.com")


@pytest.mark.parametrize(("url", "why"), [
    ("https://acme.example.com", "is not in a Salesforce domain"),
    ("https://salesforce.com.evil.example", "is not in a Salesforce domain"),
    ("https://evilsalesforce.com", "is not in a Salesforce domain"),
])
def test_a_host_outside_salesforce_is_refused_before_a_secret_is_sent(url: str, why: str) -> None:
    assert why in (hosts.org_host_problem(url) or "")
    with pytest.raises(ValueError, match=why):
        OrgConfig(login_url=url, auth="client_credentials", client_id="k",
                  client_secret_env="S")


def test_client_credentials_at_a_generic_login_host_is_named(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    assert "generic login host" in (hosts.org_host_problem("https://login.salesforce.com") or "")
    path = tmp_path / "remediate.toml"
    path.write_text('[orgs.lab]\nlogin_url = "https://test.salesforce.com"\n'
                    'auth = "client_credentials"\nclient_id = "k"\nclient_secret_env = "S"\n'
                    '[orgs.lab.playbooks.copilot-for-sales]\n'
                    'integration_user = "copilot.integration@acme.example.com"\n')
    monkeypatch.setenv("S", "secret-value")
    result = run("--config", str(path), "audit", "--org", "lab")
    assert result.code != 0
    assert "generic login host test.salesforce.com" in result.err
    assert "Traceback" not in result.err and "secret-value" not in result.err


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str, str, str]]:
    """c1 served over HTTPS on 127.0.0.1: (url, CA bundle, admin client id, secret)."""
    sandbox = Sandbox([scenarios.build_org(scenarios.load("c1-client-credentials-off"))])
    admin = sandbox.org.metadata["ConnectedApp"]["Remediate_Admin"]["oauthConfig"]
    with serve_in_thread(sandbox) as srv:
        yield srv.url, str(srv.ca_bundle), admin["consumerKey"], admin["consumerSecret"]


def test_client_credentials_sign_in_at_a_loopback_emulator_audits(
        tmp_path: Path, served: tuple[str, str, str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, ca, key, secret = served
    assert url.startswith("https://127.0.0.1:")
    monkeypatch.setenv("LAB_SECRET", secret)
    path = tmp_path / "remediate.toml"
    path.write_text(f'[orgs.lab]\nlogin_url = "{url}"\nauth = "client_credentials"\n'
                    f'client_id = "{key}"\nclient_secret_env = "LAB_SECRET"\nca_bundle = "{ca}"\n'
                    '[orgs.lab.playbooks.copilot-for-sales]\n'
                    'integration_user = "copilot.integration@acme.example.com"\n')
    result = run("--config", str(path), "audit", "--org", "lab")
    assert result.code == 2, result.err
    assert "DRIFT  client-credentials-on [C1]" in result.out
    assert secret not in result.out + result.err
