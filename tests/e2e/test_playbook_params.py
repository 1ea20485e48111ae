"""``playbook validate`` and the exported JSON Schema check each step's parameters for its kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from cliharness import run

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

HEAD = """apiVersion: remediate/v1
name: bad
variables:
  app: {default: Copilot_for_Sales}
steps:
"""
UNKNOWN_VIA = HEAD + """  - id: access
    kind: app.access
    with:
      app: "${app}"
      via: permission_sets
      permission_set: P
"""
MISSPELT = HEAD + """  - id: cc
    kind: app.client_credentials
    with: {app: "${app}", enabeld: true}
"""
GOOD = HEAD + """  - id: cc
    kind: app.client_credentials
    with: {app: "${app}", enabled: "${app}"}
"""


def test_an_unknown_via_fails_validate_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(UNKNOWN_VIA)
    result = run("playbook", "validate", str(path))
    assert result.code == 64
    assert result.err.startswith(f"error: {path}:10: steps[0] (access): with.via: ")
    assert "'permission_set' or 'profile'" in result.err


def test_a_misspelt_parameter_fails_validate_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MISSPELT)
    result = run("playbook", "validate", str(path))
    assert result.code == 64
    assert result.err.startswith(f"error: {path}:8: steps[0] (cc): with.enabeld: "
                                 "unknown parameter")


def test_a_variable_in_a_typed_parameter_is_left_for_binding(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert run("playbook", "validate", str(path)).code == 0


def test_the_exported_schema_selects_the_parameters_by_kind() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    result = run("playbook", "schema")
    assert result.code == 0
    validator = jsonschema.Draft202012Validator(json.loads(result.out))
    for shipped in sorted((ROOT / "playbooks").glob("*.yaml")):
        assert list(validator.iter_errors(yaml.safe_load(shipped.read_text()))) == [], shipped
    for bad, word in ((UNKNOWN_VIA, "permission_sets"), (MISSPELT, "enabeld")):
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(bad))]
        assert any(word in m for m in errors), errors
    assert list(validator.iter_errors(yaml.safe_load(GOOD))) == []
