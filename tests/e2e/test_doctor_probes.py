"""``remediate doctor``'s probes of the sandbox's assumptions (docs/sandbox.md, ADR 0042).

Each probe runs through the CLI and the real client stack against a sandbox org that answers
the way its assumption row says (``confirmed``); where the other behaviour is cheap to
simulate, the sandbox's state layer is switched to it and the probe says ``contradicted``.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cliharness import run, writes

from remediate import doctor
from remediate.builtin import open_on_sandbox
from remediate.sandbox import metadata, objectaccess
from remediate.sandbox import scenario as scenarios
from remediate.sandbox.app import Sandbox

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((ROOT / "docs" / "doctor.schema.json").read_text())


def _doctor(org: str) -> dict[str, Any]:
    result = run("doctor", "--org", org, "--format", "json")
    assert result.code == 0, result.out + result.err
    data = result.json()
    jsonschema.validate(data, SCHEMA)
    return data


def _probe(data: dict[str, Any], probe_id: str) -> dict[str, Any]:
    return next(p for p in data["probes"] if p["id"] == probe_id)


def _in_process(scenario: str, change: Any = None) -> doctor.Report:
    """doctor on a fresh sandbox org, after ``change(org)`` switched a behaviour."""
    spec = scenarios.load(scenario)
    sandbox = Sandbox([scenarios.build_org(spec)])
    if change is not None:
        change(sandbox.org)
    return doctor.run(open_on_sandbox(f"sandbox:{scenario}", spec, sandbox))


# ---- every probe: its id, its assumption row, what remediate does ---------------------------


def test_every_assumption_probe_is_linked_from_its_row_in_the_assumptions_table() -> None:
    table = (ROOT / "docs" / "sandbox.md").read_text()
    for probe in doctor.PROBES:
        if probe.assumption:
            assert f"`remediate doctor` probe `{probe.id}`" in table, probe.id


def test_doctor_calls_only_the_sessions_public_methods() -> None:
    source = (ROOT / "remediate" / "doctor.py").read_text()
    assert not re.findall(r"\bgw\._[a-z]", source)


# ---- (1) PermissionSet upsert: overlay or replace -------------------------------------------


def test_permission_set_upsert_probe_says_it_cannot_be_settled_and_writes_nothing() -> None:
    run("audit", "--org", "demo")
    before = writes("demo")
    data = _doctor("demo")
    probe = _probe(data, "permission-set-upsert")
    assert probe["verdict"] == "open" and probe["settled"] is False
    assert "cannot be settled read-only" in probe["answer"]
    assert "sends a PermissionSet component whole" in probe["remediate"]
    assert writes("demo") == before


# ---- (2) login hours: minutes after midnight ------------------------------------------------


def test_login_hours_probe_confirms_minutes_after_midnight() -> None:
    probe = _probe(_doctor("sandbox:c16-session-policy-blocks"), "login-hours-format")
    assert probe["verdict"] == "confirmed", probe
    assert "Workato Integration: " in probe["answer"]
    assert "C16, profile login hours" in probe["assumption"]


def test_login_hours_probe_contradicted_by_clock_times(monkeypatch: pytest.MonkeyPatch) -> None:
    def clock_times(profile: Any) -> dict[str, str]:
        real = dict(profile.get("_LoginHours") or {})
        return {k: f"{int(v) // 60:02d}:00" for k, v in real.items()}

    monkeypatch.setattr(objectaccess, "login_hours", clock_times)
    probe = _probe(_doctor("sandbox:c16-session-policy-blocks"), "login-hours-format")
    assert probe["verdict"] == "contradicted", probe
    assert "'08:00'" in probe["answer"] or "'18:00'" in probe["answer"]
    assert "reports such a profile unknown" in probe["remediate"]


def test_login_hours_probe_stays_open_without_login_hours() -> None:
    probe = _probe(_doctor("demo"), "login-hours-format")
    assert probe["verdict"] == "open" and "nothing to compare" in probe["answer"]


# ---- (3) commaSeparatedPermissionSet: names or ids ------------------------------------------


def test_permission_set_form_probe_confirms_api_names() -> None:
    probe = _probe(_doctor("sandbox:eca-healthy"), "eca-permission-set-form")
    assert probe["verdict"] == "confirmed", probe
    assert probe["answer"].endswith("the list holds API names")


def test_permission_set_form_probe_contradicted_by_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    kind = metadata.KINDS["ExtlClntAppOauthConfigurablePolicies"]
    real = kind.read

    def as_ids(org: Any, name: str) -> Any:
        comp = real(org, name)
        if comp and comp.get("commaSeparatedPermissionSet"):
            comp["commaSeparatedPermissionSet"] = ",".join(
                str(org.permission_set_by_name(n.strip())["Id"])
                for n in comp["commaSeparatedPermissionSet"].split(","))
        return comp

    monkeypatch.setattr(kind, "read", as_ids)
    probe = _probe(_doctor("sandbox:eca-healthy"), "eca-permission-set-form")
    assert probe["verdict"] == "contradicted", probe
    assert "1 id(s)" in probe["answer"]


# ---- (4) the managed-component refusal ------------------------------------------------------


def test_managed_refusal_probe_confirms_the_wording_with_a_check_only_deploy() -> None:
    probe = _probe(_doctor("sandbox:managed-app-policies"), "managed-refusal")
    assert probe["verdict"] == "confirmed", probe
    assert "checkOnly deploy of ConnectedApp workato__Workato_OAuth_Connector" in \
        probe["answer"]
    assert "'Cannot modify managed object: entity=ConnectedApp" in probe["answer"]


def test_managed_refusal_probe_sends_a_validation_only_deploy_that_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from remediate.sandbox import packages

    options: list[dict[str, Any]] = []
    real = packages.deploy

    def recording(org: Any, zip_b64: str, opts: dict[str, Any]) -> Any:
        options.append(dict(opts))
        return real(org, zip_b64, opts)

    monkeypatch.setattr(packages, "deploy", recording)
    kept: list[Any] = []
    report = _in_process("managed-app-policies", lambda org: kept.append(
        (org, copy.deepcopy(org.metadata), copy.deepcopy(org.tables["ConnectedApplication"]))))
    org, metadata_before, apps_before = kept[0]
    assert [o.get("checkOnly") for o in options] == [True]
    def stored(md: dict[str, Any]) -> dict[str, Any]:  # reads add empty stores per type
        return {t: comps for t, comps in md.items() if comps}

    assert stored(org.metadata) == stored(metadata_before)
    assert org.tables["ConnectedApplication"] == apps_before
    assert report.exit_code == 0


def test_managed_refusal_probe_contradicted_by_another_wording(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "REFUSAL_MESSAGE",
                        "You cannot change a component installed from a package ({id})")
    probe = _probe(_doctor("sandbox:managed-app-policies"), "managed-refusal")
    assert probe["verdict"] == "contradicted", probe
    assert "You cannot change a component installed" in probe["answer"]


def test_managed_refusal_probe_stays_open_without_an_installed_app() -> None:
    probe = _probe(_doctor("demo"), "managed-refusal")
    assert probe["verdict"] == "open" and "nothing to validate" in probe["answer"]


# ---- (5) ConnectedApplication.Name: API name or label ---------------------------------------


def test_app_name_probe_confirms_name_holds_the_api_name() -> None:
    probe = _probe(_doctor("demo"), "connected-app-name")
    assert probe["verdict"] == "confirmed", probe
    assert "the label for 0" in probe["answer"]


def test_app_name_probe_contradicted_when_name_holds_the_label() -> None:
    def names_are_labels(org: Any) -> None:
        for full, comp in org.metadata["ConnectedApp"].items():
            row = org.connected_application(full)
            if row is not None and comp.get("label"):
                row["_ApiName"], row["Name"] = full, comp["label"]

    report = _in_process("demo", names_are_labels)
    probe = next(p for p in report.probes if p["id"] == "connected-app-name")
    assert probe["verdict"] == "contradicted", probe
    assert "the label for 2" in probe["answer"]


# ---- (6) API Access Control (ConnectedAppSettings) -----------------------------------------


def test_api_access_control_is_read_and_reported_off() -> None:
    data = _doctor("demo")
    setting = next(s for s in data["settings"] if s["setting"] == "API Access Control")
    assert setting["value"] is False and setting["source"].endswith("enableAdminApprovedAppsOnly")
    assert _probe(data, "api-access-control")["verdict"] == "confirmed"
    assert "\norg settings\n  off      API Access Control" in run("doctor", "--org", "demo").out


def test_api_access_control_on_names_cause_c13() -> None:
    def turn_on(org: Any) -> None:
        org.metadata.setdefault("ConnectedAppSettings", {})["ConnectedApp"] = {
            "fullName": "ConnectedApp", "enableAdminApprovedAppsOnly": True}

    report = _in_process("demo", turn_on)
    setting = report.settings[0]
    assert setting["value"] is True and "(C13)" in setting["detail"]
    assert report.exit_code == 0  # information about the org, not something remediate lacks


def test_api_access_control_absent_is_unknown_with_the_setup_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "CONNECTED_APP_SETTINGS_DEFAULT", {"fullName": "ConnectedApp"})
    data = _doctor("demo")
    setting = data["settings"][0]
    assert setting["value"] is None and "Setup → Quick Find → API Access Control" in \
        setting["detail"]
    assert _probe(data, "api-access-control")["verdict"] == "contradicted"


# ---- the licence and its assignments in one composite (ADR 0044; opt-in, rolled back) -------


def _state(scenario: str) -> tuple[Any, ...]:
    from remediate.builtin import sandbox_state_path
    from remediate.sandbox import persist

    org, _ = persist.load(sandbox_state_path(scenario))
    return tuple(sorted(org.tables["PermissionSetLicenseAssign"])), tuple(
        sorted(org.tables["PermissionSetAssignment"]))


def _set_reading(scenario: str, licence_in_composite: bool) -> None:
    from remediate.builtin import sandbox_state_path
    from remediate.sandbox import persist

    path = sandbox_state_path(scenario)
    org, extra = persist.load(path)
    org.licence_in_composite = licence_in_composite
    persist.save(path, org, extra)


def test_licence_composite_probe_is_not_run_without_its_flag_and_sends_no_write() -> None:
    run("audit", "--org", "demo")
    before = writes("demo")
    probe = _probe(_doctor("demo"), "licence-in-one-composite")
    assert probe["verdict"] == "open" and "--probe-writes" in probe["answer"]
    assert writes("demo") == before


@pytest.mark.parametrize(("reading", "verdict"), [(True, "confirmed"), (False, "contradicted")])
def test_licence_composite_probe_settles_the_fact_and_nothing_persists(
        reading: bool, verdict: str) -> None:
    run("audit", "--org", "demo")
    _set_reading("demo", reading)
    before = _state("demo")
    result = run("doctor", "--org", "demo", "--format", "json", "--probe-writes")
    assert result.code == 0, result.out + result.err
    data = result.json()
    jsonschema.validate(data, SCHEMA)
    probe = _probe(data, "licence-in-one-composite")
    assert probe["verdict"] == verdict, probe
    assert "nothing persisted" in probe["answer"]
    assert _state("demo") == before  # every row the composite inserted was rolled back


def test_licence_composite_probe_is_open_when_no_bound_user_lacks_a_licence() -> None:
    result = run("doctor", "--org", "sandbox:healthy", "--format", "json", "--probe-writes")
    assert result.code == 0, result.out + result.err
    probe = _probe(result.json(), "licence-in-one-composite")
    assert probe["verdict"] == "open" and "nothing to probe with" in probe["answer"]
