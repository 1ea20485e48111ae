"""Every command's --format json / --json output is one envelope that validates against the
published schema (docs/envelope.schema.json), errors included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from cliharness import run

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "envelope.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def envelope(*args: str, code: int | None = None) -> dict[str, Any]:
    result = run(*args)
    data = json.loads(result.out)  # stdout is exactly one JSON document
    errors = sorted(VALIDATOR.iter_errors(data), key=str)
    assert not errors, f"{args}: {errors[0].message} in {result.out[:400]}"
    assert data["exit_code"] == result.code
    if code is not None:
        assert result.code == code, result.out + result.err
    return data


def test_the_schema_is_itself_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_command_prints_one_envelope_that_validates(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.json"
    baseline = tmp_path / "baseline.yaml"
    audit = envelope("audit", "--org", "demo", "--format", "json", code=2)
    assert audit["command"] == "audit" and audit["status"] == "drift"
    assert audit["result"]["summary"]["drift"] == 6
    planned = envelope("plan", "--org", "demo", "--out", str(plan_file), "--json", code=0)
    assert planned["result"]["api_requests"] > 0
    applied = envelope("apply", str(plan_file), "--yes", "--json", code=0)
    assert len(applied["result"]["applied"]) == 6
    run_id = applied["result"]["run_id"]
    verified = envelope("verify", "--org", "demo", "--json", code=0)
    assert verified["result"]["verified"] is True
    diagnosed = envelope("diagnose", "--org", "demo", "--error", "invalid_client", "--json")
    assert diagnosed["command"] == "diagnose" and "causes" in diagnosed["result"]
    snap = envelope("snapshot", "--org", "demo", "--out", str(baseline), "--json", code=0)
    assert snap["result"]["steps"] > 0
    listed = envelope("history", "--json", code=0)
    assert [r["run_id"] for r in listed["result"]] == [run_id]
    shown = envelope("history", "show", run_id, "--json", code=0)
    assert shown["command"] == "history show" and len(shown["result"]["applied"]) == 6
    # undo one change nothing else depends on (the licence is needed by a permission set)
    number = next(i for i, c in enumerate(shown["result"]["applied"], 1)
                  if c["target"].startswith("RemoteSiteSetting"))
    rolled = envelope("rollback", run_id, "--change", str(number), "--yes", "--json", code=0)
    assert len(rolled["result"]["applied"]) == 1
    kinds = envelope("kinds", "--json", code=0)
    assert {"kind", "causes", "summary"} <= set(kinds["result"][0])
    valid = envelope("playbook", "validate", str(baseline), "--json", code=0)
    assert valid["command"] == "playbook validate" and valid["result"][0]["ok"] is True
    assert envelope("playbook", "schema", "--json", code=0)["result"]["type"] == "object"
    enforced = envelope("enforce", "--org", "demo", "--json")
    assert enforced["result"]["orgs"][0]["org"] == "demo"
    scenarios = envelope("sandbox", "scenarios", "--json", code=0)
    assert scenarios["command"] == "sandbox scenarios"
    assert any(s["name"] == "demo" and s["description"] for s in scenarios["result"])
    assert envelope("sandbox", "status", "--json", code=0)["result"]["org"] == "demo"
    assert envelope("sandbox", "reset", "--json", code=0)["result"]["org"] == "demo"
    assert envelope("--version", "--json", code=0)["result"]["version"]


@pytest.mark.parametrize(("args", "code", "kind"), [
    (("audit", "--org", "no-such-org", "--json"), 64, "ConfigError"),
    (("audit", "--json", "--no-such-flag"), 64, "NoSuchOption"),
    (("history", "show", "nope", "--json"), 64, "UsageError"),
    (("apply", "missing-plan.json", "--json", "--yes"), 64, "InputError"),
    (("playbook", "validate", "missing.yaml", "--json"), 64, "PlaybookError"),
    (("rollback", "run-that-never-was", "--json"), 64, "UsageError"),
])
def test_errors_are_json_too(args: tuple[str, ...], code: int, kind: str) -> None:
    data = envelope(*args, code=code)
    assert data["status"] == "bad_input"
    assert data["errors"][0]["type"] == kind
    assert data["errors"][0]["message"]
    assert data["result"] is None


def test_a_refusal_is_an_error_in_the_envelope_with_exit_3(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.json"
    run("plan", "--org", "demo", "--out", str(plan_file))
    run("apply", "--org", "demo", "--yes")  # the org moves on: the saved plan is stale
    data = envelope("apply", str(plan_file), "--yes", "--json", code=3)
    assert data["status"] == "refused" and data["errors"][0]["type"] == "StalePlan"


@pytest.mark.parametrize("args", [("history", "--format", "markdown"),
                                  ("enforce", "--org", "demo", "--format", "markdown"),
                                  ("plan", "--org", "demo", "--format", "sarif"),
                                  ("verify", "--org", "demo", "--format", "markdown")])
def test_a_format_a_command_cannot_print_is_refused_not_ignored(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.code == 64
    assert result.out == ""
