"""The Salesforce CLI baseline of benchmarks/wholeprocess.py (benchmarks/sfcli.py, issue 17 1b).

Pure logic: the script's commands come from the bound demo playbooks (one per thing the demo
audit reads), the CLI's state stays in the run's temporary HOME, a missing CLI is a stated skip,
and a failing command stops the script naming it. A stand-in `sf` answers; the timed run with
the real CLI is the benchmark, not a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import sfcli
from benchmarks.wholeprocess import demo_bindings


def _queries(commands: list[list[str]], soql_start: str) -> list[str]:
    return [c[-1] for c in commands if c[:2] == ["data", "query"] and c[-1].startswith(soql_start)]


def test_one_cli_command_per_demo_read_built_from_demo_bindings() -> None:
    bindings, reads = demo_bindings()
    apps, unscripted = sfcli.demo_apps(bindings)
    assert unscripted == []
    assert apps == [("ConnectedApp", "Copilot_for_Sales"), ("ConnectedApp", "Workato")]
    commands = sfcli.check_commands(reads, apps)

    users = _queries(commands, "SELECT Id, Username,")
    assert [u.rsplit("Username = ", 1)[1] for u in users] == \
        [sfcli.literal(u) for u in reads["users"]]
    sets = _queries(commands, "SELECT Id, Name, Label,")
    assert [s.rsplit("Label = ", 1)[1] for s in sets] == \
        [sfcli.literal(p) for p in reads["permission_sets"]]
    licences = _queries(commands, "SELECT Id, DeveloperName,")
    assert len(licences) == len(reads["licenses"]) == 1
    profiles = _queries(commands, "SELECT Id, Name, PermissionsApiEnabled FROM Profile")
    assert [p.rsplit("Name = ", 1)[1] for p in profiles] == \
        [sfcli.literal(p) for p in reads["profiles"]]
    tooling = [c for c in commands if "--use-tooling-api" in c]
    assert [c[-1].rsplit("= ", 1)[1] for c in tooling] == [sfcli.literal("workato")]

    retrieved = [c[-1] for c in commands if c[:3] == ["project", "retrieve", "start"]]
    wanted = [f"ConnectedApp:{name}" for _, name in apps] + [
        f"{type_}:{name}" for type_, names in reads["metadata"].items() for name in names]
    assert retrieved == wanted
    assert "Profile:Workato Integration" in retrieved
    assert [c for c in commands if c[:3] == ["org", "list", "metadata"]] == \
        [["org", "list", "metadata", "--metadata-type", "ConnectedApp"]]
    # the org row, and nothing but the commands above
    assert _queries(commands, "SELECT Id, Name, IsSandbox") == [sfcli.ORG_SOQL]
    assert len(commands) == (1 + len(users) + len(sets) + len(licences) + len(profiles)
                             + len(tooling) + 1 + len(retrieved))


def test_soql_literals_escape_quotes_and_backslashes() -> None:
    assert sfcli.literal("O'Brien\\x") == "'O\\'Brien\\\\x'"


def test_missing_cli_is_a_skip_that_says_how_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_SF", raising=False)
    monkeypatch.setenv("REMEDIATE_REALCLI_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    command, why = sfcli.prepare(tmp_path, {}, {})
    assert command is None
    assert "tests/realcli/install.sh" in why
    monkeypatch.setenv("REMEDIATE_SF", str(tmp_path / "nowhere" / "sf"))
    command, why = sfcli.prepare(tmp_path, {}, {})
    assert command is None
    assert "does not exist" in why


def _fake_sf(tmp_path: Path, failing: str = "") -> Path:
    """A stand-in sf: logs its arguments and HOME, answers status 0 (or 1 for ``failing``)."""
    log = tmp_path / "calls.log"
    script = tmp_path / "bin" / "sf"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f"echo \"$HOME|$NODE_EXTRA_CA_CERTS|$SF_ACCESS_TOKEN|$SF_TARGET_ORG|$*\" >> {log}\n"
        f"case \"$*\" in *'{failing or '@never@'}'*) "
        "echo '{\"status\": 1, \"message\": \"No such component\"}'; exit 1;; esac\n"
        "echo '{\"status\": 0, \"result\": {\"totalSize\": 1, \"records\": []}}'\n")
    script.chmod(0o755)
    return script


def _plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sf: Path) -> Path:
    monkeypatch.setenv("REMEDIATE_SF", str(sf))
    monkeypatch.setenv("SF_TARGET_ORG", "someone-elses-org")
    monkeypatch.setenv("REMEDIATE_BENCH_URL", "https://127.0.0.1:1")
    monkeypatch.setenv("REMEDIATE_BENCH_TOKEN", "00Dtoken")
    monkeypatch.setenv("REMEDIATE_BENCH_CA", "/x/ca.pem")
    bindings, reads = demo_bindings()
    command, what = sfcli.prepare(tmp_path / "work", bindings, reads)
    assert command is not None
    assert "17 commands per run (1 login + 16 checks)" in what
    return Path(command[-1])


def test_script_logs_in_once_then_runs_each_check_with_its_state_in_the_temp_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    sf = _fake_sf(tmp_path)
    plan = _plan(tmp_path, monkeypatch, sf)
    home = json.loads(plan.read_text())["home"]
    assert home.startswith(str(tmp_path / "work"))
    assert sfcli.main(str(plan)) == 0
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) == 17
    assert calls[0].endswith("|org login access-token --instance-url https://127.0.0.1:1 "
                             "--no-prompt --alias bench --json")
    for call in calls:
        call_home, ca, token, target, args = call.split("|", 4)
        assert (call_home, ca, target) == (home, "/x/ca.pem", "")
        # the token only for the login, and only through the environment
        assert token == ("00Dtoken" if call is calls[0] else "")
        assert "00Dtoken" not in args
    assert all(c.endswith("--target-org bench --json") for c in calls[1:])
    assert len(capsys.readouterr().out.splitlines()) == 16


def test_a_failing_check_stops_the_script_naming_the_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(tmp_path, monkeypatch, _fake_sf(tmp_path, failing="NamedCredential:Acme_Self"))
    with pytest.raises(SystemExit) as stopped:
        sfcli.main(str(plan))
    assert ("sf project retrieve start NamedCredential:Acme_Self failed (exit 1): "
            "No such component") in str(stopped.value)
