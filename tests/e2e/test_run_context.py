"""One invocation's state (root options, settings, JSON envelope) belongs to that invocation
(remediate.runcontext): nothing of one run is seen by the next, in process or through app()."""

from __future__ import annotations

from pathlib import Path

import pytest
from cliharness import run
from typer.testing import CliRunner

from remediate import envelope, runcontext
from remediate.cli import app
from remediate.settings import Settings, load_settings


def _empty_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text('default_org = "from-file"\n', encoding="utf-8")
    path.chmod(0o600)
    return path


def test_a_run_leaves_no_run_context_and_no_json_mode_behind(tmp_path: Path) -> None:
    done = run("--json", "--config", str(_empty_config(tmp_path, "a.toml")), "enforce", "--all")
    assert done.code == 64 and done.envelope()["errors"], done.out
    assert runcontext.active() is None
    assert envelope.active() is False


def test_the_config_of_one_in_process_run_is_not_read_by_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./remediate.toml here
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    first = run("--config", str(_empty_config(tmp_path, "a.toml")), "enforce", "--all")
    assert first.code == 64 and "a.toml defines no [orgs.<name>]" in first.err, first.err
    second = run("enforce", "--all")
    assert second.code == 64 and "no configuration file" in second.err, second.err


def test_app_called_without_main_gets_a_run_of_its_own_each_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """typer's CliRunner calls app() directly: the root callback starts the run and the
    command's end closes it, so a second invocation does not see the first's --config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    first = CliRunner().invoke(app, ["--config", str(_empty_config(tmp_path, "b.toml")),
                                     "enforce", "--all"])
    assert "b.toml defines no [orgs.<name>]" in str(first.exception or first.output)
    assert runcontext.active() is None
    second = CliRunner().invoke(app, ["enforce", "--all"])
    assert "no configuration file" in str(second.exception or second.output)


def test_loading_a_config_file_leaves_no_file_for_later_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    monkeypatch.delenv("REMEDIATE_DEFAULT_ORG", raising=False)
    loaded, _ = load_settings(_empty_config(tmp_path, "c.toml"))
    assert loaded.default_org == "from-file"
    assert isinstance(loaded, Settings)
    assert Settings().default_org is None
    assert load_settings(None)[0].default_org is None
