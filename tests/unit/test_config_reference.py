"""docs/configuration.md is generated from the settings models, and the README's examples run as
written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from remediate.config_reference import render
from remediate.settings import load_settings
from tests.e2e.cliharness import run

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_configuration_md_matches_the_settings_models() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == render() + "\n", \
        "regenerate: remediate config reference > docs/configuration.md"


def test_every_settings_key_is_in_the_reference() -> None:
    from remediate.settings import EnforcePolicy, OrgConfig, Settings, VerifyLogin

    text = render()
    for model in (Settings, OrgConfig, VerifyLogin, EnforcePolicy):
        for name in model.model_fields:
            assert f"| `{name}` |" in text


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("block", _blocks("toml"), ids=lambda b: b.split("\n", 1)[0])
def test_readme_toml_examples_load_as_written(block: str, tmp_path: Path) -> None:
    path = tmp_path / "remediate.toml"
    path.write_text(block)
    settings, _ = load_settings(path)
    assert settings.orgs


def test_readme_command_examples_run_as_written(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # what an operator has before 'enforce --all': a policy for the org it enforces
    (tmp_path / "remediate.toml").write_text('[enforce.orgs."demo"]\nmax_changes = 10\n')
    commands = [line.split("#", 1)[0].strip() for block in _blocks("sh")
                for line in block.splitlines() if line.startswith("remediate ")]
    ran = 0
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "sandbox" and args[1] == "serve":
            continue  # serves until interrupted: tests/sandbox/test_server.py runs it
        if "RUN_ID" in args:
            runs = [r for r in run("history", "--json").json() if r["changes"]]
            args = [runs[-1]["run_id"] if a == "RUN_ID" else a for a in args]
        result = run(*args)
        assert result.code in (0, 2), f"{command}: exit {result.code}: {result.err}"
        assert "Traceback" not in result.err
        ran += 1
    assert ran >= 15
