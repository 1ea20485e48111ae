"""The shipped scenarios: every one loads and builds, and each cause scenario says what it is."""

from __future__ import annotations

import re

import pytest

from remediate.sandbox import scenario as scenarios

DESCRIPTIONS = scenarios.available()  # loads every scenario once
SHIPPED = sorted(DESCRIPTIONS)
CAUSE_SCENARIOS = [n for n in SHIPPED if re.match(r"^(eca-)?c\d+-", n)]


def test_available_lists_healthy_every_cause_and_the_demo() -> None:
    expected = {f"c{i}" for i in (*range(1, 12), 13, 14)}
    prefixes = {n.split("-")[0] for n in SHIPPED if re.match(r"^c\d+-", n)}
    assert prefixes == expected
    assert {"healthy", "demo", "eca-healthy", "eca-c1-client-credentials-off"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads_and_builds_an_org(name: str) -> None:
    spec = scenarios.load(name)
    org = scenarios.build_org(spec)
    assert spec.name == name
    assert org.user_by_username("admin@acme.example.com") is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_available_gives_a_one_line_description(name: str) -> None:
    description = DESCRIPTIONS[name]
    assert description.strip() and "\n" not in description


@pytest.mark.parametrize("name", CAUSE_SCENARIOS)
def test_cause_scenario_names_exactly_its_cause(name: str) -> None:
    number = re.search(r"c(\d+)-", name)
    assert number is not None
    spec = scenarios.load(name)
    assert spec.causes == [f"C{number.group(1)}"]
    assert spec.description.startswith(f"C{number.group(1)}")
    assert spec.extends in ("healthy", "eca-healthy")


def test_demo_seeds_several_causes_across_both_integrations() -> None:
    spec = scenarios.load("demo")
    assert set(spec.causes) == {"C1", "C6", "C7", "C10", "C11"}
    org = scenarios.build_org(spec)
    sites = org.metadata["RemoteSiteSetting"]
    assert "https://usa238.salesforce.com" in {s["url"] for s in sites.values()}


def test_healthy_names_no_cause() -> None:
    assert scenarios.load("healthy").causes == []
    assert scenarios.load("eca-healthy").causes == []


def test_eca_healthy_replaces_the_copilot_connected_app_with_an_external_client_app() -> None:
    org = scenarios.build_org(scenarios.load("eca-healthy"))
    assert "Copilot_for_Sales" not in org.metadata["ConnectedApp"]
    assert "Copilot_for_Sales" in org.metadata["ExternalClientApplication"]


def test_wrong_login_url_scenario_points_stored_urls_at_the_old_instance() -> None:
    spec = scenarios.load("c10-wrong-login-url")
    org = scenarios.build_org(spec)
    assert org.metadata["NamedCredential"]["Acme_Self"]["endpoint"] == \
        f"https://{org.instance_host}"
    assert org.metadata["RemoteSiteSetting"]["Acme_My_Domain"]["url"] == \
        f"https://{org.instance_host}"
    assert spec.integration("copilot-for-sales").login_url == "https://login.salesforce.com"


def test_a_renamed_fleet_org_keeps_its_self_urls_on_its_own_my_domain() -> None:
    org = scenarios.build_org(scenarios.load("healthy"), pod=7, my_domain="org7")
    assert org.metadata["RemoteSiteSetting"]["Acme_My_Domain"]["url"] == \
        "https://org7.my.salesforce.com"
    assert org.metadata["NamedCredential"]["Acme_Self"]["endpoint"] == \
        "https://org7.my.salesforce.com"
