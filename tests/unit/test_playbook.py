"""Playbook loading, binding and schema: strict input with file, line and field in every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediate import playbook as playbooks
from remediate.errors import PlaybookError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
apiVersion: remediate/v1
kind: Playbook
name: sample
variables:
  user: {description: the integration user}
  enable: {default: true}
steps:
  - id: flow-on
    kind: app.client_credentials
    with: {app: Sample_App, enabled: "${enable}"}
  - id: run-as
    kind: app.run_as_user
    with: {app: Sample_App, username: "${user}"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_binding_keeps_the_type_of_a_whole_variable_reference(tmp_path: Path) -> None:
    steps = playbooks.bind(playbooks.load(write(tmp_path, GOOD)), {"user": "a@b.c"})
    assert steps[0].params.enabled is True  # type: ignore[attr-defined]
    assert steps[1].params.username == "a@b.c"  # type: ignore[attr-defined]
    assert steps[0].cause == "C1"


def test_embedded_variable_is_interpolated(tmp_path: Path) -> None:
    text = GOOD.replace('username: "${user}"', 'username: "int-${user}"')
    steps = playbooks.bind(playbooks.load(write(tmp_path, text)), {"user": "x@y.z"})
    assert steps[1].params.username == "int-x@y.z"  # type: ignore[attr-defined]


def test_unknown_key_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    kind: app.run_as_user", "    kind: app.run_as_user\n"
                                        "    colour: blue"))
    with pytest.raises(PlaybookError) as err:
        playbooks.load(path)
    assert str(err.value) == f"{path}:13: steps[1].colour: unknown key"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  - id: run-as", "  - id: [run-as"))
    with pytest.raises(PlaybookError, match=rf"^{path}:\d+: not valid YAML"):
        playbooks.load(path)


def test_invalid_yaml_names_the_line_and_the_problem(tmp_path: Path) -> None:
    """Parsed by libyaml, the message is still the pure-Python parser's, at the same line."""
    text = GOOD.replace("  - id: run-as", "  - id: [run-as")
    line = text.splitlines().index("  - id: [run-as") + 2  # the unclosed list ends a line later
    path = write(tmp_path, text)
    with pytest.raises(PlaybookError) as err:
        playbooks.load(path)
    assert str(err.value) == f"{path}:{line}: not valid YAML: expected ',' or ']', but got ':'"


def test_playbooks_are_parsed_by_libyaml_when_pyyaml_has_it() -> None:
    import yaml

    from remediate import playbook

    assert yaml.__with_libyaml__
    assert playbook._LOADER is yaml.CSafeLoader


def test_unknown_step_kind_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("app.run_as_user", "app.run_as"))
    with pytest.raises(PlaybookError, match=r"unknown step kind 'app.run_as' \(known: app.access"):
        playbooks.load(path)


def test_undeclared_variable_is_refused_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("${user}", "${usr}"))
    with pytest.raises(PlaybookError, match=r"steps\[1\] \(run-as\): uses \$\{usr\}"):
        playbooks.load(path)


def test_duplicate_step_ids_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("id: run-as", "id: flow-on"))
    with pytest.raises(PlaybookError, match="duplicate step id 'flow-on'"):
        playbooks.load(path)


def test_missing_variable_value_says_where_to_set_it(tmp_path: Path) -> None:
    loaded = playbooks.load(write(tmp_path, GOOD))
    with pytest.raises(PlaybookError, match=r"variable 'user' .* has no value.*remediate.toml"):
        playbooks.bind(loaded, {})


def test_variable_the_playbook_does_not_declare_is_refused(tmp_path: Path) -> None:
    loaded = playbooks.load(write(tmp_path, GOOD))
    with pytest.raises(PlaybookError, match="does not declare"):
        playbooks.bind(loaded, {"user": "a", "typo": 1})


def test_parameter_error_names_step_parameter_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(PlaybookError) as err:
        playbooks.bind(playbooks.load(path), {"user": "a", "enable": "maybe"})
    assert str(err.value).startswith(f"{path}:10: steps[0] (flow-on): with.enabled:")


def test_unsupported_api_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="unsupported apiVersion"):
        playbooks.load(write(tmp_path, GOOD.replace("remediate/v1", "remediate/v9")))


def test_digest_changes_when_a_variable_changes(tmp_path: Path) -> None:
    loaded = playbooks.load(write(tmp_path, GOOD))
    a = playbooks.digest(playbooks.bind(loaded, {"user": "a"}))
    b = playbooks.digest(playbooks.bind(loaded, {"user": "b"}))
    assert a != b
    assert a == playbooks.digest(playbooks.bind(loaded, {"user": "a"}))


def test_shipped_playbooks_load() -> None:
    for path in sorted((ROOT / "playbooks").glob("*.yaml")):
        assert playbooks.load(path).model.steps


def test_exported_json_schema_is_current() -> None:
    current = json.loads((ROOT / "docs" / "playbook.schema.json").read_text())
    assert current == playbooks.json_schema(), (
        "docs/playbook.schema.json is stale: regenerate with "
        "'remediate playbook schema > docs/playbook.schema.json'")


def test_schema_describes_every_step_kind() -> None:
    from remediate.steps.base import kinds

    assert set(playbooks.json_schema()["x-step-kinds"]) == set(kinds())


def test_workers_loading_one_playbook_at_once_parse_it_once(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    """A fleet's workers open their orgs together: the playbook is parsed by one of them and
    the others get that parse (issue 17)."""
    import threading
    import time

    path = write(tmp_path, GOOD)
    parses: list[Path] = []
    real = playbooks._load

    def slow_load(p: Path) -> playbooks.LoadedPlaybook:
        parses.append(p)
        time.sleep(0.05)  # every worker arrives while the first is still parsing
        return real(p)

    monkeypatch.setattr(playbooks, "_load", slow_load)
    got: list[playbooks.LoadedPlaybook] = []
    threads = [threading.Thread(target=lambda: got.append(playbooks.load(path)))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(parses) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)
